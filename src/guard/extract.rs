#![allow(non_upper_case_globals)] // PostgreSQL enum constants in match patterns

//! From the raw parse tree (as ddl_command_start and migrate_guard_check see it)
//! and the live catalog to the guard's facts. Every pointer is checked for its
//! node tag before use; names are resolved the way the server resolves them.

use std::collections::HashSet;
use std::ffi::CStr;

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;
use pgrx::{is_a, PgList};

use super::facts::{self, Action, Column, Constraint, ConstraintKind, CopyCommand, DefaultPartition, DomainCheck, LockLevel, Statement, Table};
use crate::errors::OrRaise;

unsafe fn text(pointer: *const std::ffi::c_char) -> Option<String> {
    (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
}

unsafe fn string_list(list: *mut pg_sys::List) -> Vec<String> {
    PgList::<pg_sys::Node>::from_pg(list)
        .iter_ptr()
        .filter(|node| is_a(*node, NodeTag::T_String))
        .filter_map(|node| text((*(node as *mut pg_sys::String)).sval))
        .collect()
}

thread_local! {
    // The guard runs on every DDL statement: its catalog queries are planned
    // once per backend and kept.
    static PLANS: std::cell::RefCell<std::collections::HashMap<&'static str, pgrx::spi::OwnedPreparedStatement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Run a read-only catalog query with a kept plan. Read-only matters: a write
/// would assign a transaction id, and DROP INDEX CONCURRENTLY then fails with
/// "must be first action in transaction".
fn with_rows<R>(
    sql: &'static str,
    types: &[PgOid],
    args: &[pgrx::datum::DatumWithOid],
    read: impl FnOnce(pgrx::spi::SpiTupleTable<'_>) -> R,
) -> R {
    Spi::connect(|client| {
        PLANS.with(|plans| {
            let mut plans = plans.borrow_mut();
            let plan = match plans.entry(sql) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(client.prepare(sql, types).or_raise("plan a catalog query").keep())
                }
            };
            read(client.select(&*plan, None, args).or_raise("read the catalog"))
        })
    })
}

const OID: PgOid = PgOid::BuiltIn(PgBuiltInOids::OIDOID);
const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);

/// First column of the first row of a read-only query.
pub(super) fn read_one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    sql: &'static str,
    types: &[PgOid],
    args: &[pgrx::datum::DatumWithOid],
) -> Option<T> {
    with_rows(sql, types, args, |rows| if rows.is_empty() { None } else { rows.first().get_one::<T>().ok().flatten() })
}

/// First two columns of the first row of a read-only query.
pub(super) fn read_two<A, B>(sql: &'static str, types: &[PgOid], args: &[pgrx::datum::DatumWithOid]) -> (Option<A>, Option<B>)
where
    A: pgrx::FromDatum + pgrx::IntoDatum,
    B: pgrx::FromDatum + pgrx::IntoDatum,
{
    with_rows(sql, types, args, |rows| {
        if rows.is_empty() { (None, None) } else { rows.first().get_two::<A, B>().unwrap_or((None, None)) }
    })
}

/// A statement's text, worked out only if something needs it (the guard runs on
/// every DDL statement, and most of them need nothing).
pub struct LazyText<'a> {
    cell: std::cell::OnceCell<Option<String>>,
    make: &'a dyn Fn() -> Option<String>,
}

impl<'a> LazyText<'a> {
    pub fn new(make: &'a dyn Fn() -> Option<String>) -> Self {
        LazyText { cell: std::cell::OnceCell::new(), make }
    }

    pub fn get(&self) -> Option<&str> {
        self.cell.get_or_init(|| (self.make)()).as_deref()
    }
}

/// Tables a script being checked creates before using them.
#[derive(Default)]
pub struct Script {
    pub created: HashSet<String>,
}

/// The table a RangeVar names, if it exists (or was created earlier in the checked script).
unsafe fn table_of(range: *mut pg_sys::RangeVar, script: Option<&Script>) -> Option<Table> {
    if range.is_null() {
        return None;
    }
    let oid = pg_sys::RangeVarGetRelidExtended(range, pg_sys::NoLock as _, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut());
    if oid == pg_sys::InvalidOid {
        let name = text((*range).relname)?;
        let created = script.is_some_and(|s| s.created.contains(&name) || s.created.iter().any(|c| c.ends_with(&format!(".{name}"))));
        return created.then_some(Table { name, rows: 0, rows_from_size: false, bytes: 0, created_in_transaction: true, temporary: false, partitioned: false, oid: 0 });
    }
    table_by_oid(oid)
}

