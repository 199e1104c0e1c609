//! Drift capture: two event triggers record every DDL command that runs outside
//! a pg_migrate revision into migrate.drift, from any client and any role.
//!
//! - sql_drop keeps what a command dropped (identity, temporary or not), since
//!   by ddl_command_end a DROP's objects are gone and pg_event_trigger_ddl_commands()
//!   does not list them;
//! - ddl_command_end writes the row: who, from where, the command tag, the first
//!   object it touched, and the command's own text, sliced out of the client's
//!   query string by the server parser's statement locations.
//!
//! Not drift: temporary objects, the extension's own scripts and its own
//! CREATE/ALTER/DROP EXTENSION, revision SQL that pg_migrate runs (functions and
//! the psql plan's steps), and its own DDL (migrate_set_not_null).
//!
//! The row is written as the owner of migrate.drift (the DDL's role cannot
//! write it, so it cannot forge or remove rows either), in a subtransaction: if
//! it fails, the DDL goes on with a WARNING and the gap is counted into the
//! next row this backend writes (gaps.rs).

use std::cell::RefCell;
use std::ffi::{c_void, CStr};

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{is_a, PgBuiltInOids, PgList, PgOid};

use super::gaps::Gaps;
use crate::pg_report::event_trigger_function;
use crate::guard::context;
use crate::server_sql;
use crate::subxact::{self, Keep};

/// What sql_drop saw, for the ddl_command_end of the same command.
struct Dropped {
    object_type: String,
    identity: String,
    temporary: bool,
}

/// The client's query string, parsed once for all the DDL commands in it.
struct ParsedQuery {
    /// statement_timestamp() and the address of debug_query_string: both
    /// change with every client message.
    started_at: i64,
    address: usize,
    text: String,
    /// The statements' raw trees (in `memory`) and byte ranges.
    spans: Vec<server_sql::Span>,
    /// The statement after the last one matched: commands run in text order,
    /// so matching from here keeps a long query string linear.
    cursor: usize,
}

thread_local! {
    static DROPPED: RefCell<Vec<Dropped>> = const { RefCell::new(Vec::new()) };
    static PARSED: RefCell<Option<ParsedQuery>> = const { RefCell::new(None) };
    static MEMORY: std::cell::Cell<pg_sys::MemoryContext> = const { std::cell::Cell::new(std::ptr::null_mut()) };
    static GAPS: RefCell<Gaps> = RefCell::new(Gaps::default());
    static TYPE_CHANGES: RefCell<Vec<TypeChange>> = const { RefCell::new(Vec::new()) };
    /// The INSERT and the sql_drop query, planned once per backend: planning
    /// them for every DDL command would cost more than the command.
    static INSERT_PLAN: RefCell<Option<OwnedPreparedStatement>> = const { RefCell::new(None) };
    static DROPPED_PLAN: RefCell<Option<OwnedPreparedStatement>> = const { RefCell::new(None) };
}

/// Run `work` with the kept plan of `sql` in `slot`, preparing it first if needed.
fn with_plan<R>(
    slot: &'static std::thread::LocalKey<RefCell<Option<OwnedPreparedStatement>>>,
    client: &pgrx::spi::SpiClient<'_>,
    sql: &str,
    types: &[PgOid],
    work: impl FnOnce(&OwnedPreparedStatement) -> R,
) -> Result<R, pgrx::spi::SpiError> {
    slot.with(|plan| {
        let mut plan = plan.borrow_mut();
        if plan.is_none() {
            *plan = Some(client.prepare_mut(sql, types)?.keep());
        }
        Ok(work(plan.as_ref().expect("prepared above")))
    })
}

/// ALTER COLUMN ... TYPE: the column's type before (seen at ddl_command_start)
/// and after, so that the revision made from the drift can change it back
/// when nothing was lost (revisions::inverse).
struct TypeChange {
    relid: pg_sys::Oid,
    column: String,
    from: String,
}

