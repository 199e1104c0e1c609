#![allow(non_upper_case_globals)] // PostgreSQL enum constants in match patterns

//! Data lost by cascade: the tables and columns a command drops beyond what it
//! names. PostgreSQL works out the drop's closure itself (findDependentObjects,
//! shdepDropOwned); the sql_drop event lists every object it dropped. That
//! event fires after the drop but inside the command's transaction, so an
//! ERROR there undoes the whole command.
//!
//! By then the dropped tables' catalog rows are deleted - by this very command.
//! The snapshot the command runs under was taken before it started, and a
//! row deleted by a later command id of one's own transaction is still
//! visible to it: a read-only query under that snapshot still sees pg_class
//! (size estimate, storage) and pg_attribute (a dropped column's old name).
//! The files stay on disk until commit, so their real size can be measured.
//! (When the snapshot never saw a table, the pg_class row version the command
//! deleted has the same facts: `row_versions`.)
//! Ordinary DDL pays nothing: the decision whether to look at all is made from
//! the parse tree, and a DROP TABLE or DROP INDEX without CASCADE never looks.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;
use pgrx::{is_a, FromDatum};

use super::extract;
use super::facts::{DroppedColumn, Statement, Table};
use crate::errors::raise;

/// Whether a command can drop a table or column with data that the
/// ddl_command_start rules did not see named. Without CASCADE, PostgreSQL drops
/// only what is named and its automatic parts: for DROP TABLE those are
/// partitions, which drop_table counts; an index holds no one else's data. ALTER
/// TABLE drops only its own columns (drop_column) and their views, indexes and
/// constraints; the sql_drop trigger does not fire for it at all.
///
/// # Safety
/// `node` is null or a valid raw parse tree node.
unsafe fn may_drop_unnamed_data(node: *mut pg_sys::Node) -> bool {
    if node.is_null() {
        return false;
    }
    if is_a(node, NodeTag::T_DropStmt) {
        let drop = &*(node as *mut pg_sys::DropStmt);
        return drop.behavior == pg_sys::DropBehavior::DROP_CASCADE
            || !matches!(drop.removeType, pg_sys::ObjectType::OBJECT_TABLE | pg_sys::ObjectType::OBJECT_INDEX);
    }
    if is_a(node, NodeTag::T_AlterTableStmt) {
        // ALTER TYPE ... DROP ATTRIBUTE ... CASCADE drops the typed tables' columns.
        return (*(node as *mut pg_sys::AlterTableStmt)).objtype != pg_sys::ObjectType::OBJECT_TABLE;
    }
    // DROP OWNED drops what the role owns, tables included, named or not.
    true
}

/// One row of pg_event_trigger_dropped_objects() that is a table or a column of one.
struct Dropped {
    object_type: String,
    oid: pg_sys::Oid,
    column_number: i32,
    original: bool,
    temporary: bool,
    identity: String,
    /// From the pg_class row as it was before the command (tables only).
    storage: Option<Storage>,
    /// A dropped column's name before PostgreSQL renamed it to ........pg.dropped.N.........
    column_name: Option<String>,
    /// pg_inherits parents, before the command: partitions and inheritance children.
    parents: Vec<pg_sys::Oid>,
}

struct Storage {
    relfilenode: pg_sys::Oid,
    tablespace: pg_sys::Oid,
    persistence: String,
    reltuples: f64,
    relpages: i32,
}

/// Read under the command's own snapshot (read-only SPI uses the active
/// snapshot as it is), so the rows this command deleted are still there.
const DROPPED_QUERY: &CStr = c"
SELECT d.object_type, d.objid, d.objsubid, d.original, d.is_temporary, d.object_identity,
       c.relfilenode, c.reltablespace, c.relpersistence::pg_catalog.text, c.reltuples::pg_catalog.float8, c.relpages,
       (SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) d.objid AND a.attnum OPERATOR(pg_catalog.=) d.objsubid),
       ARRAY(SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) d.objid)
  FROM pg_catalog.pg_event_trigger_dropped_objects() d
  LEFT JOIN pg_catalog.pg_class c
         ON c.oid OPERATOR(pg_catalog.=) d.objid AND d.objsubid OPERATOR(pg_catalog.=) 0
 WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.object_type OPERATOR(pg_catalog.=) ANY (ARRAY['table', 'table column']::pg_catalog.text[])";

