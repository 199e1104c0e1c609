//! Whether an ALTER TABLE rewrites its table, decided without running it, for
//! migrate_guard_check() and migrate_review(). Live, the table_rewrite event
//! says so; here the same decisions PostgreSQL 15 takes in tablecmds.c are
//! taken with the server's own functions on the live catalog:
//!
//! - ALTER COLUMN TYPE (ATPrepAlterColumnType): the USING expression (or the
//!   column itself) is transformed, coerced to the new type and typmod at
//!   assignment level, and simplified by the planner, as PostgreSQL does; then
//!   ATColumnChangeRequiresRewrite's walk decides. So binary-coercible casts
//!   (varchar to text), length and precision increases (whose planner support
//!   functions reduce the coercion to a relabel), and domains without
//!   constraints need no rewrite; int to bigint, a USING with any function, a
//!   domain with constraints, and timestamp to timestamptz (unless the session's
//!   TimeZone is UTC) do.
//! - ADD COLUMN (ATExecAddColumn, StoreAttrDefault): a volatile default, an
//!   identity or serial column, a stored generated column, or a domain type
//!   with constraints rewrites; a constant default does not (it is a missing
//!   value).
//! - SET LOGGED / SET UNLOGGED: rewrites unless the table already is so.
//! - SET ACCESS METHOD: rewrites unless it already uses that method.
//!
//! A partitioned table has no storage: each leaf partition is rewritten (and
//! reported by table_rewrite) on its own, so the tables returned are the leaves.

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;
use pgrx::{is_a, PgList};

use super::extract;
use super::facts::Table;
use crate::subxact::{self, Keep};

// AT_REWRITE_* bits from PostgreSQL's event_trigger.h (as table_rewrite reports them).
pub const ALTER_PERSISTENCE: u32 = 0x01;
pub const DEFAULT_VAL: u32 = 0x02;
pub const COLUMN_REWRITE: u32 = 0x04;
pub const ACCESS_METHOD: u32 = 0x08;

const SERIAL_TYPES: [&str; 6] = ["smallserial", "serial2", "serial", "serial4", "bigserial", "serial8"];

/// The tables `node` would rewrite, each with the table_rewrite reason bits
/// PostgreSQL would report. Empty for anything but an ALTER TABLE of an
/// existing table, and when the statement would fail (live, it would fail too).
///
/// # Safety
/// `node` is a raw parse tree node.
pub unsafe fn rewrites(node: *mut pg_sys::Node) -> Vec<(Table, u32)> {
    if node.is_null() || !is_a(node, NodeTag::T_AlterTableStmt) {
        return Vec::new();
    }
    let alter = &*(node as *mut pg_sys::AlterTableStmt);
    if alter.objtype != pg_sys::ObjectType::OBJECT_TABLE || alter.relation.is_null() {
        return Vec::new();
    }
    let relid = pg_sys::RangeVarGetRelidExtended(alter.relation, pg_sys::NoLock as _, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut());
    if relid == pg_sys::InvalidOid {
        return Vec::new();
    }
    let cmds = alter.cmds;
    // Parse analysis can raise (a type that does not exist, a USING that does
    // not cast): caught in a subtransaction, that is "no rewrite to report".
    let Ok((reason, partitioned)) = subxact::run(Keep::Rollback, || reason_of(relid, cmds)) else { return Vec::new() };
    if reason == 0 {
        return Vec::new();
    }
    let oids = if partitioned { leaf_partitions(relid) } else { vec![relid] };
    oids.into_iter().filter_map(|oid| extract::table_by_oid(oid).map(|table| (table, reason))).collect()
}