/// Size, persistence and "created in this transaction" of a table, summed over
/// its partitions and inheritance children. The common case (no children) is
/// answered from the relcache alone: the guard runs on every DDL statement.
pub unsafe fn table_by_oid(oid: pg_sys::Oid) -> Option<Table> {
    let relation = pg_sys::RelationIdGetRelation(oid);
    if relation.is_null() {
        return None;
    }
    let form = &*(*relation).rd_rel;
    let kind = form.relkind as u8;
    let facts = if kind != b'r' && kind != b'p' && kind != b'm' {
        None
    } else {
        // The relcache knows whether this transaction created the relation; the
        // pg_class row's xmin would also match after any ALTER in this transaction.
        let created_in_transaction = (*relation).rd_createSubid != 0; // InvalidSubTransactionId
        let temporary = form.relpersistence as u8 == b't';
        let name = match (text(pg_sys::get_namespace_name(form.relnamespace)), text(form.relname.data.as_ptr())) {
            (Some(schema), Some(relation_name)) => format!(
                "{}.{}",
                pgrx::spi::quote_identifier(&schema),
                pgrx::spi::quote_identifier(&relation_name)
            ),
            _ => return close(relation, None),
        };
        let (rows, rows_from_size, bytes) = if form.relhassubclass || kind == b'p' {
            tree_size(oid, data_width(relation))
        } else {
            let blocks = i64::from(pg_sys::RelationGetNumberOfBlocksInFork(relation, pg_sys::ForkNumber::MAIN_FORKNUM));
            // reltuples is -1 until the first VACUUM or ANALYZE: a bulk-loaded
            // table would count as empty. Size it by its pages, as the planner does.
            if form.reltuples < 0.0 && blocks > 0 {
                (facts::rows_from_size(blocks, data_width(relation)), true, blocks * i64::from(pg_sys::BLCKSZ))
            } else {
                (form.reltuples.max(0.0) as i64, false, blocks * i64::from(pg_sys::BLCKSZ))
            }
        };
        Some(Table { name, rows, rows_from_size, bytes, created_in_transaction, temporary, partitioned: kind == b'p', oid: u32::from(oid) })
    };
    close(relation, facts)
}

/// The largest ordinary table of `schema`, or of the whole database (user
/// schemas only) when `schema` is None. Sized on disk: relpages is 0 until a
/// table's first VACUUM or ANALYZE.
unsafe fn largest_table(schema: Option<&str>) -> Option<Table> {
    let oid = read_one::<pg_sys::Oid>(
        "SELECT c.oid FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relkind OPERATOR(pg_catalog.=) 'r'
            AND CASE WHEN $1::pg_catalog.text IS NULL
                     THEN n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])
                          AND n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast|temp_)'
                     ELSE n.nspname OPERATOR(pg_catalog.=) $1 END
          ORDER BY pg_catalog.pg_relation_size(c.oid) DESC, c.reltuples DESC LIMIT 1",
        &[TEXT],
        &[schema.map(str::to_string).into()],
    )?;
    table_by_oid(oid)
}

unsafe fn close(relation: pg_sys::Relation, facts: Option<Table>) -> Option<Table> {
    pg_sys::RelationClose(relation);
    facts
}

/// The width of a row's data, as the planner guesses it without statistics
/// (get_rel_data_width): fixed lengths, and the type's average for the rest.
unsafe fn data_width(relation: pg_sys::Relation) -> i64 {
    pgrx::PgTupleDesc::from_pg_unchecked((*relation).rd_att)
        .iter()
        .filter(|attribute| !attribute.is_dropped())
        .map(|attribute| {
            let width = if attribute.attlen > 0 {
                i32::from(attribute.attlen)
            } else {
                pg_sys::get_typavgwidth(attribute.atttypid, attribute.atttypmod)
            };
            i64::from(width.max(0))
        })
        .sum()
}

/// Rows and bytes summed over partitions and inheritance children; a child
/// never analyzed (reltuples -1) counts by its pages, with the parent's row
/// width. The flag says whether any child was counted so.
fn tree_size(oid: pg_sys::Oid, width: i64) -> (i64, bool, i64) {
    let per_page = facts::rows_from_size(1, width);
    with_rows(
        "WITH RECURSIVE tree(relid) AS (
             SELECT $1::pg_catalog.oid UNION ALL
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.relid),
         sized AS (
             -- A partitioned parent holds no rows: its reltuples (set by ANALYZE)
             -- repeats its partitions'.
             SELECT CASE WHEN p.relkind OPERATOR(pg_catalog.=) 'p' THEN 0::pg_catalog.float4 ELSE p.reltuples END AS reltuples,
                    pg_catalog.pg_relation_size(tree.relid) AS bytes
               FROM tree JOIN pg_catalog.pg_class p ON p.oid OPERATOR(pg_catalog.=) tree.relid)
         SELECT coalesce(pg_catalog.sum(CASE WHEN reltuples OPERATOR(pg_catalog.>=) 0::pg_catalog.float4 THEN reltuples::pg_catalog.int8
                                  ELSE (bytes OPERATOR(pg_catalog./) $3) OPERATOR(pg_catalog.*) $2 END), 0)::pg_catalog.int8,
                coalesce(pg_catalog.bool_or(reltuples OPERATOR(pg_catalog.<) 0::pg_catalog.float4 AND bytes OPERATOR(pg_catalog.>) 0::pg_catalog.int8), false),
                coalesce(pg_catalog.sum(bytes), 0)::pg_catalog.int8
           FROM sized",
        &[OID, PgOid::BuiltIn(PgBuiltInOids::INT8OID), PgOid::BuiltIn(PgBuiltInOids::INT8OID)],
        &[oid.into(), per_page.into(), i64::from(pg_sys::BLCKSZ).into()],
        |rows| {
            if rows.is_empty() {
                return (0, false, 0);
            }
            let row = rows.first();
            let rows_estimate = row.get::<i64>(1).ok().flatten().unwrap_or(0);
            let from_size = row.get::<bool>(2).ok().flatten().unwrap_or(false);
            let bytes = row.get::<i64>(3).ok().flatten().unwrap_or(0);
            (rows_estimate, from_size, bytes)
        },
    )
}

fn lock_level(mode: i32) -> LockLevel {
    match mode {
        1 => LockLevel::AccessShare,
        2 => LockLevel::RowShare,
        3 => LockLevel::RowExclusive,
        4 => LockLevel::ShareUpdateExclusive,
        5 => LockLevel::Share,
        6 => LockLevel::ShareRowExclusive,
        7 => LockLevel::Exclusive,
        _ => LockLevel::AccessExclusive,
    }
}