unsafe fn value<T: FromDatum>(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc, column: i32) -> Option<T> {
    let mut is_null = false;
    let datum = pg_sys::SPI_getbinval(tuple, desc, column, &mut is_null);
    T::from_datum(datum, is_null)
}

/// The dropped tables and columns, or None when there is no snapshot to read
/// the command's deletions under.
unsafe fn read_dropped() -> Option<Vec<Dropped>> {
    if !pg_sys::ActiveSnapshotSet() {
        return None;
    }
    // pgrx's client picks read-write SPI once the transaction has an xid, and
    // read-write SPI takes a fresh snapshot; this query must not.
    Some(Spi::connect(|_client| {
        let status = pg_sys::SPI_execute(DROPPED_QUERY.as_ptr(), true, 0);
        if status != pg_sys::SPI_OK_SELECT as i32 {
            raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("reading the dropped objects failed (SPI {status})"), None, None);
        }
        let table = pg_sys::SPI_tuptable;
        let count = if table.is_null() { 0 } else { pg_sys::SPI_processed as usize };
        let mut rows = Vec::with_capacity(count);
        for index in 0..count {
            pgrx::check_for_interrupts!();
            let tuple = *(*table).vals.add(index);
            let desc = (*table).tupdesc;
            let relfilenode: Option<pg_sys::Oid> = value(tuple, desc, 7);
            rows.push(Dropped {
                object_type: value(tuple, desc, 1).unwrap_or_default(),
                oid: value(tuple, desc, 2).unwrap_or(pg_sys::InvalidOid),
                column_number: value(tuple, desc, 3).unwrap_or(0),
                original: value(tuple, desc, 4).unwrap_or(false),
                temporary: value(tuple, desc, 5).unwrap_or(false),
                identity: value(tuple, desc, 6).unwrap_or_default(),
                storage: relfilenode.map(|relfilenode| Storage {
                    relfilenode,
                    tablespace: value(tuple, desc, 8).unwrap_or(pg_sys::InvalidOid),
                    persistence: value(tuple, desc, 9).unwrap_or_default(),
                    reltuples: value(tuple, desc, 10).unwrap_or(-1.0),
                    relpages: value(tuple, desc, 11).unwrap_or(0),
                }),
                column_name: value(tuple, desc, 12),
                parents: value::<Vec<pg_sys::Oid>>(tuple, desc, 13).unwrap_or_default(),
            });
        }
        rows
    }))
}

