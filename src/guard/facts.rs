//! What the guard knows about a statement, as plain data. The pgrx layer
//! (extract.rs) fills these from the raw parse tree and the live catalog; the
//! rules decide on them without touching the database.

pub use crate::format::thousands;

/// A table the statement touches, as the catalog describes it right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// As a user would write it: `public.users`.
    pub name: String,
    /// Estimated rows (pg_class.reltuples, summed over partitions; estimated
    /// from the pages on disk when the table was never analyzed).
    pub rows: i64,
    /// `rows` is an estimate from the table's size: reltuples was -1 (never
    /// vacuumed or analyzed, as after a bulk load).
    pub rows_from_size: bool,
    /// Bytes on disk (heap, summed over partitions).
    pub bytes: i64,
    /// Created by this transaction: nobody else can see it, so nothing can be blocked.
    pub created_in_transaction: bool,
    pub temporary: bool,
    /// A partitioned table (relkind 'p'): no CONCURRENTLY index work on it.
    pub partitioned: bool,
    /// pg_class OID (0 for a table a checked script creates).
    pub oid: u32,
}

impl Table {
    /// Only tables other sessions can see can block them or lose them data.
    pub fn shared(&self) -> bool {
        !self.created_in_transaction && !self.temporary
    }

    pub fn has_rows(&self) -> bool {
        self.rows > 0 || self.bytes > 0
    }

    pub fn is_large(&self, thresholds: &Thresholds) -> bool {
        self.rows >= thresholds.min_rows || self.bytes >= thresholds.min_bytes
    }

    /// "public.users (~1,200,000 rows, 84 MB)", or "(~1,200,000 rows estimated
    /// from its size, 84 MB)" when the table has no statistics.
    pub fn described(&self) -> String {
        let how = if self.rows_from_size { " estimated from its size" } else { "" };
        format!("{} (~{} rows{how}, {})", self.name, thousands(self.rows.max(0)), bytes_text(self.bytes))
    }
}

/// Rows of a never-analyzed heap of `blocks` pages whose rows are about
/// `data_width` bytes, as the planner estimates them (estimate_rel_size):
/// usable page space over the width of a tuple with its header and line pointer.
pub fn rows_from_size(blocks: i64, data_width: i64) -> i64 {
    const BLOCK_SIZE: i64 = 8192;
    const PAGE_HEADER: i64 = 24; // SizeOfPageHeaderData
    const TUPLE_OVERHEAD: i64 = 24 + 4; // MAXALIGN(SizeofHeapTupleHeader) + sizeof(ItemIdData)
    if blocks <= 0 {
        return 0;
    }
    let width = data_width.max(1) + TUPLE_OVERHEAD;
    let density = ((BLOCK_SIZE - PAGE_HEADER) / width).max(1);
    blocks.saturating_mul(density)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// Canonical type (format_type), so `int4` and `integer` compare equal.
    pub type_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey,
    Check,
    Exclusion,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub kind: ConstraintKind,
    pub name: Option<String>,
    pub not_valid: bool,
    /// `ADD CONSTRAINT ... UNIQUE USING INDEX i`: no build, no scan.
    pub using_index: bool,
    /// FOREIGN KEY with an explicit ON DELETE.
    pub on_delete_given: bool,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    AddColumn { column: Column, not_null: bool, has_default: bool, constraints: Vec<Constraint> },
    DropColumn { column: Column },
    /// `SET NOT NULL`, or the NOT NULL that ADD PRIMARY KEY (also `USING
    /// INDEX`) puts on a nullable key column (`by_primary_key`): both scan.
    SetNotNull { column: String, has_validated_check: bool, by_primary_key: bool },
    AddConstraint(Constraint),
    /// `SET TABLESPACE`: the table's files are copied under ACCESS EXCLUSIVE.
    SetTablespace { tablespace: String },
    /// `ATTACH PARTITION`: PostgreSQL scans the partition under ACCESS EXCLUSIVE
    /// unless a validated CHECK constraint proves the partition bound.
    AttachPartition { partition: Table, has_validated_check: bool, default_partition: Option<DefaultPartition> },
    Other,
}

/// ALTER DOMAIN forms that check every stored value of the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainCheck {
    /// `ADD CONSTRAINT ... CHECK (...)` without NOT VALID.
    AddCheck { name: Option<String> },
    SetNotNull,
    /// `VALIDATE CONSTRAINT`: in PostgreSQL 15 it scans under SHARE too.
    Validate { name: String },
}

/// The DEFAULT partition of the parent a new partition joins: PostgreSQL scans
/// it under ACCESS EXCLUSIVE for rows that belong to the new one, unless a
/// validated CHECK constraint already rules them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultPartition {
    pub table: Table,
    pub has_validated_check: bool,
}