/// Canonical name of a TypeName, or its written name if it cannot be resolved yet.
unsafe fn type_name(type_name: *mut pg_sys::TypeName) -> String {
    if type_name.is_null() {
        return String::new();
    }
    let resolved = PgTryBuilder::new(|| {
        let mut oid = pg_sys::InvalidOid;
        let mut typmod = -1;
        pg_sys::typenameTypeIdAndMod(std::ptr::null_mut(), type_name, &mut oid, &mut typmod);
        text(pg_sys::format_type_with_typemod(oid, typmod))
    })
    .catch_others(|_| None)
    .execute();
    resolved.unwrap_or_else(|| string_list((*type_name).names).join("."))
}

unsafe fn constraint(node: *mut pg_sys::Node, column: Option<&str>, sql: &LazyText<'_>) -> Option<Constraint> {
    if !is_a(node, NodeTag::T_Constraint) {
        return None;
    }
    let c = &*(node as *mut pg_sys::Constraint);
    use pg_sys::ConstrType::*;
    let kind = match c.contype {
        CONSTR_PRIMARY => ConstraintKind::PrimaryKey,
        CONSTR_UNIQUE => ConstraintKind::Unique,
        CONSTR_FOREIGN => ConstraintKind::ForeignKey,
        CONSTR_CHECK => ConstraintKind::Check,
        CONSTR_EXCLUSION => ConstraintKind::Exclusion,
        _ => ConstraintKind::Other,
    };
    let mut columns = string_list(if kind == ConstraintKind::ForeignKey { c.fk_attrs } else { c.keys });
    if columns.is_empty() {
        columns.extend(column.map(str::to_string));
    }
    // The parse tree cannot tell an explicit ON DELETE NO ACTION from none; the text can.
    let on_delete_given = kind == ConstraintKind::ForeignKey
        && (c.fk_del_action != b'a' as std::ffi::c_char || sql.get().is_some_and(|s| s.to_ascii_uppercase().contains("ON DELETE")));
    Some(Constraint {
        kind,
        name: text(c.conname),
        not_valid: c.skip_validation,
        using_index: !c.indexname.is_null(),
        on_delete_given,
        columns,
    })
}

unsafe fn column_def(node: *mut pg_sys::Node, sql: &LazyText<'_>) -> Option<(Column, bool, bool, Vec<Constraint>)> {
    if !is_a(node, NodeTag::T_ColumnDef) {
        return None;
    }
    let def = &*(node as *mut pg_sys::ColumnDef);
    let name = text(def.colname)?;
    let mut not_null = def.is_not_null;
    let mut has_default = !def.raw_default.is_null() || !def.cooked_default.is_null() || def.identity != 0;
    let mut constraints = Vec::new();
    for item in PgList::<pg_sys::Node>::from_pg(def.constraints).iter_ptr() {
        if !is_a(item, NodeTag::T_Constraint) {
            continue;
        }
        let c = &*(item as *mut pg_sys::Constraint);
        use pg_sys::ConstrType::*;
        match c.contype {
            CONSTR_NOTNULL => not_null = true,
            CONSTR_DEFAULT | CONSTR_IDENTITY | CONSTR_GENERATED => has_default = true,
            CONSTR_PRIMARY => {
                not_null = true;
                constraints.extend(constraint(item, Some(&name), sql));
            }
            _ => constraints.extend(constraint(item, Some(&name), sql)),
        }
    }
    Some((Column { name, type_name: type_name(def.typeName) }, not_null, has_default, constraints))
}

/// A table's live columns with their canonical types, from the relcache (no
/// query: the guard runs on every DDL statement).
fn table_columns(table: &Table) -> Vec<Column> {
    // SAFETY: the relcache entry is valid until RelationClose; the tuple
    // descriptor is borrowed, not reference-counted.
    unsafe {
        let relation = pg_sys::RelationIdGetRelation(pg_sys::Oid::from(table.oid));
        if relation.is_null() {
            return Vec::new();
        }
        let columns = pgrx::PgTupleDesc::from_pg_unchecked((*relation).rd_att)
            .iter()
            .filter(|attribute| !attribute.is_dropped())
            .map(|attribute| Column {
                name: attribute.name().to_string(),
                type_name: text(pg_sys::format_type_with_typemod(attribute.atttypid, attribute.atttypmod)).unwrap_or_default(),
            })
            .collect();
        pg_sys::RelationClose(relation);
        columns
    }
}

fn column_type(table: &Table, column: &str) -> String {
    table_columns(table).into_iter().find(|c| c.name == column).map(|c| c.type_name).unwrap_or_default()
}

fn has_validated_not_null_check(table: &Table, column: &str) -> bool {
    read_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                         WHERE conrelid OPERATOR(pg_catalog.=) $1 AND contype OPERATOR(pg_catalog.=) 'c' AND convalidated
                           AND pg_catalog.pg_get_constraintdef(oid)
                               OPERATOR(pg_catalog.=) pg_catalog.format('CHECK ((%I IS NOT NULL))', $2::pg_catalog.text))",
        &[OID, TEXT],
        &[pg_sys::Oid::from(table.oid).into(), column.into()],
    )
    .unwrap_or(false)
}

