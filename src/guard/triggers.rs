//! The event triggers. Their functions are hand-written C entry points: they
//! read the parse tree (ddl_command_start) or the table being rewritten
//! (table_rewrite), run the rules, and report the findings with the rule's own
//! SQLSTATE (class MG), which pgrx's own error path would turn into XX000.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;

use super::extract;
use super::facts::{Context, History, Statement};
use super::history::HistoryIndex;
use super::rules::{self, Allowance, Finding, Level};
use super::settings::{self, GuardMode};
use crate::errors::{raise, OrRaise};
use crate::pg_report::{Report, Severity};
use crate::server_sql;

thread_local! {
    static HISTORY: RefCell<(u32, History)> = RefCell::new((0, History::default()));
    static BYPASS: Cell<u32> = const { Cell::new(0) };
    static REVISION: RefCell<Option<(String, Vec<Allowance>)>> = const { RefCell::new(None) };
    static STATEMENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Restores a thread-local when dropped, also when an ERROR unwinds.
struct Restore<F: FnMut()>(F);
impl<F: FnMut()> Drop for Restore<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Run the extension's own DDL (migrate_set_not_null's steps) past the guard.
pub fn bypassed<R>(work: impl FnOnce() -> R) -> R {
    BYPASS.with(|b| b.set(b.get() + 1));
    let _restore = Restore(|| BYPASS.with(|b| b.set(b.get().saturating_sub(1))));
    work()
}

/// While a revision runs: its `Allow` header lines apply, and the audit log names it.
pub fn in_revision<R>(revision: &str, allow: &[String], work: impl FnOnce() -> R) -> R {
    let allowances = allow.iter().filter_map(|line| rules::parse_header_allowance(line).ok()).collect();
    let previous = REVISION.with(|r| r.replace(Some((revision.to_string(), allowances))));
    let mut previous = Some(previous);
    let _restore = Restore(move || {
        let value = previous.take().flatten();
        REVISION.with(|r| *r.borrow_mut() = value);
    });
    work()
}

/// The text of the statement being run, for HINTs that write out the safe version.
pub fn with_statement<R>(sql: &str, work: impl FnOnce() -> R) -> R {
    let previous = STATEMENT.with(|s| s.replace(Some(sql.to_string())));
    let mut previous = Some(previous);
    let _restore = Restore(move || {
        let value = previous.take().flatten();
        STATEMENT.with(|s| *s.borrow_mut() = value);
    });
    work()
}

/// Set the revision context for the statements psql runs between begin_step and end_step.
pub fn set_revision(revision: Option<(&str, &[String])>) {
    let value = revision.map(|(id, allow)| {
        (id.to_string(), allow.iter().filter_map(|line| rules::parse_header_allowance(line).ok()).collect())
    });
    REVISION.with(|r| *r.borrow_mut() = value);
}

fn guard_active() -> bool {
    // SAFETY: reads of backend globals.
    settings::GUARD.get() != GuardMode::Off && BYPASS.with(Cell::get) == 0 && !unsafe { pg_sys::creating_extension }
}

