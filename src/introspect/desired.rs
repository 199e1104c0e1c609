//! The desired schema, read by letting the server run the desired DDL.
//!
//! Method (docs/autogenerate.md, "How the desired schema is read"):
//! 1. psql meta-command lines (pg_dump's `\restrict`) are blanked where the
//!    server's parser trips on them, and only there.
//! 2. The text is parsed once by the server's raw parser. Statements that carry
//!    no schema object (SET, `SELECT pg_catalog.set_config`, `CREATE SCHEMA`
//!    of the compared schema, OWNER TO, GRANT/REVOKE) are left out; statement
//!    kinds the comparison has no use for are left out and listed.
//! 3. In each remaining parse tree, every name qualified with the compared
//!    schema (`public.users`, `'public.users_id_seq'::regclass`,
//!    `COMMENT ON COLUMN public.users.id`) is changed in the tree to the
//!    scratch namespace: no text is rewritten. Names that belong to an
//!    extension installed in the compared schema (`public.citext`) keep
//!    pointing there.
//! 4. The changed trees run, one by one, through parse analysis and
//!    ProcessUtility, as SPI would run them, inside a subtransaction that is
//!    always rolled back, with the guard bypassed (it is pg_migrate's own
//!    DDL on a namespace nobody else can see) and the search_path set to the
//!    scratch namespace, then the compared schema.
//! 5. The scratch namespace is read with the same catalog reader as the live
//!    one, before the rollback. Nothing of it persists; the only locks on live
//!    objects are those a statement takes on objects it names outside the
//!    compared schema (a foreign key to another schema), released at the rollback.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{CStr, CString};

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;
use pgrx::{is_a, PgList};

use crate::autogen::model::Schema;
use crate::errors::{raise, OrRaise};
use crate::server_sql::{self, line_of};
use crate::subxact::{self, Keep};

/// The desired schema and what was left out of it.
pub struct Desired {
    pub schema: Schema,
    /// "statement 12 (CREATE EXTENSION) was not run: ..." lines.
    pub skipped: Vec<String>,
}

/// Blank the psql meta-command lines the parser cannot read (pg_dump writes
/// `\restrict <key>` and `\unrestrict <key>`). Only a line whose first
/// non-blank character is the backslash the parser stopped at is blanked, so a
/// backslash inside a string or a function body is never touched.
fn without_meta_commands(ddl: &str) -> String {
    let mut text = ddl.to_string();
    let mut attempts = text.lines().count() + 1;
    while attempts > 0 {
        attempts -= 1;
        pgrx::check_for_interrupts!();
        let Err(error) = server_sql::parse_raw_statements(&text) else { break };
        let Some(offset) = error.offset else { break };
        if text.as_bytes().get(offset) != Some(&b'\\') {
            break;
        }
        let line_start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
        if !text[line_start..offset].trim().is_empty() {
            break;
        }
        let line_end = text[offset..].find('\n').map_or(text.len(), |n| offset + n);
        let blank = " ".repeat(line_end - line_start);
        text.replace_range(line_start..line_end, &blank);
    }
    text
}