/// Key columns of a new primary key that are not NOT NULL yet: its written
/// columns, or those of the index it is made from.
fn nullable_key_columns(table: &Table, columns: &[String], index: Option<&str>) -> Vec<String> {
    with_rows(
        "SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0
            AND NOT a.attisdropped AND NOT a.attnotnull
            AND (a.attname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.text[])
                 OR a.attnum OPERATOR(pg_catalog.=) ANY (
                      SELECT pg_catalog.unnest(i.indkey::pg_catalog.int2[]) FROM pg_catalog.pg_index i
                        JOIN pg_catalog.pg_class ci ON ci.oid OPERATOR(pg_catalog.=) i.indexrelid
                       WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND ci.relname OPERATOR(pg_catalog.=) $3::pg_catalog.name))
          ORDER BY a.attnum",
        &[OID, PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID), TEXT],
        &[pg_sys::Oid::from(table.oid).into(), columns.to_vec().into(), index.map(str::to_string).into()],
        |rows| rows.filter_map(|row| row.get::<String>(1).ok().flatten()).collect(),
    )
}

/// ALTER DOMAIN ADD CONSTRAINT (CHECK, validated), SET NOT NULL and VALIDATE
/// CONSTRAINT read every value of the domain, in every table that stores it.
unsafe fn alter_domain(alter: &pg_sys::AlterDomainStmt) -> Option<Statement> {
    let check = match alter.subtype as u8 {
        b'C' if is_a(alter.def, NodeTag::T_Constraint) => {
            let c = &*(alter.def as *mut pg_sys::Constraint);
            match c.contype {
                pg_sys::ConstrType::CONSTR_CHECK if !c.skip_validation => DomainCheck::AddCheck { name: text(c.conname) },
                pg_sys::ConstrType::CONSTR_NOTNULL => DomainCheck::SetNotNull,
                _ => return None,
            }
        }
        b'O' => DomainCheck::SetNotNull,
        b'V' => DomainCheck::Validate { name: text(alter.name)? },
        _ => return None,
    };
    let type_name = pg_sys::makeTypeNameFromNameList(alter.typeName);
    let domain = PgTryBuilder::new(|| Some(pg_sys::typenameTypeId(std::ptr::null_mut(), type_name)))
        .catch_others(|_| None)
        .execute()?;
    // Columns of the domain, or of a domain over it, as PostgreSQL's get_rels_with_domain finds them.
    let (name, oids) = with_rows(
        "WITH RECURSIVE domains(oid) AS (
             SELECT $1::pg_catalog.oid UNION
             SELECT t.oid FROM pg_catalog.pg_type t JOIN domains d ON t.typbasetype OPERATOR(pg_catalog.=) d.oid
              WHERE t.typtype OPERATOR(pg_catalog.=) 'd')
         SELECT pg_catalog.format_type($1, NULL),
                pg_catalog.array_agg(DISTINCT a.attrelid) FILTER (WHERE a.attrelid IS NOT NULL)
           FROM domains d LEFT JOIN pg_catalog.pg_attribute a
             ON a.atttypid OPERATOR(pg_catalog.=) d.oid AND NOT a.attisdropped AND a.attnum OPERATOR(pg_catalog.>) 0",
        &[OID],
        &[domain.into()],
        |rows| {
            if rows.is_empty() {
                return (None, None);
            }
            let row = rows.first();
            (row.get::<String>(1).ok().flatten(), row.get::<Vec<pg_sys::Oid>>(2).ok().flatten())
        },
    );
    let tables = oids.unwrap_or_default().into_iter().filter_map(|oid| table_by_oid(oid)).collect();
    Some(Statement::AlterDomain { domain: name?, check, tables })
}

/// The DEFAULT partition of a partitioned table, if it has one.
fn default_partition_of(parent: &Table) -> Option<DefaultPartition> {
    if parent.oid == 0 {
        return None;
    }
    let oid = read_one::<pg_sys::Oid>(
        "SELECT partdefid FROM pg_catalog.pg_partitioned_table
          WHERE partrelid OPERATOR(pg_catalog.=) $1 AND partdefid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid",
        &[OID],
        &[pg_sys::Oid::from(parent.oid).into()],
    )?;
    // SAFETY: a catalog look-up of an existing relation.
    let table = unsafe { table_by_oid(oid) }?;
    Some(DefaultPartition { has_validated_check: has_validated_check(&table), table })
}

/// The direct partitions of a partitioned table, qualified, in name order.
fn partitions_of(table: &Table) -> Vec<String> {
    with_rows(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_inherits i
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE i.inhparent OPERATOR(pg_catalog.=) $1 ORDER BY 1",
        &[OID],
        &[pg_sys::Oid::from(table.oid).into()],
        |rows| rows.filter_map(|row| row.get::<String>(1).ok().flatten()).collect(),
    )
}

fn has_validated_check(table: &Table) -> bool {
    read_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                         WHERE conrelid OPERATOR(pg_catalog.=) $1 AND contype OPERATOR(pg_catalog.=) 'c' AND convalidated)",
        &[OID],
        &[pg_sys::Oid::from(table.oid).into()],
    )
    .unwrap_or(false)
}