/// The statement text: what pg_migrate is running, or the client's query when
/// it holds exactly one statement - and only if that text is the very statement
/// being checked (same node type), not a DO block or function call around it.
fn statement_text(tag: Option<NodeTag>) -> Option<String> {
    let candidate = STATEMENT.with(|s| s.borrow().clone()).or_else(|| {
        // SAFETY: debug_query_string is NULL or a NUL-terminated string.
        unsafe {
            let pointer = pg_sys::debug_query_string;
            (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
        }
    })?;
    let statements = server_sql::split_statements(&candidate).ok()?;
    let [statement] = statements.as_slice() else { return None };
    let tag = tag?;
    let nodes = server_sql::parse_nodes(&statement.text).ok()?;
    // SAFETY: parse_nodes returns valid node pointers.
    let same = nodes.len() == 1 && unsafe { (*nodes[0]).type_ } == tag;
    same.then(|| statement.text.clone())
}

/// Transaction-local history for rename_by_drop: reset when a new transaction starts.
fn with_history<R>(work: impl FnOnce(&mut History) -> R) -> R {
    // SAFETY: MyProc is this backend's PGPROC; lxid changes with every transaction.
    let lxid = unsafe { (*pg_sys::MyProc).lxid };
    HISTORY.with(|h| {
        let mut h = h.borrow_mut();
        if h.0 != lxid {
            *h = (lxid, History::default());
        }
        work(&mut h.1)
    })
}

/// Add a statement's drops and adds to `history`. Only tables others can see
/// count: a table created in this transaction loses nobody's data.
fn record(history: &mut History, statement: &Statement) {
    match statement {
        Statement::AlterTable { table, actions, .. } if table.shared() => {
            for action in actions {
                match action {
                    super::facts::Action::DropColumn { column } => history.dropped_columns.push((table.name.clone(), column.clone())),
                    super::facts::Action::AddColumn { column, .. } => history.added_columns.push((table.name.clone(), column.clone())),
                    _ => {}
                }
            }
        }
        Statement::DropTable { tables } => history
            .dropped_tables
            .extend(tables.iter().filter(|(t, _)| t.shared()).map(|(t, columns)| (t.name.clone(), columns.clone()))),
        _ => {}
    }
}

/// The part of this transaction's history a statement can be compared with.
/// Copying all of it for every statement would make a long migration quadratic.
fn relevant_history(history: &History, statement: &Statement) -> History {
    match statement {
        Statement::AlterTable { table, .. } => History {
            dropped_columns: history.dropped_columns.iter().filter(|(t, _)| *t == table.name).cloned().collect(),
            added_columns: history.added_columns.iter().filter(|(t, _)| *t == table.name).cloned().collect(),
            dropped_tables: Vec::new(),
        },
        Statement::CreateTable { columns, .. } => History {
            dropped_tables: history.dropped_tables.iter().filter(|(_, c)| c.len() == columns.len()).cloned().collect(),
            ..History::default()
        },
        _ => History::default(),
    }
}

/// The facts around a statement that rules may need.
pub fn context(statement: &Statement, sql: Option<String>, levels: &rules::Levels) -> Context {
    let thresholds = settings::thresholds();
    let mut blockers = Vec::new();
    if levels.level(rules::Rule::LockQueue) != Level::Off {
        for (table, level) in statement.locks() {
            if table.shared() && table.oid != 0 {
                blockers.extend(extract::blockers(table, level, thresholds.lock_queue_age_ms));
            }
        }
    }
    Context {
        // SAFETY: the lock_timeout GUC's backing variable.
        lock_timeout_ms: i64::from(unsafe { pg_sys::LockTimeout }),
        thresholds,
        blockers,
        history: with_history(|h| relevant_history(h, statement)),
        sql,
    }
}

fn current_levels() -> rules::Levels {
    settings::levels().unwrap_or_else(|error| {
        warning!("pg_migrate.guard_levels is ignored: {error}");
        rules::Levels::default()
    })
}

/// Evaluate, apply acknowledgements (audited), return the rest to be reported.
fn judge(statement: Statement, sql: &extract::LazyText<'_>) -> Vec<(Finding, Level)> {
    let levels = current_levels();
    let mut ctx = context(&statement, None, &levels);
    let mut findings = rules::evaluate(&statement, &ctx, &levels);
    with_history(|history| record(history, &statement));
    if findings.is_empty() {
        return findings;
    }
    // Only now is the statement's text worth finding: the HINTs quote it.
    let sql = sql.get().map(str::to_string);
    if sql.is_some() {
        ctx.sql = sql.clone();
        findings = rules::evaluate(&statement, &ctx, &levels);
    }
    let allowed = rules::parse_allowances(&settings::allow_text()).unwrap_or_else(|error| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid pg_migrate.allow: {error}"),
            None,
            Some("SET LOCAL pg_migrate.allow = '<rule>: <why this is safe>';".into()),
        )
    });
    let revision = REVISION.with(|r| r.borrow().clone());
    let warn_only = settings::GUARD.get() == GuardMode::Warn;
    let mut pending = Vec::new();
    for (finding, level) in findings {
        let by_setting = allowed.iter().find(|a| a.rule == finding.rule).map(|a| (a.reason.clone(), "setting"));
        let by_revision = revision
            .as_ref()
            .and_then(|(_, allow)| allow.iter().find(|a| a.rule == finding.rule))
            .map(|a| (a.reason.clone(), "revision"));
        if let Some((reason, source)) = by_setting.or(by_revision) {
            if level >= Level::Warning {
                audit(&finding, sql.as_deref(), &reason, revision.as_ref().map(|(id, _)| id.as_str()), source);
            }
            continue;
        }
        let level = if warn_only && level == Level::Error { Level::Warning } else { level };
        pending.push((finding, level));
    }
    pending
}