/// Commands that copy a whole relation under ACCESS EXCLUSIVE without firing
/// the table_rewrite event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyCommand {
    VacuumFull,
    /// `CLUSTER t [USING i]`, or a bare CLUSTER (every table clustered before,
    /// `bare`), which cannot run inside a transaction block.
    Cluster { index: Option<String>, bare: bool },
    /// `ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b` (and its INDEX and
    /// MATERIALIZED VIEW forms): all of them are locked until the last is moved.
    MoveAll { from: String, to: String, kind: String },
    /// `ALTER INDEX i SET TABLESPACE t`: the index is copied under ACCESS
    /// EXCLUSIVE, and every query on its table has to lock it.
    IndexSetTablespace { index: String, tablespace: String, definition: Option<String> },
}

/// PostgreSQL's table lock levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockLevel {
    AccessShare = 1,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockLevel {
    pub fn name(self) -> &'static str {
        match self {
            LockLevel::AccessShare => "ACCESS SHARE",
            LockLevel::RowShare => "ROW SHARE",
            LockLevel::RowExclusive => "ROW EXCLUSIVE",
            LockLevel::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockLevel::Share => "SHARE",
            LockLevel::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockLevel::Exclusive => "EXCLUSIVE",
            LockLevel::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }
}

/// The statement being checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `only`: `ON ONLY` (on a partitioned table, an empty invalid index, no
    /// build); `partitions`: the direct partitions when the table is partitioned.
    CreateIndex { table: Table, index_name: Option<String>, concurrent: bool, unique: bool, only: bool, partitions: Option<Vec<String>> },
    DropIndex { indexes: Vec<(String, Table)>, concurrent: bool },
    Reindex { target: String, kind: String, table: Option<Table>, concurrent: bool },
    AlterTable { table: Table, actions: Vec<Action>, lock: LockLevel },
    DropTable { tables: Vec<(Table, Vec<Column>)> },
    Truncate { tables: Vec<Table> },
    /// `default_partition`: for `CREATE TABLE ... PARTITION OF p`, p's DEFAULT partition.
    CreateTable { name: String, columns: Vec<Column>, constraints: Vec<Constraint>, primary_key_types: Vec<String>, default_partition: Option<DefaultPartition> },
    AddEnumValue { type_name: String, value: String, in_transaction_block: bool },
    /// From the table_rewrite event: PostgreSQL is about to rewrite the table.
    Rewrite { table: Table, reason: u32 },
    /// From the sql_drop event: the tables and columns a command dropped
    /// without naming them in DROP TABLE or ALTER TABLE ... DROP COLUMN (by
    /// CASCADE, DROP OWNED, an extension's members, a schema's contents).
    /// `command` is the command tag, `DROP SCHEMA`.
    Dropped { command: String, tables: Vec<Table>, columns: Vec<DroppedColumn> },
    /// VACUUM FULL, CLUSTER, ALTER INDEX / ALL IN TABLESPACE ... SET TABLESPACE:
    /// each (table, command) copies the table (or index) under ACCESS EXCLUSIVE.
    TableCopy { copies: Vec<(Table, CopyCommand)> },
    /// ALTER DOMAIN that checks existing values: each table with a column of
    /// the domain is scanned under SHARE (writes wait).
    AlterDomain { domain: String, check: DomainCheck, tables: Vec<Table> },
    /// `REFRESH MATERIALIZED VIEW`: without CONCURRENTLY, ACCESS EXCLUSIVE for
    /// the whole refresh.
    RefreshMaterializedView { view: Table, concurrent: bool, populated: bool, with_no_data: bool, has_unique_index: bool },
}

/// A column a command dropped from a table that stays.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedColumn {
    pub table: Table,
    pub column: String,
}

impl Statement {
    /// An ALTER TABLE of a table other sessions can see: the table and its actions.
    pub fn shared_alter(&self) -> Option<(&Table, &[Action])> {
        match self {
            Statement::AlterTable { table, actions, .. } if table.shared() => Some((table, actions)),
            _ => None,
        }
    }

    /// PostgreSQL refuses to run it inside a transaction block, so SET LOCAL
    /// cannot acknowledge it.
    pub fn runs_outside_transaction_blocks(&self) -> bool {
        match self {
            Statement::TableCopy { copies } => copies
                .iter()
                .any(|(_, c)| matches!(c, CopyCommand::VacuumFull | CopyCommand::Cluster { bare: true, .. })),
            Statement::Reindex { kind, .. } => kind == "SCHEMA" || kind == "DATABASE",
            _ => false,
        }
    }