/// Whether a boolean option (`FULL`, `FULL true`, `FULL 0`) is on. Read without
/// defGetBoolean, which raises on nonsense: the hook calls this outside any
/// error guard, and VACUUM reports a bad value itself.
fn options_say(options: *mut pg_sys::List, name: &str) -> bool {
    // SAFETY: a list of DefElem from the parser, each arg NULL, a String, an
    // Integer or a Boolean node.
    unsafe {
        let Some(option) = PgList::<pg_sys::DefElem>::from_pg(options)
            .iter_ptr()
            .filter(|option| text((**option).defname).as_deref() == Some(name))
            .last()
        else {
            return false;
        };
        let arg = (*option).arg;
        if arg.is_null() {
            return true;
        }
        if is_a(arg, NodeTag::T_Integer) {
            return (*(arg as *mut pg_sys::Integer)).ival != 0;
        }
        if is_a(arg, NodeTag::T_Boolean) {
            return (*(arg as *mut pg_sys::Boolean)).boolval;
        }
        if is_a(arg, NodeTag::T_String) {
            let value = text((*(arg as *mut pg_sys::String)).sval).unwrap_or_default().to_ascii_lowercase();
            return matches!(value.as_str(), "true" | "on" | "yes" | "1" | "t" | "y");
        }
        false
    }
}

/// VACUUM with FULL (not ANALYZE, not plain VACUUM).
pub fn is_vacuum_full(vacuum: &pg_sys::VacuumStmt) -> bool {
    vacuum.is_vacuumcmd && options_say(vacuum.options, "full")
}

/// `VACUUM FULL` (ANALYZE and plain VACUUM are never checked: they take no
/// lock that blocks reads or writes).
unsafe fn vacuum_full(vacuum: &pg_sys::VacuumStmt, script: Option<&Script>) -> Option<Statement> {
    if !is_vacuum_full(vacuum) {
        return None;
    }
    let relations: Vec<*mut pg_sys::VacuumRelation> = PgList::<pg_sys::VacuumRelation>::from_pg(vacuum.rels).iter_ptr().collect();
    let tables: Vec<Table> = if relations.is_empty() {
        // The whole database, table after table: the largest waits longest.
        largest_table(None).into_iter().collect()
    } else {
        relations.into_iter().filter_map(|relation| table_of((*relation).relation, script)).collect()
    };
    Some(Statement::TableCopy { copies: tables.into_iter().map(|t| (t, CopyCommand::VacuumFull)).collect() })
}

/// `CLUSTER t [USING i]`, or a bare CLUSTER: every table clustered before, in turn.
unsafe fn cluster(cluster: &pg_sys::ClusterStmt, script: Option<&Script>) -> Option<Statement> {
    let table = if cluster.relation.is_null() {
        let oid = read_one::<pg_sys::Oid>(
            "SELECT c.oid FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indrelid
              WHERE i.indisclustered ORDER BY pg_catalog.pg_relation_size(c.oid) DESC, c.reltuples DESC LIMIT 1",
            &[],
            &[],
        )?;
        table_by_oid(oid)?
    } else {
        table_of(cluster.relation, script)?
    };
    let index = text(cluster.indexname).map(|i| pgrx::spi::quote_identifier(&i));
    Some(Statement::TableCopy { copies: vec![(table, CopyCommand::Cluster { index, bare: cluster.relation.is_null() })] })
}

/// `ALTER TABLE|INDEX|MATERIALIZED VIEW ALL IN TABLESPACE a SET TABLESPACE b`:
/// PostgreSQL locks every relation it moves before moving the first.
unsafe fn move_all(stmt: &pg_sys::AlterTableMoveAllStmt) -> Option<Statement> {
    let from = text(stmt.orig_tablespacename)?;
    let to = text(stmt.new_tablespacename).unwrap_or_default();
    let (relkind, kind) = match stmt.objtype {
        pg_sys::ObjectType::OBJECT_INDEX => ("i", "INDEX"),
        pg_sys::ObjectType::OBJECT_MATVIEW => ("m", "MATERIALIZED VIEW"),
        _ => ("r", "TABLE"),
    };
    // The largest relation moved (for an index, the table whose queries wait for it).
    let oid = read_one::<pg_sys::Oid>(
        "SELECT coalesce(i.indrelid, c.oid) FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
           LEFT JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) c.oid
          WHERE c.relkind OPERATOR(pg_catalog.=) $2::\"char\"
            AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast'
            AND c.reltablespace OPERATOR(pg_catalog.=) CASE WHEN $1 OPERATOR(pg_catalog.=) 'pg_default' THEN 0::pg_catalog.oid
                ELSE (SELECT t.oid FROM pg_catalog.pg_tablespace t WHERE t.spcname OPERATOR(pg_catalog.=) $1) END
          ORDER BY pg_catalog.pg_relation_size(c.oid) DESC LIMIT 1",
        &[TEXT, TEXT],
        &[from.clone().into(), relkind.into()],
    )?;
    let table = table_by_oid(oid)?;
    let command = CopyCommand::MoveAll {
        from: pgrx::spi::quote_identifier(&from),
        to: pgrx::spi::quote_identifier(&to),
        kind: kind.into(),
    };
    Some(Statement::TableCopy { copies: vec![(table, command)] })
}