/// The longest client query kept in in_query: a long DO block running many
/// commands must not be copied whole into every row.
const IN_QUERY_LIMIT: usize = 4000;

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(IN_QUERY_LIMIT) {
        Some((cut, _)) => format!("{} ...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Query strings up to this length are compared byte for byte before the
/// parsed copy is reused; longer ones are known by timestamp and address.
const COMPARED_LENGTH: usize = 8192;

/// Watch transaction ends; called once per backend, from _PG_init.
pub fn register() {
    // SAFETY: the callback touches only this module's thread-locals.
    unsafe { pg_sys::RegisterXactCallback(Some(transaction_ended), std::ptr::null_mut()) };
}

unsafe extern "C-unwind" fn transaction_ended(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    let aborted = matches!(event, XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT);
    let committed = matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PREPARE);
    if !aborted && !committed {
        return;
    }
    let _ = DROPPED.try_with(|d| d.try_borrow_mut().map(|mut d| d.clear()));
    let _ = TYPE_CHANGES.try_with(|t| t.try_borrow_mut().map(|mut t| t.clear()));
    let _ = GAPS.try_with(|g| {
        if let Ok(mut g) = g.try_borrow_mut() {
            if committed { g.committed() } else { g.aborted() }
        }
    });
}

/// Whether this command may be drift at all (cheap checks, before any query).
fn capturing() -> bool {
    // SAFETY: reads of backend globals.
    if unsafe { pg_sys::creating_extension } || context::is_bypassed() {
        return false;
    }
    !context::is_revision_work(crate::guard::triggers::client_statement)
}

/// The event trigger's data, when called as one.
///
/// # Safety
/// `fcinfo` is the call's FunctionCallInfo.
unsafe fn event_data(fcinfo: pg_sys::FunctionCallInfo) -> Option<(*mut pg_sys::Node, String)> {
    let context = (*fcinfo).context;
    if context.is_null() || !is_a(context, NodeTag::T_EventTriggerData) {
        return None;
    }
    let data = &*(context as *mut pg_sys::EventTriggerData);
    let tag = CStr::from_ptr(pg_sys::GetCommandTagName(data.tag)).to_string_lossy().into_owned();
    Some((data.parsetree, tag))
}

// Capture never stops a command: it reports nothing to throw.
event_trigger_function!(migrate_drift_ddl_start, pg_finfo_migrate_drift_ddl_start, |f| {
    drift_ddl_start(f);
    None
});
event_trigger_function!(migrate_drift_sql_drop, pg_finfo_migrate_drift_sql_drop, |f| {
    drift_sql_drop(f);
    None
});
event_trigger_function!(migrate_drift_ddl_end, pg_finfo_migrate_drift_ddl_end, |f| {
    drift_ddl_end(f);
    None
});

/// ALTER TABLE (its trigger's only tag): the types of the columns it changes, before.
fn drift_ddl_start(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: called by the function manager.
    let Some((node, _)) = (unsafe { event_data(fcinfo) }) else { return };
    // SAFETY: node is NULL or a valid raw parse tree.
    if node.is_null() || !unsafe { is_a(node, NodeTag::T_AlterTableStmt) } {
        return;
    }
    // SAFETY: checked to be an AlterTableStmt.
    let stmt = unsafe { &*(node as *mut pg_sys::AlterTableStmt) };
    // SAFETY: a List of AlterTableCmd.
    let cmds = unsafe { PgList::<pg_sys::AlterTableCmd>::from_pg(stmt.cmds) };
    let columns: Vec<String> = cmds
        .iter_ptr()
        // SAFETY: valid AlterTableCmd nodes.
        .filter(|cmd| unsafe { (**cmd).subtype } == pg_sys::AlterTableType::AT_AlterColumnType)
        .filter_map(|cmd| unsafe { c_text((*cmd).name) })
        .collect();
    if columns.is_empty() || !capturing() {
        return;
    }
    // SAFETY: a catalog look-up that takes no lock and may find nothing.
    let relid = unsafe {
        pg_sys::RangeVarGetRelidExtended(stmt.relation, pg_sys::NoLock as i32, pg_sys::RVROption::RVR_MISSING_OK, None, std::ptr::null_mut())
    };
    if relid == pg_sys::InvalidOid {
        return;
    }
    let changes: Vec<TypeChange> = columns
        .into_iter()
        .filter_map(|column| Some(TypeChange { relid, from: column_type(relid, &column)?, column }))
        .collect();
    TYPE_CHANGES.with(|t| t.borrow_mut().extend(changes));
}

unsafe fn c_text(pointer: *const std::ffi::c_char) -> Option<String> {
    (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
}

/// The column's type as format_type spells it (typmod included), if it exists.
fn column_type(relid: pg_sys::Oid, column: &str) -> Option<String> {
    let name = std::ffi::CString::new(column).ok()?;
    // SAFETY: syscache look-ups of an existing relation's attribute.
    unsafe {
        let attnum = pg_sys::get_attnum(relid, name.as_ptr());
        if attnum <= 0 {
            return None;
        }
        let (mut type_oid, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
        pg_sys::get_atttypetypmodcoll(relid, attnum, &mut type_oid, &mut typmod, &mut collation);
        c_text(pg_sys::format_type_with_typemod(type_oid, typmod))
    }
}

/// The type changes of this command, before and after, as JSON for the row.
fn type_changes_json() -> Option<String> {
    let changes = TYPE_CHANGES.with(|t| std::mem::take(&mut *t.borrow_mut()));
    if changes.is_empty() {
        return None;
    }
    let list: Vec<serde_json::Value> = changes
        .into_iter()
        .map(|change| {
            let to = column_type(change.relid, &change.column);
            serde_json::json!({ "column": change.column, "from": change.from, "to": to })
        })
        .collect();
    Some(serde_json::Value::Array(list).to_string())
}

const DROPPED_QUERY: &str = "SELECT d.object_type, d.object_identity, d.is_temporary
   FROM pg_catalog.pg_event_trigger_dropped_objects() d WHERE d.original";

fn drift_sql_drop(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: called by the function manager.
    if unsafe { event_data(fcinfo) }.is_none() || !capturing() {
        return;
    }
    let dropped = Spi::connect(|client| {
        with_plan(&DROPPED_PLAN, client, DROPPED_QUERY, &[], |plan| {
            client.select(plan, None, &[]).map(|rows| {
                rows.filter_map(|row| {
                    Some(Dropped {
                        object_type: row.get::<String>(1).ok().flatten()?,
                        identity: row.get::<String>(2).ok().flatten().unwrap_or_default(),
                        temporary: row.get::<bool>(3).ok().flatten().unwrap_or(false),
                    })
                })
                .collect::<Vec<_>>()
            })
        })
        .and_then(|rows| rows)
        .unwrap_or_default()
    });
    DROPPED.with(|d| d.borrow_mut().extend(dropped));
}

fn drift_ddl_end(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: called by the function manager.
    let Some((node, tag)) = (unsafe { event_data(fcinfo) }) else { return };
    let dropped = DROPPED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    // SAFETY: node is the command's raw parse tree (or NULL).
    if !capturing() || unsafe { names_pg_migrate(node) } {
        TYPE_CHANGES.with(|t| t.borrow_mut().clear());
        return;
    }
    // A DROP's objects: all temporary, nothing to record.
    if !dropped.is_empty() && dropped.iter().all(|d| d.temporary) {
        return;
    }
    let first_dropped = dropped.iter().find(|d| !d.temporary);
    let (statement, in_query) = own_text(node);
    let row = Row {
        type_changes: type_changes_json(),
        tag,
        dropped_type: first_dropped.map(|d| d.object_type.clone()),
        dropped_identity: first_dropped.map(|d| d.identity.clone()),
        statement,
        in_query,
    };
    write(row);
}

/// CREATE/ALTER/DROP EXTENSION pg_migrate: the extension's own life is not drift.
///
/// # Safety
/// `node` is NULL or a valid raw parse tree.
unsafe fn names_pg_migrate(node: *mut pg_sys::Node) -> bool {
    let ours = |name: *const std::ffi::c_char| !name.is_null() && CStr::from_ptr(name).to_bytes() == b"pg_migrate";
    if node.is_null() {
        return false;
    }
    if is_a(node, NodeTag::T_CreateExtensionStmt) {
        return ours((*(node as *mut pg_sys::CreateExtensionStmt)).extname);
    }
    if is_a(node, NodeTag::T_AlterExtensionStmt) {
        return ours((*(node as *mut pg_sys::AlterExtensionStmt)).extname);
    }
    if is_a(node, NodeTag::T_AlterExtensionContentsStmt) {
        return ours((*(node as *mut pg_sys::AlterExtensionContentsStmt)).extname);
    }
    if is_a(node, NodeTag::T_DropStmt) {
        let drop = &*(node as *mut pg_sys::DropStmt);
        if drop.removeType == pg_sys::ObjectType::OBJECT_EXTENSION {
            let objects = PgList::<pg_sys::Node>::from_pg(drop.objects);
            return objects.iter_ptr().any(|object| is_a(object, NodeTag::T_String) && ours((*(object as *mut pg_sys::String)).sval));
        }
    }
    false
}

/// The command's own text, or (None, the client's query) when the command is
/// not one of the client's statements (it ran inside a function or DO block).
fn own_text(node: *mut pg_sys::Node) -> (Option<String>, Option<String>) {
    // SAFETY: debug_query_string is NULL or a NUL-terminated string.
    let pointer = unsafe { pg_sys::debug_query_string };
    if pointer.is_null() || node.is_null() {
        return (None, None);
    }
    PARSED.with(|parsed| {
        let mut parsed = parsed.borrow_mut();
        // SAFETY: pointer is the live query string.
        if !parsed.as_ref().is_some_and(|p| unsafe { p.is_current(pointer) }) {
            *parsed = unsafe { parse_query(pointer) };
        }
        let Some(query) = parsed.as_mut() else { return (None, None) };
        // SAFETY: node and the spans' nodes are valid raw parse trees.
        match unsafe { query.matching(node) } {
            Some(index) => {
                let span = &query.spans[index];
                (Some(query.text[span.start..span.end].to_string()), None)
            }
            None => (None, Some(excerpt(&query.text))),
        }
    })
}

impl ParsedQuery {
    /// Whether this is still the query string at `pointer`.
    ///
    /// # Safety
    /// `pointer` is a NUL-terminated string.
    unsafe fn is_current(&self, pointer: *const std::ffi::c_char) -> bool {
        if self.started_at != pg_sys::GetCurrentStatementStartTimestamp() || self.address != pointer as usize {
            return false;
        }
        if self.text.len() > COMPARED_LENGTH {
            return true;
        }
        // Byte by byte, stopping at the first difference or at the NUL.
        let bytes = self.text.as_bytes();
        for (i, byte) in bytes.iter().enumerate() {
            if *pointer.add(i) as u8 != *byte {
                return false;
            }
        }
        *pointer.add(bytes.len()) == 0
    }

    /// The statement `node` came from: the next one whose tree equals it (the
    /// parser's trees compare without their locations), else the next one of
    /// the same kind (some commands rewrite their tree as they run, as CREATE
    /// TABLE AS does), searching from the cursor and then from the start.
    ///
    /// # Safety
    /// `node` and the spans' nodes are valid raw parse trees.
    unsafe fn matching(&mut self, node: *mut pg_sys::Node) -> Option<usize> {
        let count = self.spans.len();
        let order = (self.cursor..count).chain(0..self.cursor.min(count));
        let tag = (*node).type_;
        let mut same_kind = None;
        for index in order {
            pgrx::check_for_interrupts!();
            let candidate = self.spans[index].node;
            if pg_sys::equal(node as *const c_void, candidate as *const c_void) {
                self.cursor = index + 1;
                return Some(index);
            }
            if same_kind.is_none() && (*candidate).type_ == tag {
                same_kind = Some(index);
            }
        }
        if let Some(index) = same_kind {
            self.cursor = index + 1;
        }
        same_kind
    }
}

/// Parse the client's query string into a memory context of our own, which
/// lives until the next query string replaces it.
///
/// # Safety
/// `pointer` is the live, NUL-terminated debug_query_string.
unsafe fn parse_query(pointer: *const std::ffi::c_char) -> Option<ParsedQuery> {
    let text = CStr::from_ptr(pointer).to_string_lossy().into_owned();
    let memory = MEMORY.with(|m| {
        if m.get().is_null() {
            m.set(pg_sys::AllocSetContextCreateInternal(
                pg_sys::TopMemoryContext,
                c"pg_migrate drift query".as_ptr(),
                0,
                8 * 1024,
                8 * 1024 * 1024,
            ));
        }
        m.get()
    });
    pg_sys::MemoryContextReset(memory);
    let previous = pg_sys::MemoryContextSwitchTo(memory);
    let spans = server_sql::statement_spans(&text);
    pg_sys::MemoryContextSwitchTo(previous);
    Some(ParsedQuery {
        started_at: pg_sys::GetCurrentStatementStartTimestamp(),
        address: pointer as usize,
        text,
        spans: spans.ok()?,
        cursor: 0,
    })
}

struct Row {
    tag: String,
    type_changes: Option<String>,
    dropped_type: Option<String>,
    dropped_identity: Option<String>,
    statement: Option<String>,
    in_query: Option<String>,
}

/// The owner of migrate.drift, from the relation cache.
fn drift_owner() -> Option<pg_sys::Oid> {
    // SAFETY: catalog look-ups by name; the relation is closed again.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"migrate".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return None;
        }
        let relid = pg_sys::get_relname_relid(c"drift".as_ptr(), schema);
        if relid == pg_sys::InvalidOid {
            return None;
        }
        let relation = pg_sys::RelationIdGetRelation(relid);
        if relation.is_null() {
            return None;
        }
        let owner = (*(*relation).rd_rel).relowner;
        pg_sys::RelationClose(relation);
        Some(owner)
    }
}

/// Insert the row as the table's owner, in a subtransaction; a failure is a
/// WARNING and a counted gap, never the DDL's failure.
fn write(row: Row) {
    // SAFETY: reads of the backend's user and a GUC's backing variable.
    let (role, application) = unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), true);
        let role = if name.is_null() { String::new() } else { CStr::from_ptr(name).to_string_lossy().into_owned() };
        let app = pg_sys::application_name;
        let application = (!app.is_null()).then(|| CStr::from_ptr(app).to_string_lossy().into_owned()).filter(|a| !a.is_empty());
        (role, application)
    };
    let pending = GAPS.with(|g| g.borrow().pending());
    let outcome = subxact::run(Keep::Commit, || {
        let Some(owner) = drift_owner() else { return 0 };
        let mut saved_user = pg_sys::InvalidOid;
        let mut saved_context = 0;
        // SAFETY: the SECURITY DEFINER switch PostgreSQL itself uses; an ERROR
        // in between is undone by the subtransaction's abort, which restores it.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
            pg_sys::SetUserIdAndSecContext(owner, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        }
        let inserted = Spi::connect_mut(|client| {
            let text = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
            let int4 = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
            let types = [text, text, text, text, text, text, text, int4, text];
            let args = [
                role.clone().into(),
                application.clone().into(),
                row.tag.clone().into(),
                row.dropped_type.clone().into(),
                row.dropped_identity.clone().into(),
                row.statement.clone().into(),
                row.in_query.clone().into(),
                i32::try_from(pending).unwrap_or(i32::MAX).into(),
                row.type_changes.clone().into(),
            ];
            let client_ref: &pgrx::spi::SpiClient<'_> = client;
            let plan = INSERT_PLAN.with(|plan| -> Result<(), pgrx::spi::SpiError> {
                if plan.borrow().is_none() {
                    *plan.borrow_mut() = Some(client_ref.prepare_mut(INSERT, &types)?.keep());
                }
                Ok(())
            });
            plan.and_then(|()| {
                INSERT_PLAN.with(|plan| {
                    let plan = plan.borrow();
                    client.update(plan.as_ref().expect("prepared above"), None, &args).map(|status| status.len())
                })
            })
            .unwrap_or_else(|error| {
                crate::errors::raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("write migrate.drift: {error}"), None, None)
            })
        });
        // SAFETY: as above.
        unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
        inserted
    });
    match outcome {
        Ok(0) => {}
        Ok(_) => GAPS.with(|g| g.borrow_mut().written()),
        Err(failure) => {
            GAPS.with(|g| g.borrow_mut().missed());
            let report = crate::pg_report::Report {
                severity: crate::pg_report::Severity::Warning,
                sqlstate: "01000",
                message: format!("pg_migrate could not record this {} in migrate.drift: {}", row.tag, failure.message),
                detail: "The command ran; the gap is counted in the unrecorded_before column of the next drift row this session writes, and migrate_verify() reports it.".into(),
                hint: "Check that the extension's owner can insert into migrate.drift.".into(),
            };
            crate::pg_report::emit(&report);
        }
    }
}