/// The reason bits of every subcommand, and whether the table is partitioned.
#[allow(non_upper_case_globals)]
unsafe fn reason_of(relid: pg_sys::Oid, cmds: *mut pg_sys::List) -> (u32, bool) {
    let rel = pg_sys::relation_open(relid, pg_sys::AccessShareLock as _);
    let form = &*(*rel).rd_rel;
    let relkind = form.relkind as u8;
    if relkind != b'r' && relkind != b'p' {
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
        return (0, false);
    }
    let mut reason = 0;
    for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg(cmds).iter_ptr() {
        pgrx::check_for_interrupts!();
        let cmd = &*cmd;
        use pg_sys::AlterTableType::*;
        reason |= match cmd.subtype {
            AT_AlterColumnType if is_a(cmd.def, NodeTag::T_ColumnDef) => alter_column_type(rel, cmd),
            AT_AddColumn | AT_AddColumnRecurse if is_a(cmd.def, NodeTag::T_ColumnDef) => add_column(rel, &*(cmd.def as *mut pg_sys::ColumnDef)),
            AT_SetLogged if form.relpersistence as u8 != b'p' && relkind == b'r' => ALTER_PERSISTENCE,
            AT_SetUnLogged if form.relpersistence as u8 != b'u' && relkind == b'r' => ALTER_PERSISTENCE,
            AT_SetAccessMethod if !cmd.name.is_null() && relkind == b'r' => {
                if pg_sys::get_table_am_oid(cmd.name, false) != form.relam { ACCESS_METHOD } else { 0 }
            }
            _ => 0,
        };
    }
    pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
    (reason, relkind == b'p')
}

/// A parse state whose only range table entry is `rel`, as ALTER TABLE builds one.
unsafe fn parse_state(rel: pg_sys::Relation) -> *mut pg_sys::ParseState {
    let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
    let item = pg_sys::addRangeTableEntryForRelation(pstate, rel, pg_sys::AccessShareLock as _, std::ptr::null_mut(), false, true);
    pg_sys::addNSItemToQuery(pstate, item, false, true, true);
    pstate
}

/// ATPrepAlterColumnType's transform and ATColumnChangeRequiresRewrite.
unsafe fn alter_column_type(rel: pg_sys::Relation, cmd: &pg_sys::AlterTableCmd) -> u32 {
    let def = &*(cmd.def as *mut pg_sys::ColumnDef);
    if cmd.name.is_null() {
        return 0;
    }
    let attnum = pg_sys::get_attnum((*rel).rd_id, cmd.name);
    if attnum <= 0 {
        return 0;
    }
    let tupdesc = (*rel).rd_att;
    let attribute = &*(*tupdesc).attrs.as_ptr().add(usize::from(attnum as u16) - 1);
    let mut target = pg_sys::InvalidOid;
    let mut target_typmod = -1;
    pg_sys::typenameTypeIdAndMod(std::ptr::null_mut(), def.typeName, &mut target, &mut target_typmod);
    let pstate = parse_state(rel);
    let mut transform = if def.raw_default.is_null() {
        pg_sys::makeVar(1, attnum, attribute.atttypid, attribute.atttypmod, attribute.attcollation, 0) as *mut pg_sys::Node
    } else {
        pg_sys::transformExpr(pstate, def.raw_default, pg_sys::ParseExprKind::EXPR_KIND_ALTER_COL_TRANSFORM)
    };
    transform = pg_sys::coerce_to_target_type(
        pstate,
        transform,
        pg_sys::exprType(transform),
        target,
        target_typmod,
        pg_sys::CoercionContext::COERCION_ASSIGNMENT,
        pg_sys::CoercionForm::COERCE_IMPLICIT_CAST,
        -1,
    );
    if transform.is_null() {
        // "column cannot be cast automatically": the live statement fails.
        return 0;
    }
    pg_sys::assign_expr_collations(pstate, transform);
    let transform = pg_sys::expression_planner(transform as *mut pg_sys::Expr) as *mut pg_sys::Node;
    if requires_rewrite(transform, attnum) { COLUMN_REWRITE } else { 0 }
}