/// `ALTER INDEX i SET TABLESPACE t`; other ALTER INDEX forms are not checked.
unsafe fn index_set_tablespace(alter: &pg_sys::AlterTableStmt) -> Option<Statement> {
    let tablespace = PgList::<pg_sys::AlterTableCmd>::from_pg(alter.cmds)
        .iter_ptr()
        .find(|cmd| (**cmd).subtype == pg_sys::AlterTableType::AT_SetTableSpace)
        .and_then(|cmd| text((*cmd).name))?;
    let index = pg_sys::RangeVarGetRelidExtended(alter.relation, pg_sys::NoLock as _, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut());
    if index == pg_sys::InvalidOid {
        return None;
    }
    let (table, (name, definition)) = with_rows(
        "SELECT i.indrelid, pg_catalog.format('%I.%I', n.nspname, c.relname),
                CASE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid OPERATOR(pg_catalog.=) c.oid)
                     THEN pg_catalog.pg_get_indexdef(c.oid) END
           FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE i.indexrelid OPERATOR(pg_catalog.=) $1",
        &[OID],
        &[index.into()],
        |rows| {
            if rows.is_empty() {
                return (None, (None, None));
            }
            let row = rows.first();
            (
                row.get::<pg_sys::Oid>(1).ok().flatten(),
                (row.get::<String>(2).ok().flatten(), row.get::<String>(3).ok().flatten()),
            )
        },
    );
    let table = table_by_oid(table?)?;
    let command = CopyCommand::IndexSetTablespace { index: name?, tablespace: pgrx::spi::quote_identifier(&tablespace), definition };
    Some(Statement::TableCopy { copies: vec![(table, command)] })
}