/// Record an acknowledged dangerous operation, as the extension's owner: roles
/// that may acknowledge need not be able to write the audit log themselves.
fn audit(finding: &Finding, sql: Option<&str>, reason: &str, revision: Option<&str>, source: &str) {
    let who: (Option<String>, Option<String>) = extract::read_two("SELECT current_user::text, session_user::text", &[], &[]);
    let owner = extract::read_one::<pg_sys::Oid>("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_migrate'", &[], &[]);
    let Some(owner) = owner else { return };
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    // SAFETY: the SECURITY DEFINER switch PostgreSQL itself uses; an ERROR in
    // between is undone by transaction abort, which restores the user id.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(owner, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
    }
    Spi::run_with_args(
        "INSERT INTO migrate.guard_log (performed_by, session_role, rule, sqlstate, message, statement, reason, revision_id, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            who.0.unwrap_or_default().into(),
            who.1.unwrap_or_default().into(),
            finding.rule.name().into(),
            finding.rule.sqlstate().into(),
            finding.message.clone().into(),
            sql.map(str::to_string).into(),
            reason.into(),
            revision.map(str::to_string).into(),
            source.into(),
        ],
    )
    .or_raise("write migrate.guard_log");
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
}

/// The C entry points PostgreSQL calls. The work runs under pgrx's guard, so a
/// Rust panic or a PostgreSQL error inside it is reported as usual; a finding
/// at level error is thrown only after that, from this outermost frame.
macro_rules! event_trigger_function {
    ($symbol:ident, $info:ident, $work:path) => {
        #[no_mangle]
        pub extern "C-unwind" fn $info() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        /// # Safety
        /// Called by PostgreSQL's function manager as an event trigger function.
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $symbol(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            let error = pg_sys::panic::pgrx_extern_c_guard(|| report($work(fcinfo)));
            if let Some(error) = error {
                crate::pg_report::throw(error);
            }
            pg_sys::Datum::from(0usize)
        }
    };
}

event_trigger_function!(migrate_guard_ddl_start, pg_finfo_migrate_guard_ddl_start, guard_ddl_start);
event_trigger_function!(migrate_guard_table_rewrite, pg_finfo_migrate_guard_table_rewrite, guard_table_rewrite);

fn guard_ddl_start(fcinfo: pg_sys::FunctionCallInfo) -> Vec<(Finding, Level)> {
    // SAFETY: an event trigger is called with EventTriggerData as its context.
    let node = unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || !pgrx::is_a(context, NodeTag::T_EventTriggerData) {
            return Vec::new();
        }
        (*(context as *mut pg_sys::EventTriggerData)).parsetree
    };
    guard_statement(node)
}

/// The rules' findings for one raw statement node.
fn guard_statement(node: *mut pg_sys::Node) -> Vec<(Finding, Level)> {
    if node.is_null() || !guard_active() {
        return Vec::new();
    }
    // SAFETY: node is a valid parse tree node.
    let tag = unsafe { (*node).type_ };
    let make = move || statement_text(Some(tag));
    let sql = extract::LazyText::new(&make);
    // SAFETY: node is the raw statement node of the command about to run.
    match unsafe { extract::statement(node, &sql, None) } {
        Some(statement) => judge(statement, &sql),
        None => Vec::new(),
    }
}