/// What the versions of a dropped table's pg_class row say. The relcache entry
/// that knew whether this transaction created the table is gone with it; the
/// row's versions still say it: created here means every version was written
/// by this transaction (a version's xmin alone is ours after any ALTER in this
/// transaction too). And the version this command deleted holds the table's
/// storage, for a snapshot that never saw it (a REPEATABLE READ transaction
/// dropping a table created after its snapshot). Read with SnapshotAny: every
/// version the index still points to, deleted or not.
unsafe fn row_versions(oid: pg_sys::Oid) -> (bool, Option<Storage>) {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    let catalog = pg_sys::table_open(pg_sys::RelationRelationId, lock);
    let mut key = pg_sys::ScanKeyData::default();
    pg_sys::ScanKeyInit(
        &mut key,
        pg_sys::Anum_pg_class_oid as pg_sys::AttrNumber,
        pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
        pg_sys::RegProcedure::from(pg_sys::F_OIDEQ),
        pg_sys::Datum::from(oid),
    );
    let scan = pg_sys::systable_beginscan(
        catalog,
        pg_sys::Oid::from(pg_sys::ClassOidIndexId),
        true,
        &raw mut pg_sys::SnapshotAnyData,
        1,
        &mut key,
    );
    let mut versions = 0;
    let mut all_ours = true;
    let mut deleted = None;
    loop {
        let tuple = pg_sys::systable_getnext(scan);
        if tuple.is_null() {
            break;
        }
        versions += 1;
        let header = (*tuple).t_data;
        if !pg_sys::TransactionIdIsCurrentTransactionId(pg_sys::HeapTupleHeaderGetXmin(header)) {
            all_ours = false;
        }
        // Deleted, not updated or locked, by this transaction: its xmax is
        // ours and its ctid points to itself.
        let infomask = u32::from((*header).t_infomask);
        let xmax = (*header).t_choice.t_heap.t_xmax;
        if infomask & (pg_sys::HEAP_XMAX_IS_MULTI | pg_sys::HEAP_XMAX_LOCK_ONLY) == 0
            && pg_sys::TransactionIdIsCurrentTransactionId(xmax)
            && pg_sys::ItemPointerEquals(&mut (*tuple).t_self, &mut (*header).t_ctid)
        {
            let form = &*((header as *const u8).add(usize::from((*header).t_hoff)) as *const pg_sys::FormData_pg_class);
            deleted = Some(Storage {
                relfilenode: form.relfilenode,
                tablespace: form.reltablespace,
                persistence: (form.relpersistence as u8 as char).to_string(),
                reltuples: f64::from(form.reltuples),
                relpages: form.relpages,
            });
        }
    }
    pg_sys::systable_endscan(scan);
    pg_sys::table_close(catalog, lock);
    (versions > 0 && all_ours, deleted)
}

/// Blocks of a dropped table's main fork: its file is unlinked only at commit.
unsafe fn blocks_on_disk(storage: &Storage) -> i64 {
    if storage.relfilenode == pg_sys::InvalidOid {
        return i64::from(storage.relpages.max(0)); // a mapped catalog or no storage (partitioned)
    }
    let node = pg_sys::RelFileNode {
        spcNode: if storage.tablespace == pg_sys::InvalidOid { pg_sys::MyDatabaseTableSpace } else { storage.tablespace },
        dbNode: pg_sys::MyDatabaseId,
        relNode: storage.relfilenode,
    };
    let backend = if storage.persistence == "t" { pg_sys::MyBackendId } else { pg_sys::InvalidBackendId };
    let relation = pg_sys::smgropen(node, backend);
    if !pg_sys::smgrexists(relation, pg_sys::ForkNumber::MAIN_FORKNUM) {
        return i64::from(storage.relpages.max(0));
    }
    i64::from(pg_sys::smgrnblocks(relation, pg_sys::ForkNumber::MAIN_FORKNUM))
}

/// The facts of a dropped table, as it was before the command.
unsafe fn dropped_table(row: &Dropped) -> Table {
    let (created_in_transaction, deleted) = row_versions(row.oid);
    let storage = row.storage.as_ref().or(deleted.as_ref());
    let blocks = storage.map_or(0, |s| blocks_on_disk(s));
    // Never analyzed (reltuples -1, as after a bulk load): estimate from the
    // pages on disk, as the other rules do. The row width is gone with the
    // table, so a narrow row (two integers) is assumed: more rows, never fewer.
    let never_analyzed = storage.is_some_and(|s| s.reltuples < 0.0) && blocks > 0;
    let rows = if never_analyzed {
        crate::guard::facts::rows_from_size(blocks, 8)
    } else {
        storage.map_or(0, |s| s.reltuples.max(0.0) as i64)
    };
    Table {
        name: row.identity.clone(),
        rows,
        rows_from_size: never_analyzed,
        bytes: blocks * i64::from(pg_sys::BLCKSZ),
        created_in_transaction,
        temporary: row.temporary || storage.is_some_and(|s| s.persistence == "t"),
        partitioned: false,
        oid: u32::from(row.oid),
    }
}