/// The facts of one raw statement, or None if the guard has nothing to say about its kind.
/// `sql` is the statement's text when known (for hints and ON DELETE detection).
pub unsafe fn statement(node: *mut pg_sys::Node, sql: &LazyText<'_>, script: Option<&Script>) -> Option<Statement> {
    if node.is_null() {
        return None;
    }
    if is_a(node, NodeTag::T_IndexStmt) {
        let index = &*(node as *mut pg_sys::IndexStmt);
        let table = table_of(index.relation, script)?;
        // CONCURRENTLY is refused on a partitioned table: the safe way goes
        // through its partitions, which the HINT names.
        let kind = if table.oid == 0 { b'r' } else { pg_sys::get_rel_relkind(pg_sys::Oid::from(table.oid)) as u8 };
        if kind == b'm' {
            // SHARE on a materialized view blocks no reads, and nothing else writes it but REFRESH.
            return None;
        }
        let partitions = (kind == b'p').then(|| partitions_of(&table));
        return Some(Statement::CreateIndex {
            table,
            index_name: text(index.idxname),
            concurrent: index.concurrent,
            unique: index.unique,
            only: !(*index.relation).inh,
            partitions,
        });
    }
    if is_a(node, NodeTag::T_AlterTableStmt) {
        let alter = &*(node as *mut pg_sys::AlterTableStmt);
        if alter.objtype == pg_sys::ObjectType::OBJECT_INDEX {
            return index_set_tablespace(alter);
        }
        if alter.objtype != pg_sys::ObjectType::OBJECT_TABLE && alter.objtype != pg_sys::ObjectType::OBJECT_MATVIEW {
            return None;
        }
        let table = table_of(alter.relation, script)?;
        let lock = lock_level(pg_sys::AlterTableGetLockLevel(alter.cmds));
        let mut actions = Vec::new();
        for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg(alter.cmds).iter_ptr() {
            let cmd = &*cmd;
            use pg_sys::AlterTableType::*;
            let action = match cmd.subtype {
                AT_AddColumn | AT_AddColumnRecurse => match column_def(cmd.def, sql) {
                    Some((column, not_null, has_default, constraints)) => {
                        Action::AddColumn { column, not_null, has_default, constraints }
                    }
                    None => Action::Other,
                },
                AT_DropColumn => match text(cmd.name) {
                    Some(name) => Action::DropColumn { column: Column { type_name: column_type(&table, &name), name } },
                    None => Action::Other,
                },
                AT_SetNotNull => match text(cmd.name) {
                    Some(name) => Action::SetNotNull {
                        has_validated_check: has_validated_not_null_check(&table, &name),
                        column: name,
                        by_primary_key: false,
                    },
                    None => Action::Other,
                },
                AT_AddConstraint | AT_AddConstraintRecurse => match constraint(cmd.def, None, sql) {
                    Some(c) => {
                        if c.kind == ConstraintKind::PrimaryKey && table.oid != 0 {
                            // PostgreSQL adds SET NOT NULL for each nullable key column.
                            let index = (*(cmd.def as *mut pg_sys::Constraint)).indexname;
                            for column in nullable_key_columns(&table, &c.columns, text(index).as_deref()) {
                                actions.push(Action::SetNotNull {
                                    has_validated_check: has_validated_not_null_check(&table, &column),
                                    column,
                                    by_primary_key: true,
                                });
                            }
                        }
                        Action::AddConstraint(c)
                    }
                    None => Action::Other,
                },
                AT_SetTableSpace => match text(cmd.name) {
                    Some(tablespace) => Action::SetTablespace { tablespace: pgrx::spi::quote_identifier(&tablespace) },
                    None => Action::Other,
                },
                AT_AttachPartition if is_a(cmd.def, NodeTag::T_PartitionCmd) => {
                    let partition_cmd = &*(cmd.def as *mut pg_sys::PartitionCmd);
                    match table_of(partition_cmd.name, script) {
                        Some(partition) => Action::AttachPartition {
                            has_validated_check: has_validated_check(&partition),
                            default_partition: if !partition_cmd.bound.is_null() && (*partition_cmd.bound).is_default {
                                None
                            } else {
                                default_partition_of(&table)
                            },
                            partition,
                        },
                        None => Action::Other,
                    }
                }
                _ => Action::Other,
            };
            actions.push(action);
        }
        return Some(Statement::AlterTable { table, actions, lock });
    }
    if is_a(node, NodeTag::T_VacuumStmt) {
        return vacuum_full(&*(node as *mut pg_sys::VacuumStmt), script);
    }
    if is_a(node, NodeTag::T_ClusterStmt) {
        return cluster(&*(node as *mut pg_sys::ClusterStmt), script);
    }
    if is_a(node, NodeTag::T_AlterTableMoveAllStmt) {
        return move_all(&*(node as *mut pg_sys::AlterTableMoveAllStmt));
    }
    if is_a(node, NodeTag::T_RefreshMatViewStmt) {
        let refresh = &*(node as *mut pg_sys::RefreshMatViewStmt);
        let view = table_of(refresh.relation, script)?;
        let (populated, has_unique_index) = read_two::<bool, bool>(
            "SELECT c.relispopulated,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                             WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid AND i.indisunique AND i.indisvalid
                               AND i.indpred IS NULL AND i.indexprs IS NULL)
               FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
            &[OID],
            &[pg_sys::Oid::from(view.oid).into()],
        );
        return Some(Statement::RefreshMaterializedView {
            view,
            concurrent: refresh.concurrent,
            populated: populated.unwrap_or(true),
            with_no_data: refresh.skipData,
            has_unique_index: has_unique_index.unwrap_or(false),
        });
    }
    if is_a(node, NodeTag::T_AlterDomainStmt) {
        return alter_domain(&*(node as *mut pg_sys::AlterDomainStmt));
    }
    if is_a(node, NodeTag::T_DropStmt) {
        let drop = &*(node as *mut pg_sys::DropStmt);
        let names: Vec<*mut pg_sys::List> = PgList::<pg_sys::List>::from_pg(drop.objects).iter_ptr().collect();
        match drop.removeType {
            pg_sys::ObjectType::OBJECT_TABLE => {
                let tables = names
                    .into_iter()
                    .filter_map(|name| table_of(pg_sys::makeRangeVarFromNameList(name), script))
                    .map(|table| {
                        let columns = table_columns(&table);
                        (table, columns)
                    })
                    .collect();
                return Some(Statement::DropTable { tables });
            }
            pg_sys::ObjectType::OBJECT_INDEX => {
                let mut indexes = Vec::new();
                for name in names {
                    let range = pg_sys::makeRangeVarFromNameList(name);
                    let index = pg_sys::RangeVarGetRelidExtended(range, pg_sys::NoLock as _, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut());
                    if index == pg_sys::InvalidOid {
                        continue;
                    }
                    let parent = read_two::<pg_sys::Oid, String>(
                        "SELECT i.indrelid, pg_catalog.format('%I.%I', n.nspname, c.relname)
                           FROM pg_catalog.pg_index i
                           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
                           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                          WHERE i.indexrelid OPERATOR(pg_catalog.=) $1",
                        &[OID],
                        &[index.into()],
                    );
                    if let (Some(table_oid), Some(index_name)) = parent {
                        if let Some(table) = table_by_oid(table_oid) {
                            indexes.push((index_name, table));
                        }
                    }
                }
                return Some(Statement::DropIndex { indexes, concurrent: drop.concurrent });
            }
            _ => return None,
        }
    }
    if is_a(node, NodeTag::T_ReindexStmt) {
        let reindex = &*(node as *mut pg_sys::ReindexStmt);
        let concurrent = PgList::<pg_sys::DefElem>::from_pg(reindex.params)
            .iter_ptr()
            .any(|option| text((*option).defname).as_deref() == Some("concurrently"));
        let range = reindex.relation;
        let (kind, table) = match reindex.kind {
            pg_sys::ReindexObjectType::REINDEX_OBJECT_TABLE => ("TABLE", table_of(range, script)),
            pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX => {
                let index = pg_sys::RangeVarGetRelidExtended(range, pg_sys::NoLock as _, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut());
                let table = read_one::<pg_sys::Oid>(
                    "SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid OPERATOR(pg_catalog.=) $1",
                    &[OID],
                    &[index.into()],
                )
                    .and_then(|oid| table_by_oid(oid));
                ("INDEX", table)
            }
            // These rebuild table after table, each under SHARE while its turn
            // lasts: the largest table is where writes wait longest.
            pg_sys::ReindexObjectType::REINDEX_OBJECT_SCHEMA => {
                let schema = text(reindex.name).unwrap_or_default();
                let table = largest_table(Some(&schema));
                return Some(Statement::Reindex { target: pgrx::spi::quote_identifier(&schema), kind: "SCHEMA".into(), table, concurrent });
            }
            pg_sys::ReindexObjectType::REINDEX_OBJECT_DATABASE => {
                let database = text(reindex.name)
                    .or_else(|| text(pg_sys::get_database_name(pg_sys::MyDatabaseId)))
                    .unwrap_or_default();
                let table = largest_table(None);
                return Some(Statement::Reindex { target: pgrx::spi::quote_identifier(&database), kind: "DATABASE".into(), table, concurrent });
            }
            // REINDEX SYSTEM cannot run CONCURRENTLY: there is no safer statement to offer.
            _ => return None,
        };
        let target = if range.is_null() { String::new() } else {
            let schema = text((*range).schemaname);
            let name = text((*range).relname).unwrap_or_default();
            schema.map_or(name.clone(), |s| format!("{s}.{name}"))
        };
        return Some(Statement::Reindex { target, kind: kind.into(), table, concurrent });
    }
    if is_a(node, NodeTag::T_CreateStmt) {
        let create = &*(node as *mut pg_sys::CreateStmt);
        if create.relation.is_null() {
            return None;
        }
        let namespace = PgTryBuilder::new(|| text(pg_sys::get_namespace_name(pg_sys::RangeVarGetCreationNamespace(create.relation))))
            .catch_others(|_| None)
            .execute();
        let relname = text((*create.relation).relname).unwrap_or_default();
        let name = namespace.map_or(relname.clone(), |n| format!("{n}.{relname}"));
        let mut columns = Vec::new();
        let mut constraints = Vec::new();
        let mut primary_key_types = Vec::new();
        let mut pk_columns = Vec::new();
        for element in PgList::<pg_sys::Node>::from_pg(create.tableElts).iter_ptr() {
            if let Some((column, _, _, inline)) = column_def(element, sql) {
                if inline.iter().any(|c| c.kind == ConstraintKind::PrimaryKey) {
                    primary_key_types.push(column.type_name.clone());
                }
                constraints.extend(inline);
                columns.push(column);
            } else if let Some(c) = constraint(element, None, sql) {
                if c.kind == ConstraintKind::PrimaryKey {
                    pk_columns.extend(c.columns.clone());
                }
                constraints.push(c);
            }
        }
        primary_key_types.extend(
            pk_columns.iter().filter_map(|pk| columns.iter().find(|c| &c.name == pk)).map(|c| c.type_name.clone()),
        );
        // CREATE TABLE ... PARTITION OF p (not DEFAULT): p's default partition is scanned.
        let default_partition = if !create.partbound.is_null() && !(*create.partbound).is_default {
            PgList::<pg_sys::RangeVar>::from_pg(create.inhRelations)
                .iter_ptr()
                .next()
                .and_then(|parent| table_of(parent, script))
                .and_then(|parent| default_partition_of(&parent))
        } else {
            None
        };
        return Some(Statement::CreateTable { name, columns, constraints, primary_key_types, default_partition });
    }
    if is_a(node, NodeTag::T_TruncateStmt) {
        // Event triggers do not fire for TRUNCATE; migrate_guard_check and
        // migrate_review still see it.
        let truncate = &*(node as *mut pg_sys::TruncateStmt);
        let tables = PgList::<pg_sys::RangeVar>::from_pg(truncate.relations)
            .iter_ptr()
            .filter_map(|range| table_of(range, script))
            .collect();
        return Some(Statement::Truncate { tables });
    }
    if is_a(node, NodeTag::T_AlterEnumStmt) {
        let alter = &*(node as *mut pg_sys::AlterEnumStmt);
        if alter.newVal.is_null() || !alter.oldVal.is_null() {
            return None;
        }
        return Some(Statement::AddEnumValue {
            type_name: string_list(alter.typeName).join("."),
            value: text(alter.newVal).unwrap_or_default(),
            in_transaction_block: pg_sys::IsTransactionBlock(),
        });
    }
    None
}