/// One row, unless every object the command touched is temporary. The first
/// object the command reports names it; a DROP's comes from sql_drop ($4, $5).
const INSERT: &str = "
WITH command AS (
    SELECT c.object_type, c.object_identity,
           c.schema_name OPERATOR(pg_catalog.=) 'pg_temp'
               OR pg_catalog.starts_with(c.schema_name, 'pg_temp_')
               OR pg_catalog.starts_with(c.schema_name, 'pg_toast_temp_') AS temporary
      FROM pg_catalog.pg_event_trigger_ddl_commands() c
)
INSERT INTO migrate.drift (performed_by, application_name, command_tag, object_type, object_identity,
                           statement, in_query, unrecorded_before, type_changes)
SELECT $1, $2, $3,
       COALESCE((SELECT object_type FROM command WHERE temporary IS NOT TRUE LIMIT 1), $4),
       COALESCE((SELECT object_identity FROM command WHERE temporary IS NOT TRUE LIMIT 1), $5),
       $6, $7, $8, $9::pg_catalog.jsonb
 WHERE NOT EXISTS (SELECT FROM command) OR EXISTS (SELECT FROM command WHERE temporary IS NOT TRUE)";

pgrx::extension_sql!(
    r#"
CREATE FUNCTION migrate.drift_ddl_start() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_drift_ddl_start';
CREATE FUNCTION migrate.drift_sql_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_drift_sql_drop';
CREATE FUNCTION migrate.drift_ddl_end() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_drift_ddl_end';

-- Every command: drift is whatever DDL runs outside a revision. ALTER TABLE is
-- also seen before it runs, for the old types of the columns it changes.
CREATE EVENT TRIGGER migrate_drift_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION migrate.drift_ddl_start();
CREATE EVENT TRIGGER migrate_drift_drop ON sql_drop
    EXECUTE FUNCTION migrate.drift_sql_drop();
CREATE EVENT TRIGGER migrate_drift_end ON ddl_command_end
    EXECUTE FUNCTION migrate.drift_ddl_end();
"#,
    name = "drift_event_triggers",
    requires = ["schema"],
);
