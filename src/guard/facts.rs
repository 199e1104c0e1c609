//! What the guard knows about a statement, as plain data. The pgrx layer
//! (extract.rs) fills these from the raw parse tree and the live catalog; the
//! rules decide on them without touching the database.

pub use crate::format::thousands;

/// A table the statement touches, as the catalog describes it right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// As a user would write it: `public.users`.
    pub name: String,
    /// Estimated rows (pg_class.reltuples, summed over partitions).
    pub rows: i64,
    /// Bytes on disk (heap, summed over partitions).
    pub bytes: i64,
    /// Created by this transaction: nobody else can see it, so nothing can be blocked.
    pub created_in_transaction: bool,
    pub temporary: bool,
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

    /// "public.users (~1,200,000 rows, 84 MB)".
    pub fn described(&self) -> String {
        format!("{} (~{} rows, {})", self.name, thousands(self.rows.max(0)), bytes_text(self.bytes))
    }
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
    SetNotNull { column: String, has_validated_check: bool },
    AddConstraint(Constraint),
    Other,
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
    CreateIndex { table: Table, index_name: Option<String>, concurrent: bool, unique: bool },
    DropIndex { indexes: Vec<(String, Table)>, concurrent: bool },
    Reindex { target: String, kind: String, table: Option<Table>, concurrent: bool },
    AlterTable { table: Table, actions: Vec<Action>, lock: LockLevel },
    DropTable { tables: Vec<(Table, Vec<Column>)> },
    Truncate { tables: Vec<Table> },
    CreateTable { name: String, columns: Vec<Column>, constraints: Vec<Constraint>, primary_key_types: Vec<String> },
    AddEnumValue { type_name: String, value: String, in_transaction_block: bool },
    /// From the table_rewrite event: PostgreSQL is about to rewrite the table.
    Rewrite { table: Table, reason: u32 },
    /// From the sql_drop event: the tables and columns a command dropped
    /// without naming them in DROP TABLE or ALTER TABLE ... DROP COLUMN (by
    /// CASCADE, DROP OWNED, an extension's members, a schema's contents).
    /// `command` is the command tag, `DROP SCHEMA`.
    Dropped { command: String, tables: Vec<Table>, columns: Vec<DroppedColumn> },
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
    pub transaction_age_ms: i64,
    pub query_start: String,
    pub query: String,
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
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(bytes_text(0), "0 bytes");
        assert_eq!(bytes_text(8192), "8 kB");
        assert_eq!(bytes_text(90 * 1024 * 1024), "90 MB");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