/// Sessions holding locks on `table` that conflict with `level`, whatever the
/// age of their transactions (lock_queue applies its threshold).
pub fn blockers(table: &Table, level: LockLevel) -> Vec<super::facts::Blocker> {
    // The lock manager answers "does anyone hold a conflicting lock?" cheaply (it
    // is how CREATE INDEX CONCURRENTLY waits); pg_locks and pg_stat_activity
    // are read only when someone does.
    let tag = pg_sys::LOCKTAG {
        // SAFETY: a backend global.
        locktag_field1: u32::from(unsafe { pg_sys::MyDatabaseId }),
        locktag_field2: table.oid,
        locktag_field3: 0,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    };
    let mut count = 0;
    // SAFETY: a valid relation lock tag and lock mode; the result is palloc'd.
    unsafe { pg_sys::GetLockConflicts(&tag, level as i32, &mut count) };
    if count == 0 {
        return Vec::new();
    }
    // clock_timestamp, not now(): a holder's transaction may have begun after
    // this one did.
    let rows: Vec<(i32, String, i64, String, String, String)> = Spi::connect(|client| {
        client
            .select(
                "SELECT l.pid, l.mode,
                        (extract(epoch FROM pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) a.xact_start)
                            OPERATOR(pg_catalog.*) 1000)::bigint,
                        coalesce(a.query_start::timestamp(0)::pg_catalog.text, ''),
                        pg_catalog.left(coalesce(a.query, ''), 200),
                        coalesce(a.state, '')
                   FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
                  WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.relation OPERATOR(pg_catalog.=) $1
                    AND l.granted AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
                    AND a.xact_start IS NOT NULL",
                None,
                &[pg_sys::Oid::from(table.oid).into()],
            )
            .map(|rows| {
                rows.filter_map(|row| {
                    Some((
                        row.get::<i32>(1).ok()??,
                        row.get::<String>(2).ok()??,
                        row.get::<i64>(3).ok()??,
                        row.get::<String>(4).ok()??,
                        row.get::<String>(5).ok()??,
                        row.get::<String>(6).ok()??,
                    ))
                })
                .collect()
            })
            .unwrap_or_default()
    });
    rows.into_iter()
        .filter(|(_, mode, ..)| {
            let held = match mode.as_str() {
                "AccessShareLock" => 1,
                "RowShareLock" => 2,
                "RowExclusiveLock" => 3,
                "ShareUpdateExclusiveLock" => 4,
                "ShareLock" => 5,
                "ShareRowExclusiveLock" => 6,
                "ExclusiveLock" => 7,
                _ => 8,
            };
            // SAFETY: both are valid lock modes.
            unsafe { pg_sys::DoLockModesConflict(level as i32, held) }
        })
        .map(|(pid, mode, age, query_start, query, state)| super::facts::Blocker {
            pid,
            table: table.name.clone(),
            mode,
            state,
            transaction_age_ms: age.max(0),
            query_start,
            query,
        })
        .collect()
}