/// ATColumnChangeRequiresRewrite (tablecmds.c, static there): only relabels,
/// domains without constraints and a timestamp/timestamptz switch that the
/// time zone makes a no-op may stand between the column and its new value.
unsafe fn requires_rewrite(mut expr: *mut pg_sys::Node, attnum: i16) -> bool {
    loop {
        if expr.is_null() {
            return true;
        }
        if is_a(expr, NodeTag::T_Var) {
            return (*(expr as *mut pg_sys::Var)).varattno != attnum;
        } else if is_a(expr, NodeTag::T_RelabelType) {
            expr = (*(expr as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        } else if is_a(expr, NodeTag::T_CoerceToDomain) {
            let domain = &*(expr as *mut pg_sys::CoerceToDomain);
            if pg_sys::DomainHasConstraints(domain.resulttype) {
                return true;
            }
            expr = domain.arg as *mut pg_sys::Node;
        } else if is_a(expr, NodeTag::T_FuncExpr) {
            let function = &*(expr as *mut pg_sys::FuncExpr);
            let id = u32::from(function.funcid);
            let timestamp_switch = id == pg_sys::F_TIMESTAMPTZ_TIMESTAMP || id == pg_sys::F_TIMESTAMP_TIMESTAMPTZ;
            if !timestamp_switch || pg_sys::TimestampTimestampTzRequiresRewrite() {
                return true;
            }
            let Some(first) = PgList::<pg_sys::Node>::from_pg(function.args).get_ptr(0) else { return true };
            expr = first;
        } else {
            return true;
        }
    }
}

/// ATExecAddColumn: whether the new column's value must be written into every
/// row rather than kept as a missing value.
unsafe fn add_column(rel: pg_sys::Relation, def: &pg_sys::ColumnDef) -> u32 {
    if def.typeName.is_null() || def.colname.is_null() {
        return 0;
    }
    if def.identity != 0 || def.generated != 0 || is_serial(def.typeName) {
        return DEFAULT_VAL;
    }
    let mut raw_default = def.raw_default;
    for constraint in PgList::<pg_sys::Node>::from_pg(def.constraints).iter_ptr() {
        if !is_a(constraint, NodeTag::T_Constraint) {
            continue;
        }
        let constraint = &*(constraint as *mut pg_sys::Constraint);
        match constraint.contype {
            pg_sys::ConstrType::CONSTR_IDENTITY | pg_sys::ConstrType::CONSTR_GENERATED => return DEFAULT_VAL,
            pg_sys::ConstrType::CONSTR_DEFAULT => raw_default = constraint.raw_expr,
            _ => {}
        }
    }
    let mut type_oid = pg_sys::InvalidOid;
    let mut typmod = -1;
    pg_sys::typenameTypeIdAndMod(std::ptr::null_mut(), def.typeName, &mut type_oid, &mut typmod);
    if pg_sys::DomainHasConstraints(type_oid) {
        return DEFAULT_VAL;
    }
    let default = if raw_default.is_null() {
        // build_column_default falls back on the type's own default (a domain's).
        pg_sys::get_typdefault(type_oid)
    } else {
        pg_sys::cookDefault(parse_state(rel), raw_default, type_oid, typmod, def.colname, 0)
    };
    if default.is_null() {
        return 0;
    }
    let planned = pg_sys::expression_planner(default as *mut pg_sys::Expr);
    if pg_sys::contain_volatile_functions(planned as *mut pg_sys::Node) { DEFAULT_VAL } else { 0 }
}

/// `serial` and its kin, unqualified or in pg_catalog: a sequence default.
unsafe fn is_serial(type_name: *mut pg_sys::TypeName) -> bool {
    let type_name = &*type_name;
    if !type_name.arrayBounds.is_null() {
        return false;
    }
    let names: Vec<String> = PgList::<pg_sys::Node>::from_pg(type_name.names)
        .iter_ptr()
        .filter(|n| is_a(*n, NodeTag::T_String))
        .map(|n| std::ffi::CStr::from_ptr((*(n as *mut pg_sys::String)).sval).to_string_lossy().into_owned())
        .collect();
    match names.as_slice() {
        [name] => SERIAL_TYPES.contains(&name.as_str()),
        [schema, name] => schema == "pg_catalog" && SERIAL_TYPES.contains(&name.as_str()),
        _ => false,
    }
}

/// The partitions with storage under a partitioned table, at any depth.
fn leaf_partitions(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT t.relid FROM pg_catalog.pg_partition_tree($1) t
                   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
                  WHERE t.isleaf AND c.relkind OPERATOR(pg_catalog.=) 'r' ORDER BY t.level, t.relid",
                None,
                &[relid.into()],
            )
            .map(|rows| rows.filter_map(|row| row.get::<pg_sys::Oid>(1).ok().flatten()).collect())
            .unwrap_or_default()
    })
}
