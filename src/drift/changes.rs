//! What a recorded statement changed, read from its raw parse tree, in the
//! terms of revisions::inverse (which decides whether and how to undo it).

use std::ffi::CStr;

use pgrx::pg_sys::{self, NodeTag};
use pgrx::{is_a, PgList};

use crate::revisions::inverse::{type_change_is_lossless, Change, Name, ObjectKind};
use crate::server_sql;

/// A column's type before and after an ALTER COLUMN ... TYPE, as recorded
/// (migrate.drift.type_changes).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TypeChange {
    pub column: String,
    pub from: String,
    pub to: Option<String>,
}

/// The changes of `statement`, in order; `what` names it when it has no inverse.
pub fn changes(statement: &str, what: &str, types: &[TypeChange]) -> Vec<Change> {
    let Ok(nodes) = server_sql::parse_nodes(statement) else {
        return vec![Change::Other { what: what.to_string() }];
    };
    let mut out = Vec::new();
    for node in nodes {
        pgrx::check_for_interrupts!();
        // SAFETY: parse_nodes returns valid raw parse trees.
        out.extend(unsafe { node_changes(node, types) }.unwrap_or_else(|| vec![Change::Other { what: what.to_string() }]));
    }
    out
}

unsafe fn text(pointer: *const std::ffi::c_char) -> Option<String> {
    (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
}

unsafe fn range_var_name(relation: *mut pg_sys::RangeVar) -> Option<Name> {
    let relation = relation.as_ref()?;
    Some(Name { schema: text(relation.schemaname), name: text(relation.relname)? })
}

/// A qualified name given as a List of String (types).
unsafe fn list_name(list: *mut pg_sys::List) -> Option<Name> {
    let parts: Vec<String> = PgList::<pg_sys::Node>::from_pg(list)
        .iter_ptr()
        .filter(|node| is_a(*node, NodeTag::T_String))
        .filter_map(|node| text((*(node as *mut pg_sys::String)).sval))
        .collect();
    match parts.as_slice() {
        [name] => Some(Name::new(None, name)),
        [schema, name] => Some(Name::new(Some(schema), name)),
        _ => None,
    }
}

fn relation_kind(object: pg_sys::ObjectType::Type) -> Option<ObjectKind> {
    use pg_sys::ObjectType::*;
    match object {
        OBJECT_TABLE => Some(ObjectKind::Table),
        OBJECT_INDEX => Some(ObjectKind::Index),
        OBJECT_VIEW => Some(ObjectKind::View),
        OBJECT_MATVIEW => Some(ObjectKind::MaterializedView),
        OBJECT_SEQUENCE => Some(ObjectKind::Sequence),
        OBJECT_TYPE => Some(ObjectKind::Type),
        _ => None,
    }
}

/// None: nothing here knows this statement (it has no inverse).
///
/// # Safety
/// `node` is a valid raw parse tree.
unsafe fn node_changes(node: *mut pg_sys::Node, types: &[TypeChange]) -> Option<Vec<Change>> {
    let create = |kind, name: Option<Name>, if_not_exists| name.map(|name| vec![Change::Create { kind, name, if_not_exists }]);
    if is_a(node, NodeTag::T_CreateStmt) {
        let stmt = &*(node as *mut pg_sys::CreateStmt);
        return create(ObjectKind::Table, range_var_name(stmt.relation), stmt.if_not_exists);
    }
    if is_a(node, NodeTag::T_CreateTableAsStmt) {
        let stmt = &*(node as *mut pg_sys::CreateTableAsStmt);
        let kind = if stmt.objtype == pg_sys::ObjectType::OBJECT_MATVIEW { ObjectKind::MaterializedView } else { ObjectKind::Table };
        return create(kind, stmt.into.as_ref().and_then(|into| range_var_name(into.rel)), stmt.if_not_exists);
    }
    if is_a(node, NodeTag::T_IndexStmt) {
        let stmt = &*(node as *mut pg_sys::IndexStmt);
        // An index lives in its table's schema; without a name the server chose one.
        let name = text(stmt.idxname)?;
        let schema = stmt.relation.as_ref().and_then(|r| text(r.schemaname));
        return create(ObjectKind::Index, Some(Name { schema, name }), stmt.if_not_exists);
    }
    if is_a(node, NodeTag::T_ViewStmt) {
        let stmt = &*(node as *mut pg_sys::ViewStmt);
        // CREATE OR REPLACE may have replaced a view: dropping it loses the old one.
        if stmt.replace {
            return None;
        }
        return create(ObjectKind::View, range_var_name(stmt.view), false);
    }
    if is_a(node, NodeTag::T_CreateSeqStmt) {
        let stmt = &*(node as *mut pg_sys::CreateSeqStmt);
        return create(ObjectKind::Sequence, range_var_name(stmt.sequence), stmt.if_not_exists);
    }
    if is_a(node, NodeTag::T_CompositeTypeStmt) {
        let stmt = &*(node as *mut pg_sys::CompositeTypeStmt);
        return create(ObjectKind::Type, range_var_name(stmt.typevar), false);
    }
    if is_a(node, NodeTag::T_CreateEnumStmt) {
        return create(ObjectKind::Type, list_name((*(node as *mut pg_sys::CreateEnumStmt)).typeName), false);
    }
    if is_a(node, NodeTag::T_CreateRangeStmt) {
        return create(ObjectKind::Type, list_name((*(node as *mut pg_sys::CreateRangeStmt)).typeName), false);
    }
    if is_a(node, NodeTag::T_AlterTableStmt) {
        return alter_table_changes(&*(node as *mut pg_sys::AlterTableStmt), types);
    }
    if is_a(node, NodeTag::T_RenameStmt) {
        let stmt = &*(node as *mut pg_sys::RenameStmt);
        let new_name = text(stmt.newname)?;
        if stmt.renameType == pg_sys::ObjectType::OBJECT_COLUMN && stmt.relationType == pg_sys::ObjectType::OBJECT_TABLE {
            return Some(vec![Change::RenameColumn { table: range_var_name(stmt.relation)?, column: text(stmt.subname)?, new_name }]);
        }
        let kind = relation_kind(stmt.renameType)?;
        let name = if kind == ObjectKind::Type { list_name(stmt.object as *mut pg_sys::List)? } else { range_var_name(stmt.relation)? };
        return Some(vec![Change::Rename { kind, name, new_name }]);
    }
    None
}

/// One change per subcommand; any subcommand without an inverse makes the
/// whole statement one (the revision then has no downgrade anyway).
unsafe fn alter_table_changes(stmt: &pg_sys::AlterTableStmt, types: &[TypeChange]) -> Option<Vec<Change>> {
    if stmt.objtype != pg_sys::ObjectType::OBJECT_TABLE {
        return None;
    }
    let table = range_var_name(stmt.relation)?;
    let mut out = Vec::new();
    for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg(stmt.cmds).iter_ptr() {
        let cmd = &*cmd;
        use pg_sys::AlterTableType as At;
        match cmd.subtype {
            // IF NOT EXISTS may have added nothing.
            At::AT_AddColumn if !cmd.missing_ok && is_a(cmd.def, NodeTag::T_ColumnDef) => {
                let column = text((*(cmd.def as *mut pg_sys::ColumnDef)).colname)?;
                out.push(Change::AddColumn { table: table.clone(), column });
            }
            At::AT_AddConstraint if is_a(cmd.def, NodeTag::T_Constraint) => {
                let constraint = text((*(cmd.def as *mut pg_sys::Constraint)).conname);
                out.push(Change::AddConstraint { table: table.clone(), constraint });
            }
            // The types the capture saw before and after the command.
            At::AT_AlterColumnType => {
                let column = text(cmd.name)?;
                let recorded = types.iter().find(|t| t.column == column);
                let old_type = recorded.map(|t| t.from.clone()).unwrap_or_default();
                let new_type = recorded.and_then(|t| t.to.clone()).unwrap_or_else(|| "its new type".into());
                let lossless = !old_type.is_empty() && type_change_is_lossless(&old_type, &new_type);
                out.push(Change::AlterColumnType { table: table.clone(), column, old_type, new_type, lossless });
            }
            _ => return None,
        }
    }
    Some(out)
}