    /// The shared table(s) the statement locks, with the lock level.
    pub fn locks(&self) -> Vec<(&Table, LockLevel)> {
        match self {
            Statement::CreateIndex { table, concurrent, .. } => {
                vec![(table, if *concurrent { LockLevel::ShareUpdateExclusive } else { LockLevel::Share })]
            }
            Statement::DropIndex { indexes, concurrent } => indexes
                .iter()
                .map(|(_, t)| (t, if *concurrent { LockLevel::ShareUpdateExclusive } else { LockLevel::AccessExclusive }))
                .collect(),
            Statement::Reindex { table: Some(table), concurrent, .. } => {
                vec![(table, if *concurrent { LockLevel::ShareUpdateExclusive } else { LockLevel::Share })]
            }
            Statement::AlterTable { table, lock, .. } => vec![(table, *lock)],
            Statement::DropTable { tables } => tables.iter().map(|(t, _)| (t, LockLevel::AccessExclusive)).collect(),
            Statement::Truncate { tables } => tables.iter().map(|t| (t, LockLevel::AccessExclusive)).collect(),
            Statement::Rewrite { table, .. } => vec![(table, LockLevel::AccessExclusive)],
            Statement::TableCopy { copies } => copies.iter().map(|(t, _)| (t, LockLevel::AccessExclusive)).collect(),
            Statement::AlterDomain { tables, .. } => tables.iter().map(|t| (t, LockLevel::Share)).collect(),
            Statement::RefreshMaterializedView { view, concurrent, .. } => {
                vec![(view, if *concurrent { LockLevel::Exclusive } else { LockLevel::AccessExclusive })]
            }
            _ => Vec::new(),
        }
    }
}

/// A session that holds a lock the statement would have to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub pid: i32,
    pub table: String,
    pub mode: String,
    /// pg_stat_activity.state: `active`, `idle in transaction`, ...
    pub state: String,
    pub transaction_age_ms: i64,
    pub query_start: String,
    pub query: String,
}

impl Blocker {
    /// The call that ends its hold on the lock. pg_cancel_backend cancels the
    /// running query, so it does nothing to a session that is idle in a
    /// transaction (or in an aborted one): only pg_terminate_backend ends that.
    pub fn ending_call(&self) -> String {
        let function = if self.state.starts_with("idle in transaction") { "pg_terminate_backend" } else { "pg_cancel_backend" };
        format!("SELECT {function}({});", self.pid)
    }

    /// Its query on one line, cut at 120 characters.
    pub fn query_text(&self) -> String {
        const MAX: usize = 120;
        let line = self.query.split_whitespace().collect::<Vec<_>>().join(" ");
        match line.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}...", &line[..cut]),
            None => line,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub min_rows: i64,
    pub min_bytes: i64,
    pub lock_queue_age_ms: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { min_rows: 100_000, min_bytes: 64 * 1024 * 1024, lock_queue_age_ms: 60_000 }
    }
}

/// What happened earlier in this transaction (for rename_by_drop).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub dropped_columns: Vec<(String, Column)>,
    pub added_columns: Vec<(String, Column)>,
    pub dropped_tables: Vec<(String, Vec<Column>)>,
}

/// Everything besides the statement that a rule may look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub lock_timeout_ms: i64,
    pub thresholds: Thresholds,
    /// Every session holding a lock that conflicts with the statement's, of any
    /// age (lock_queue looks at those older than its threshold).
    pub blockers: Vec<Blocker>,
    pub history: History,
    /// The statement's text, when known, to write the safe version in a HINT.
    pub sql: Option<String>,
}


pub fn bytes_text(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{} bytes", bytes.max(0)) } else { format!("{value:.0} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_analyzed_tables_are_sized_from_their_pages() {
        // 5,000 pages of rows 40 bytes wide: (8192 - 24) / 68 = 120 rows a page.
        assert_eq!(rows_from_size(5_000, 40), 600_000);
        assert_eq!(rows_from_size(0, 40), 0);
        assert!(rows_from_size(1, 100_000) >= 1);
        let table = Table { name: "public.t".into(), rows: 600_000, rows_from_size: true, bytes: 5_000 * 8192,
                            created_in_transaction: false, temporary: false, partitioned: false, oid: 1 };
        assert_eq!(table.described(), "public.t (~600,000 rows estimated from its size, 39 MB)");
    }

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(bytes_text(0), "0 bytes");
        assert_eq!(bytes_text(8192), "8 kB");
        assert_eq!(bytes_text(90 * 1024 * 1024), "90 MB");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