/// The tables a DROP TABLE names, with their partitions and inheritance
/// children: drop_table judged those before the command ran, by their whole tree.
fn named_trees(rows: &[Dropped]) -> HashSet<pg_sys::Oid> {
    let mut children: HashMap<pg_sys::Oid, Vec<pg_sys::Oid>> = HashMap::new();
    for row in rows.iter().filter(|r| r.object_type == "table") {
        for parent in &row.parents {
            children.entry(*parent).or_default().push(row.oid);
        }
    }
    let mut named = HashSet::new();
    let mut pending: Vec<pg_sys::Oid> =
        rows.iter().filter(|r| r.original && r.object_type == "table").map(|r| r.oid).collect();
    while let Some(oid) = pending.pop() {
        pgrx::check_for_interrupts!();
        if named.insert(oid) {
            pending.extend(children.get(&oid).into_iter().flatten());
        }
    }
    named
}

/// What an sql_drop event dropped that no other rule judged: None when there
/// is nothing to say.
///
/// # Safety
/// Called from an sql_drop event trigger with the command's raw parse tree and tag.
pub unsafe fn dropped_statement(node: *mut pg_sys::Node, tag: pg_sys::CommandTag::Type) -> Option<Statement> {
    if !may_drop_unnamed_data(node) {
        return None;
    }
    let rows = read_dropped()?;
    if rows.is_empty() {
        return None;
    }
    let named = if is_a(node, NodeTag::T_DropStmt)
        && (*(node as *mut pg_sys::DropStmt)).removeType == pg_sys::ObjectType::OBJECT_TABLE
    {
        named_trees(&rows)
    } else {
        Default::default()
    };
    let dropped_tables: HashSet<pg_sys::Oid> =
        rows.iter().filter(|r| r.object_type == "table").map(|r| r.oid).collect();
    let mut tables = Vec::new();
    let mut columns = Vec::new();
    for row in &rows {
        pgrx::check_for_interrupts!();
        if row.object_type == "table" {
            if !named.contains(&row.oid) {
                tables.push(dropped_table(row));
            }
        } else if row.column_number > 0 && !dropped_tables.contains(&row.oid) {
            // The table stays: the relcache knows its size and whether this transaction created it.
            if let Some(table) = extract::table_by_oid(row.oid) {
                let column = row.column_name.clone().map_or_else(
                    || row.identity.rsplit('.').next().unwrap_or(&row.identity).to_string(),
                    |name| pgrx::spi::quote_identifier(&name).to_string(),
                );
                columns.push(DroppedColumn { table, column });
            }
        }
    }
    if tables.is_empty() && columns.is_empty() {
        return None;
    }
    let command = CStr::from_ptr(pg_sys::GetCommandTagName(tag)).to_string_lossy().into_owned();
    Some(Statement::Dropped { command, tables, columns })
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION migrate.guard_sql_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_guard_sql_drop';

-- Every command that can drop a table or a column it does not name. Not ALTER
-- TABLE (its drops are its own columns, judged before it runs) and not DROP
-- INDEX: ordinary DDL pays no call.
CREATE EVENT TRIGGER migrate_guard_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED', 'DROP TYPE', 'DROP DOMAIN', 'DROP FUNCTION',
                 'DROP PROCEDURE', 'DROP ROUTINE', 'DROP AGGREGATE', 'DROP OPERATOR', 'DROP CAST',
                 'DROP COLLATION', 'DROP EXTENSION', 'DROP VIEW', 'DROP MATERIALIZED VIEW', 'DROP FOREIGN TABLE',
                 'DROP SEQUENCE', 'DROP LANGUAGE', 'DROP ACCESS METHOD', 'DROP TEXT SEARCH CONFIGURATION',
                 'DROP TEXT SEARCH DICTIONARY', 'DROP TEXT SEARCH PARSER', 'DROP TEXT SEARCH TEMPLATE',
                 'DROP CONVERSION', 'DROP OPERATOR CLASS', 'DROP OPERATOR FAMILY', 'DROP TRANSFORM',
                 'DROP SERVER', 'DROP FOREIGN DATA WRAPPER', 'ALTER TYPE', 'ALTER DOMAIN')
    EXECUTE FUNCTION migrate.guard_sql_drop();
"#,
    name = "guard_sql_drop_trigger",
);