/// Run `ddl` in a scratch namespace standing in for `target` and read it back.
pub fn read_desired(ddl: &str, target: &str) -> Desired {
    let text = without_meta_commands(ddl);
    let statements = server_sql::parse_raw_statements(&text).unwrap_or_else(|error| {
        let line = line_of(&text, error.offset.unwrap_or(0), 1);
        raise(
            error.code,
            format!("the desired DDL has a syntax error at line {line}: {}", error.message),
            Some("Nothing was compared.".into()),
            Some("The desired DDL is plain SQL or pg_dump --schema-only output; psql meta-commands other than \\restrict are not read.".into()),
        )
    });
    // "pg_" names are reserved for the system.
    let scratch = format!("_pg_migrate_desired_{}", unsafe { pg_sys::MyProcPid });
    let keep = extension_members(target);
    // The statement running, once the scratch namespace is ready.
    let current: Cell<Option<usize>> = Cell::new(None);
    let mut skipped = Vec::new();

    let outcome = subxact::run(Keep::Rollback, || {
        crate::guard::context::bypassed(|| {
            Spi::connect_mut(|client| {
                client
                    .update(&format!("CREATE SCHEMA {}", quote(&scratch)), None, &[])
                    .or_raise("create the scratch namespace");
                client
                    .select(
                        "SELECT pg_catalog.set_config('search_path', $1, true)",
                        None,
                        &[format!("{}, {}", quote(&scratch), quote(target)).into()],
                    )
                    .or_raise("set the search_path for the desired DDL");
            });
            let c_text = CString::new(text.as_str()).unwrap_or_default();
            let retarget = Retarget {
                from: target.to_string(),
                to: CString::new(scratch.as_str()).unwrap_or_default(),
                keep_types: keep.0.clone(),
                keep_functions: keep.1.clone(),
            };
            for (index, raw) in statements.iter().enumerate() {
                pgrx::check_for_interrupts!();
                current.set(Some(index));
                // SAFETY: raw_parser's trees, changed in place before they run.
                match unsafe { prepare(*raw, &retarget) } {
                    Prepared::Run => unsafe { run_raw(*raw, &c_text) },
                    Prepared::Quiet => {}
                    Prepared::Skip(why) => skipped.push(format!("statement {} ({}) was not run: {why}", index + 1, tag_name(*raw))),
                }
            }
            crate::introspect::catalog::read_namespace(&scratch, &format!("{}, {}", quote(&scratch), quote(target)))
        })
    });
    match outcome {
        Ok(schema) => Desired { schema, skipped },
        Err(failure) => {
            let Some(index) = current.get() else {
                raise(
                    failure.code,
                    format!("could not prepare a scratch namespace for the desired DDL: {}", failure.message),
                    failure.detail,
                    Some("Comparing needs the right to create a schema in this database (CREATE on it).".into()),
                )
            };
            let (line, statement) = statement_text(&text, statements[index]);
            let message = failure.message.replace(&format!("{}.", scratch), "").replace(&scratch, target);
            raise(
                failure.code,
                format!("the desired DDL failed at statement {} (line {line}): {message}", index + 1),
                Some(format!(
                    "Statement: {}\nNothing was changed: the desired DDL runs in a scratch namespace that is rolled back.{}",
                    crate::engine::excerpt(&statement),
                    failure.detail.map(|d| format!("\n{d}")).unwrap_or_default()
                )),
                Some("The desired DDL must run on an empty schema: objects it needs outside the compared schema (extensions, other schemas) must exist already.".into()),
            )
        }
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Types and functions of extensions installed in `target`: names qualified
/// with the compared schema that must keep pointing at it.
fn extension_members(target: &str) -> (HashSet<String>, HashSet<String>) {
    Spi::connect(|client| {
        let mut types = HashSet::new();
        let mut functions = HashSet::new();
        let rows = client
            .select(
                "SELECT 't', t.typname::pg_catalog.text FROM pg_catalog.pg_type t
                   JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                        AND d.objid OPERATOR(pg_catalog.=) t.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
                  WHERE t.typnamespace OPERATOR(pg_catalog.=) (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $1)
                 UNION ALL
                 SELECT 'f', p.proname::pg_catalog.text FROM pg_catalog.pg_proc p
                   JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                        AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
                  WHERE p.pronamespace OPERATOR(pg_catalog.=) (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $1)",
                None,
                &[target.into()],
            )
            .or_raise("read the extensions of the compared schema");
        for row in rows {
            let kind = row.get::<String>(1).ok().flatten().unwrap_or_default();
            let name = row.get::<String>(2).ok().flatten().unwrap_or_default();
            if kind == "t" {
                types.insert(name);
            } else {
                functions.insert(name);
            }
        }
        (types, functions)
    })
}

fn statement_text(text: &str, raw: *mut pg_sys::RawStmt) -> (usize, String) {
    // SAFETY: a RawStmt from raw_parser over `text`.
    let (location, length) = unsafe { ((*raw).stmt_location, (*raw).stmt_len) };
    let start = usize::try_from(location).unwrap_or(0).min(text.len());
    let end = match usize::try_from(length) {
        Ok(0) | Err(_) => text.len(),
        Ok(n) => (start + n).min(text.len()),
    };
    let chunk = text.get(start..end).unwrap_or_default().trim();
    (line_of(text, start + (text[start..end].len() - text[start..end].trim_start().len()), 1), chunk.to_string())
}

fn tag_name(raw: *mut pg_sys::RawStmt) -> String {
    // SAFETY: CreateCommandName reads the node tag of a parse tree.
    unsafe {
        let name = pg_sys::CreateCommandName((*raw).stmt);
        if name.is_null() { "?".into() } else { CStr::from_ptr(name).to_string_lossy().into_owned() }
    }
}

enum Prepared {
    Run,
    /// Carries nothing the comparison reads (SET, OWNER TO, GRANT ...).
    Quiet,
    Skip(&'static str),
}

struct Retarget {
    from: String,
    to: CString,
    keep_types: HashSet<String>,
    keep_functions: HashSet<String>,
}

unsafe fn c_str(pointer: *const std::ffi::c_char) -> Option<String> {
    (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
}

unsafe fn string_value(node: *mut pg_sys::Node) -> Option<String> {
    if node.is_null() || !is_a(node, NodeTag::T_String) {
        return None;
    }
    c_str((*(node as *mut pg_sys::String)).sval)
}

/// Decide what to do with one statement, and retarget its names.
unsafe fn prepare(raw: *mut pg_sys::RawStmt, ctx: &Retarget) -> Prepared {
    let node = (*raw).stmt;
    use NodeTag::*;
    if is_a(node, T_VariableSetStmt) || is_a(node, T_AlterOwnerStmt) || is_a(node, T_GrantStmt) || is_a(node, T_GrantRoleStmt)
        || is_a(node, T_AlterDefaultPrivilegesStmt)
    {
        return Prepared::Quiet;
    }
    if is_a(node, T_SelectStmt) {
        return if is_set_config(node) { Prepared::Quiet } else { Prepared::Skip("a query, not DDL") };
    }
    if is_a(node, T_CreateSchemaStmt) {
        let create = &*(node as *mut pg_sys::CreateSchemaStmt);
        return if c_str(create.schemaname).as_deref() == Some(ctx.from.as_str()) {
            Prepared::Quiet
        } else {
            Prepared::Skip("only the compared schema is read; other schemas must exist already")
        };
    }
    if is_a(node, T_CommentStmt) {
        let comment = &*(node as *mut pg_sys::CommentStmt);
        if comment.objtype == pg_sys::ObjectType::OBJECT_SCHEMA || comment.objtype == pg_sys::ObjectType::OBJECT_EXTENSION {
            return Prepared::Quiet;
        }
    }
    if is_a(node, T_AlterTableStmt) {
        // OWNER TO is not compared: drop those subcommands, and the statement if nothing is left.
        let alter = &mut *(node as *mut pg_sys::AlterTableStmt);
        let commands = PgList::<pg_sys::AlterTableCmd>::from_pg(alter.cmds);
        let mut kept = PgList::<pg_sys::AlterTableCmd>::new();
        for command in commands.iter_ptr() {
            if (*command).subtype != pg_sys::AlterTableType::AT_ChangeOwner {
                kept.push(command);
            }
        }
        if kept.is_empty() {
            return Prepared::Quiet;
        }
        alter.cmds = kept.into_pg();
    }
    let runs = [
        T_CreateStmt, T_AlterTableStmt, T_IndexStmt, T_ViewStmt, T_CreateTableAsStmt, T_CreateSeqStmt, T_AlterSeqStmt,
        T_CreateEnumStmt, T_AlterEnumStmt, T_CommentStmt, T_CreateFunctionStmt, T_CreateTrigStmt, T_CreateDomainStmt,
        T_CompositeTypeStmt, T_CreatePolicyStmt,
    ];
    if !runs.iter().any(|tag| is_a(node, *tag)) {
        return Prepared::Skip("this kind of statement is not compared (docs/autogenerate.md lists what is)");
    }
    walk(node, ctx);
    Prepared::Run
}

unsafe fn is_set_config(node: *mut pg_sys::Node) -> bool {
    let select = &*(node as *mut pg_sys::SelectStmt);
    let targets = PgList::<pg_sys::ResTarget>::from_pg(select.targetList);
    targets.len() == 1
        && targets.get_ptr(0).is_some_and(|target| {
            let value = (*target).val;
            !value.is_null()
                && is_a(value, NodeTag::T_FuncCall)
                && PgList::<pg_sys::Node>::from_pg((*(value as *mut pg_sys::FuncCall)).funcname)
                    .iter_ptr()
                    .last()
                    .and_then(|n| string_value(n))
                    .as_deref()
                    == Some("set_config")
        })
}

/// Parse analysis, planning (a utility statement passes through) and
/// ProcessUtility, as SPI runs a statement; then the next one sees it.
unsafe fn run_raw(raw: *mut pg_sys::RawStmt, text: &CStr) {
    pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(raw, text.as_ptr(), std::ptr::null(), 0, std::ptr::null_mut());
    let plans = pg_sys::pg_plan_queries(queries, text.as_ptr(), pg_sys::CURSOR_OPT_PARALLEL_OK as i32, std::ptr::null_mut());
    for plan in PgList::<pg_sys::PlannedStmt>::from_pg(plans).iter_ptr() {
        if (*plan).commandType != pg_sys::CmdType::CMD_UTILITY {
            continue;
        }
        let mut completion = pg_sys::QueryCompletion::default();
        pg_sys::ProcessUtility(
            plan,
            text.as_ptr(),
            false,
            pg_sys::ProcessUtilityContext::PROCESS_UTILITY_QUERY,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            pg_sys::None_Receiver,
            &mut completion,
        );
        pg_sys::CommandCounterIncrement();
    }
    pg_sys::PopActiveSnapshot();
}

// ---- retargeting, in the parse tree -------------------------------------

/// If `names` has at least `min` parts and the first is the compared schema,
/// make it the scratch namespace. `keep` holds last parts that stay.
unsafe fn retarget_names(names: *mut pg_sys::List, min: usize, ctx: &Retarget, keep: Option<&HashSet<String>>) {
    let list = PgList::<pg_sys::Node>::from_pg(names);
    if list.len() < min {
        return;
    }
    let (Some(first), Some(last)) = (list.get_ptr(0), list.get_ptr(list.len() - 1)) else { return };
    if string_value(first).as_deref() != Some(ctx.from.as_str()) {
        return;
    }
    if let (Some(keep), Some(last)) = (keep, string_value(last)) {
        if keep.contains(&last) {
            return;
        }
    }
    (*(first as *mut pg_sys::String)).sval = pg_sys::pstrdup(ctx.to.as_ptr());
}

/// A relation a statement creates, alters or locks: qualified with the
/// compared schema, or not qualified at all, it is the scratch namespace's.
/// (An unqualified one would otherwise find the live table when the desired
/// DDL does not create it, and lock it until the rollback.)
unsafe fn own_relation(range: *mut pg_sys::RangeVar, ctx: &Retarget) {
    if range.is_null() {
        return;
    }
    let range = &mut *range;
    let schema = c_str(range.schemaname);
    if schema.is_none() || schema.as_deref() == Some(ctx.from.as_str()) {
        range.schemaname = pg_sys::pstrdup(ctx.to.as_ptr());
    }
}

/// COMMENT ON <relation kind> with an unqualified name: the scratch namespace's.
unsafe fn own_comment_object(objtype: pg_sys::ObjectType::Type, names: *mut pg_sys::List, ctx: &Retarget) -> *mut pg_sys::List {
    use pg_sys::ObjectType::*;
    let unqualified = match objtype {
        OBJECT_COLUMN | OBJECT_TABCONSTRAINT => 2,
        OBJECT_TABLE | OBJECT_VIEW | OBJECT_MATVIEW | OBJECT_SEQUENCE | OBJECT_INDEX | OBJECT_FOREIGN_TABLE => 1,
        _ => return names,
    };
    let list = PgList::<pg_sys::Node>::from_pg(names);
    if list.len() != unqualified {
        return names;
    }
    let scratch = pg_sys::makeString(pg_sys::pstrdup(ctx.to.as_ptr()));
    pg_sys::lcons(scratch as *mut std::ffi::c_void, names)
}

/// `'public.users_id_seq'` in a regclass cast or a nextval() call.
unsafe fn retarget_regclass_literal(node: *mut pg_sys::Node, ctx: &Retarget) {
    if node.is_null() || !is_a(node, NodeTag::T_A_Const) {
        return;
    }
    let constant = &mut *(node as *mut pg_sys::A_Const);
    if constant.isnull || !is_a(&mut constant.val.node, NodeTag::T_String) {
        return;
    }
    let Some(value) = c_str(constant.val.sval.sval) else { return };
    let Ok(c_value) = CString::new(value) else { return };
    let names = pg_sys::stringToQualifiedNameList(c_value.as_ptr());
    let list = PgList::<pg_sys::Node>::from_pg(names);
    if list.len() != 2 || list.get_ptr(0).and_then(|n| string_value(n)).as_deref() != Some(ctx.from.as_str()) {
        return;
    }
    let Some(relation) = list.get_ptr(1).and_then(|n| string_value(n)) else { return };
    let Ok(c_relation) = CString::new(relation) else { return };
    let qualified = pg_sys::quote_qualified_identifier(ctx.to.as_ptr(), c_relation.as_ptr());
    constant.val.sval.sval = qualified;
}

unsafe fn is_regclass(type_name: *mut pg_sys::TypeName) -> bool {
    !type_name.is_null()
        && PgList::<pg_sys::Node>::from_pg((*type_name).names).iter_ptr().last().and_then(|n| string_value(n)).as_deref() == Some("regclass")
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut std::ffi::c_void) -> bool {
    walk(node, &*(context as *const Retarget));
    false
}

unsafe fn walk_list(list: *mut pg_sys::List, ctx: &Retarget) {
    for item in PgList::<pg_sys::Node>::from_pg(list).iter_ptr() {
        walk(item, ctx);
    }
}

/// Every node kind the statements we run can hold a qualified name in; the
/// expression nodes go through PostgreSQL's raw_expression_tree_walker.
unsafe fn walk(node: *mut pg_sys::Node, ctx: &Retarget) {
    use NodeTag::*;
    if node.is_null() {
        return;
    }
    pgrx::check_for_interrupts!();
    let tag = (*node).type_;
    match tag {
        T_List => walk_list(node as *mut pg_sys::List, ctx),
        T_RangeVar => {
            let range = &mut *(node as *mut pg_sys::RangeVar);
            if c_str(range.schemaname).as_deref() == Some(ctx.from.as_str()) {
                range.schemaname = pg_sys::pstrdup(ctx.to.as_ptr());
            }
        }
        T_TypeName => {
            let type_name = &mut *(node as *mut pg_sys::TypeName);
            retarget_names(type_name.names, 2, ctx, Some(&ctx.keep_types));
        }
        T_FuncCall => {
            let call = &mut *(node as *mut pg_sys::FuncCall);
            retarget_names(call.funcname, 2, ctx, Some(&ctx.keep_functions));
            let name = PgList::<pg_sys::Node>::from_pg(call.funcname).iter_ptr().last().and_then(|n| string_value(n));
            if matches!(name.as_deref(), Some("nextval" | "currval" | "setval")) {
                if let Some(first) = PgList::<pg_sys::Node>::from_pg(call.args).get_ptr(0) {
                    retarget_regclass_literal(first, ctx);
                }
            }
            pg_sys::raw_expression_tree_walker(node, Some(walker), ctx as *const Retarget as *mut _);
        }
        T_ColumnRef => retarget_names((*(node as *mut pg_sys::ColumnRef)).fields, 3, ctx, None),
        T_TypeCast => {
            let cast = &mut *(node as *mut pg_sys::TypeCast);
            if is_regclass(cast.typeName) {
                retarget_regclass_literal(cast.arg, ctx);
            }
            pg_sys::raw_expression_tree_walker(node, Some(walker), ctx as *const Retarget as *mut _);
        }
        T_CollateClause => {
            let collate = &mut *(node as *mut pg_sys::CollateClause);
            retarget_names(collate.collname, 2, ctx, None);
            walk(collate.arg, ctx);
        }
        T_ColumnDef => {
            let column = &mut *(node as *mut pg_sys::ColumnDef);
            walk(column.typeName as *mut _, ctx);
            walk(column.raw_default, ctx);
            walk(column.collClause as *mut _, ctx);
            walk_list(column.constraints, ctx);
            walk(column.identitySequence as *mut _, ctx);
        }
        T_Constraint => {
            let constraint = &mut *(node as *mut pg_sys::Constraint);
            walk(constraint.raw_expr, ctx);
            walk(constraint.where_clause, ctx);
            own_relation(constraint.pktable, ctx);
            // EXCLUDE: pairs of (IndexElem, operator name).
            for pair in PgList::<pg_sys::List>::from_pg(constraint.exclusions).iter_ptr() {
                if let Some(element) = PgList::<pg_sys::Node>::from_pg(pair).get_ptr(0) {
                    walk(element, ctx);
                }
            }
            walk_list(constraint.options, ctx);
        }
        T_DefElem => {
            let option = &mut *(node as *mut pg_sys::DefElem);
            let name = c_str(option.defname).unwrap_or_default();
            if option.arg.is_null() {
                return;
            }
            if is_a(option.arg, T_List) {
                let min = if name == "owned_by" { 3 } else { 2 };
                retarget_names(option.arg as *mut pg_sys::List, min, ctx, None);
            } else if is_a(option.arg, T_TypeName) {
                walk(option.arg, ctx);
            }
        }
        T_IndexElem => {
            let element = &mut *(node as *mut pg_sys::IndexElem);
            walk(element.expr, ctx);
            retarget_names(element.collation, 2, ctx, None);
            retarget_names(element.opclass, 2, ctx, None);
        }
        T_CreateStmt => {
            let create = &mut *(node as *mut pg_sys::CreateStmt);
            own_relation(create.relation, ctx);
            walk_list(create.tableElts, ctx);
            walk_list(create.inhRelations, ctx);
            walk(create.ofTypename as *mut _, ctx);
            walk_list(create.constraints, ctx);
        }
        T_TableLikeClause => walk((*(node as *mut pg_sys::TableLikeClause)).relation as *mut _, ctx),
        T_AlterTableStmt => {
            let alter = &mut *(node as *mut pg_sys::AlterTableStmt);
            own_relation(alter.relation, ctx);
            for command in PgList::<pg_sys::AlterTableCmd>::from_pg(alter.cmds).iter_ptr() {
                walk((*command).def, ctx);
            }
        }
        T_PartitionCmd => walk((*(node as *mut pg_sys::PartitionCmd)).name as *mut _, ctx),
        T_IndexStmt => {
            let index = &mut *(node as *mut pg_sys::IndexStmt);
            // The scratch table is empty and nobody else sees it; CONCURRENTLY
            // could not run here anyway (not at top level).
            index.concurrent = false;
            own_relation(index.relation, ctx);
            walk_list(index.indexParams, ctx);
            walk_list(index.indexIncludingParams, ctx);
            walk(index.whereClause, ctx);
        }
        T_ViewStmt => {
            let view = &mut *(node as *mut pg_sys::ViewStmt);
            own_relation(view.view, ctx);
            walk(view.query, ctx);
        }
        T_CreateTableAsStmt => {
            let create = &mut *(node as *mut pg_sys::CreateTableAsStmt);
            walk(create.query, ctx);
            if !create.into.is_null() {
                // WITH NO DATA: the query is planned but never run here.
                (*create.into).skipData = true;
                own_relation((*create.into).rel, ctx);
            }
        }
        T_CreateSeqStmt => {
            let create = &mut *(node as *mut pg_sys::CreateSeqStmt);
            own_relation(create.sequence, ctx);
            walk_list(create.options, ctx);
        }
        T_AlterSeqStmt => {
            let alter = &mut *(node as *mut pg_sys::AlterSeqStmt);
            own_relation(alter.sequence, ctx);
            walk_list(alter.options, ctx);
        }
        T_CreateEnumStmt => retarget_names((*(node as *mut pg_sys::CreateEnumStmt)).typeName, 2, ctx, None),
        T_AlterEnumStmt => retarget_names((*(node as *mut pg_sys::AlterEnumStmt)).typeName, 2, ctx, None),
        T_CommentStmt => {
            let comment = &mut *(node as *mut pg_sys::CommentStmt);
            let object = comment.object;
            if object.is_null() {
                return;
            }
            if is_a(object, T_List) {
                comment.object = own_comment_object(comment.objtype, object as *mut pg_sys::List, ctx) as *mut pg_sys::Node;
                let object = comment.object;
                let min = match comment.objtype {
                    pg_sys::ObjectType::OBJECT_COLUMN | pg_sys::ObjectType::OBJECT_TABCONSTRAINT => 3,
                    _ => 2,
                };
                retarget_names(object as *mut pg_sys::List, min, ctx, None);
            } else {
                walk(object, ctx);
            }
        }
        T_ObjectWithArgs => {
            let object = &mut *(node as *mut pg_sys::ObjectWithArgs);
            retarget_names(object.objname, 2, ctx, None);
            walk_list(object.objargs, ctx);
        }
        T_CreateFunctionStmt => {
            let create = &mut *(node as *mut pg_sys::CreateFunctionStmt);
            retarget_names(create.funcname, 2, ctx, None);
            for parameter in PgList::<pg_sys::FunctionParameter>::from_pg(create.parameters).iter_ptr() {
                walk((*parameter).argType as *mut _, ctx);
                walk((*parameter).defexpr, ctx);
            }
            walk(create.returnType as *mut _, ctx);
        }
        T_CreateTrigStmt => {
            let create = &mut *(node as *mut pg_sys::CreateTrigStmt);
            own_relation(create.relation, ctx);
            retarget_names(create.funcname, 2, ctx, None);
            walk(create.whenClause, ctx);
            walk(create.constrrel as *mut _, ctx);
        }
        T_CreateDomainStmt => {
            let create = &mut *(node as *mut pg_sys::CreateDomainStmt);
            retarget_names(create.domainname, 2, ctx, None);
            walk(create.typeName as *mut _, ctx);
            walk(create.collClause as *mut _, ctx);
            walk_list(create.constraints, ctx);
        }
        T_CompositeTypeStmt => {
            let create = &mut *(node as *mut pg_sys::CompositeTypeStmt);
            own_relation(create.typevar, ctx);
            walk_list(create.coldeflist, ctx);
        }
        T_CreatePolicyStmt => {
            let create = &mut *(node as *mut pg_sys::CreatePolicyStmt);
            own_relation(create.table, ctx);
            walk(create.qual, ctx);
            walk(create.with_check, ctx);
        }
        T_String | T_Integer | T_Float | T_Boolean | T_BitString | T_A_Const | T_RoleSpec => {}
        _ => {
            pg_sys::raw_expression_tree_walker(node, Some(walker), ctx as *const Retarget as *mut _);
        }
    }
}