/// For the ProcessUtility hook (TRUNCATE, REINDEX): the error to throw, if any,
/// in a database where pg_migrate is installed.
pub fn check_utility(node: *mut pg_sys::Node) -> Option<Report> {
    // SAFETY: a catalog look-up by name.
    let installed = unsafe { pg_sys::get_extension_oid(c"pg_migrate".as_ptr(), true) } != pg_sys::InvalidOid;
    if !installed {
        return None;
    }
    report(guard_statement(node))
}

fn guard_table_rewrite(_fcinfo: pg_sys::FunctionCallInfo) -> Vec<(Finding, Level)> {
    if !guard_active() {
        return Vec::new();
    }
    let (oid, reason) = extract::read_two::<pg_sys::Oid, i32>(
        "SELECT pg_catalog.pg_event_trigger_table_rewrite_oid(), pg_catalog.pg_event_trigger_table_rewrite_reason()",
        &[],
        &[],
    );
    let (Some(oid), Some(reason)) = (oid, reason) else { return Vec::new() };
    // SAFETY: catalog look-ups of an existing relation.
    match unsafe { extract::table_by_oid(oid) } {
        Some(table) => {
            let make = || statement_text(None);
            judge(Statement::Rewrite { table, reason: reason as u32 }, &extract::LazyText::new(&make))
        }
        None => Vec::new(),
    }
}

/// Send notices and warnings now, notices first; hand back the first error,
/// for the entry point to throw.
fn report(mut findings: Vec<(Finding, Level)>) -> Option<Report> {
    findings.sort_by_key(|(_, level)| *level);
    let mut error = None;
    for (finding, level) in findings {
        let severity = match level {
            Level::Off => continue,
            Level::Notice => Severity::Notice,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        };
        let hint = if level >= Level::Warning {
            format!(
                "{}\nTo do it anyway: SET LOCAL pg_migrate.allow = '{}: <reason>'; (or \"-- Allow: {} <reason>\" in a migration file)",
                finding.hint,
                finding.rule.name(),
                finding.rule.name()
            )
        } else {
            finding.hint.clone()
        };
        let report = Report {
            severity,
            sqlstate: finding.rule.sqlstate(),
            message: format!("{} [{}]", finding.message, finding.rule.name()),
            detail: finding.detail,
            hint,
        };
        if severity == Severity::Error {
            error = Some(report);
            break;
        }
        crate::pg_report::emit(&report);
    }
    error
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION migrate.guard_ddl_start() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_guard_ddl_start';
CREATE FUNCTION migrate.guard_table_rewrite() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_guard_table_rewrite';

CREATE EVENT TRIGGER migrate_guard_start ON ddl_command_start
    WHEN TAG IN ('CREATE INDEX', 'DROP INDEX', 'ALTER TABLE', 'DROP TABLE', 'CREATE TABLE', 'ALTER TYPE')
    EXECUTE FUNCTION migrate.guard_ddl_start();
CREATE EVENT TRIGGER migrate_guard_rewrite ON table_rewrite
    EXECUTE FUNCTION migrate.guard_table_rewrite();
"#,
    name = "guard_event_triggers",
);

/// What the guard would say about a statement or a script, without running it:
/// the server's parser, the live catalog and the same rules. Names resolve with
/// the caller's search_path, as they would when the script runs.
#[pg_extern(volatile)]
fn migrate_guard_check(
    sql: &str,
) -> TableIterator<
    'static,
    (
        name!(statement, i32),
        name!(rule, String),
        name!(level, String),
        name!(sqlstate, String),
        name!(message, String),
        name!(detail, String),
        name!(hint, String),
    ),
> {
    TableIterator::new(check_script(sql, &[]).into_iter().map(|(n, finding, level)| {
        (n, finding.rule.name().to_string(), level.as_str().to_string(), finding.rule.sqlstate().to_string(), finding.message, finding.detail, finding.hint)
    }))
}

/// Findings of every statement of `sql` (1-based statement numbers); `allow`
/// are a revision's header lines.
pub fn check_script(sql: &str, allow: &[String]) -> Vec<(i32, Finding, Level)> {
    check_script_in(sql, allow, &mut extract::Script::default(), &mut HistoryIndex::default())
}

/// As check_script, continuing from earlier scripts (tables they create, what they
/// drop). `history` is an index, kept across scripts, so that each statement finds
/// what it can be paired with by key: a copy or a scan of all of it per statement
/// (or per script) is quadratic.
fn check_script_in(sql: &str, allow: &[String], script: &mut extract::Script, history: &mut HistoryIndex) -> Vec<(i32, Finding, Level)> {
    let statements = server_sql::split_statements(sql).unwrap_or_else(|error| {
        raise(error.code, format!("migrate_guard_check: {}", error.message), None, None)
    });
    let nodes = server_sql::parse_nodes(sql).unwrap_or_default();
    let levels = current_levels();
    let allowances: Vec<Allowance> = allow.iter().filter_map(|line| rules::parse_header_allowance(line).ok()).collect();
    let mut out = Vec::new();
    for (index, (statement, node)) in statements.iter().zip(nodes).enumerate() {
        pgrx::check_for_interrupts!();
        // SAFETY: node is the raw parse tree of `statement`.
        let text = statement.text.clone();
        let make = move || Some(text.clone());
        let Some(facts) = (unsafe { extract::statement(node, &extract::LazyText::new(&make), Some(script)) }) else { continue };
        let mut ctx = context(&facts, Some(statement.text.clone()), &levels);
        ctx.history = history.relevant(&facts);
        for (finding, level) in rules::evaluate(&facts, &ctx, &levels) {
            if !allowances.iter().any(|a| a.rule == finding.rule) {
                out.push((index as i32 + 1, finding, level));
            }
        }
        if let Statement::CreateTable { name, .. } = &facts {
            script.created.insert(name.clone());
        }
        let mut recorded = History::default();
        record(&mut recorded, &facts);
        history.add(&recorded);
    }
    out
}

/// What the guard would say about the revisions an upgrade to `target` would
/// apply, before running it. A revision's "-- Allow:" lines apply to it.
#[pg_extern(volatile)]
fn migrate_review(
    target: default!(&str, "'head'"),
) -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(statement, i32),
        name!(rule, String),
        name!(level, String),
        name!(sqlstate, String),
        name!(message, String),
        name!(hint, String),
    ),
> {
    let parsed = crate::sql_api::apply::parse_target_or_raise(target);
    let rows = Spi::connect(|client| {
        let loaded = crate::store::load_graph(client);
        let applied = crate::store::applied_ids(client);
        let steps = crate::sql_api::apply::plan_steps(&loaded, &applied, &parsed, crate::revisions::graph::Direction::Upgrade);
        let ids: Vec<String> = steps.iter().map(|s| s.revision.clone()).collect();
        let bodies = crate::store::bodies(client, &ids);
        let mut rows = Vec::new();
        // One script across revisions: tables created by an earlier pending
        // revision are new to the later ones too.
        let mut script = extract::Script::default();
        let mut history = HistoryIndex::default();
        for step in &steps {
            let Some(body) = bodies.get(&step.revision) else { continue };
            for (n, finding, level) in check_script_in(&body.upgrade_sql, &body.allow, &mut script, &mut history) {
                rows.push((
                    step.revision.clone(),
                    n,
                    finding.rule.name().to_string(),
                    level.as_str().to_string(),
                    finding.rule.sqlstate().to_string(),
                    finding.message,
                    finding.hint,
                ));
            }
        }
        rows
    });
    TableIterator::new(rows)
}
