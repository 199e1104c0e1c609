//! The event triggers. A Rust trigger reads the parse tree (ddl_command_start)
//! or the table being rewritten (table_rewrite), runs the rules and leaves its
//! findings here; a PL/pgSQL trigger named to fire right after it raises them,
//! because only PL/pgSQL can raise the guard's own SQLSTATEs (class MG) -
//! pgrx maps codes it does not know to XX000.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;

use super::extract;
use super::facts::{Context, History, Statement};
use super::rules::{self, Allowance, Finding, Level};
use super::settings::{self, GuardMode};
use crate::errors::{raise, OrRaise};
use crate::server_sql;

thread_local! {
    static PENDING: RefCell<Vec<(Finding, Level)>> = const { RefCell::new(Vec::new()) };
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

/// Evaluate, apply acknowledgements (audited), keep the rest for the reporter.
fn judge(statement: Statement, sql: &extract::LazyText<'_>) {
    let levels = current_levels();
    let mut ctx = context(&statement, None, &levels);
    let mut findings = rules::evaluate(&statement, &ctx, &levels);
    with_history(|history| record(history, &statement));
    if findings.is_empty() {
        return;
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
        PENDING.with(|p| p.borrow_mut().push((finding, level)));
    }
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

#[pg_extern(sql = "
CREATE FUNCTION migrate.guard_ddl_start() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
")]
fn guard_ddl_start(fcinfo: pg_sys::FunctionCallInfo) {
    if !guard_active() {
        return;
    }
    // SAFETY: an event trigger is called with EventTriggerData as its context.
    let node = unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || !pgrx::is_a(context, NodeTag::T_EventTriggerData) {
            return;
        }
        (*(context as *mut pg_sys::EventTriggerData)).parsetree
    };
    if node.is_null() {
        return;
    }
    // SAFETY: parsetree is a valid node.
    let tag = unsafe { (*node).type_ };
    let make = move || statement_text(Some(tag));
    let sql = extract::LazyText::new(&make);
    // SAFETY: parsetree is the raw statement node of the command about to run.
    if let Some(statement) = unsafe { extract::statement(node, &sql, None) } {
        judge(statement, &sql);
    }
}

#[pg_extern(sql = "
CREATE FUNCTION migrate.guard_table_rewrite() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
")]
fn guard_table_rewrite(_fcinfo: pg_sys::FunctionCallInfo) {
    if !guard_active() {
        return;
    }
    let (oid, reason) = extract::read_two::<pg_sys::Oid, i32>(
        "SELECT pg_catalog.pg_event_trigger_table_rewrite_oid(), pg_catalog.pg_event_trigger_table_rewrite_reason()",
        &[],
        &[],
    );
    let (Some(oid), Some(reason)) = (oid, reason) else { return };
    // SAFETY: catalog look-ups of an existing relation.
    if let Some(table) = unsafe { extract::table_by_oid(oid) } {
        let make = || statement_text(None);
        judge(Statement::Rewrite { table, reason: reason as u32 }, &extract::LazyText::new(&make));
    }
}

/// Whether the reporter trigger has anything to raise.
#[pg_extern(volatile, parallel_unsafe, schema = "migrate")]
fn guard_has_pending() -> bool {
    PENDING.with(|p| !p.borrow().is_empty())
}

/// Hand the findings to the reporter trigger, notices first, errors last.
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn guard_pending() -> TableIterator<
    'static,
    (
        name!(sqlstate, String),
        name!(level, String),
        name!(message, String),
        name!(detail, String),
        name!(hint, String),
    ),
> {
    let mut pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    pending.sort_by_key(|(_, level)| *level);
    TableIterator::new(pending.into_iter().map(|(finding, level)| {
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
        (
            finding.rule.sqlstate().to_string(),
            level.as_str().to_string(),
            format!("{} [{}]", finding.message, finding.rule.name()),
            finding.detail,
            hint,
        )
    }))
}

pgrx::extension_sql!(
    r#"
-- Fires right after the Rust triggers (event triggers fire in name order) and
-- raises what they found, with the rule's own SQLSTATE.
CREATE FUNCTION migrate.guard_report() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    f record;
BEGIN
    -- The common case, nothing to report, costs one simple-expression call.
    IF NOT migrate.guard_has_pending() THEN
        RETURN;
    END IF;
    FOR f IN SELECT * FROM migrate.guard_pending() LOOP
        IF f.level = 'error' THEN
            RAISE EXCEPTION USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = f.detail, HINT = f.hint;
        ELSIF f.level = 'warning' THEN
            RAISE WARNING USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = f.detail, HINT = f.hint;
        ELSE
            RAISE NOTICE USING ERRCODE = f.sqlstate, MESSAGE = f.message, DETAIL = f.detail, HINT = f.hint;
        END IF;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER migrate_guard_a_start ON ddl_command_start
    WHEN TAG IN ('CREATE INDEX', 'DROP INDEX', 'ALTER TABLE', 'DROP TABLE', 'CREATE TABLE', 'ALTER TYPE')
    EXECUTE FUNCTION migrate.guard_ddl_start();
CREATE EVENT TRIGGER migrate_guard_b_report_start ON ddl_command_start
    WHEN TAG IN ('CREATE INDEX', 'DROP INDEX', 'ALTER TABLE', 'DROP TABLE', 'CREATE TABLE', 'ALTER TYPE')
    EXECUTE FUNCTION migrate.guard_report();
CREATE EVENT TRIGGER migrate_guard_a_rewrite ON table_rewrite
    EXECUTE FUNCTION migrate.guard_table_rewrite();
CREATE EVENT TRIGGER migrate_guard_b_report_rewrite ON table_rewrite
    EXECUTE FUNCTION migrate.guard_report();
"#,
    name = "guard_event_triggers",
    requires = [guard_ddl_start, guard_table_rewrite, guard_pending, guard_has_pending],
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
    check_script_in(sql, allow, &mut extract::Script::default(), &mut History::default())
}

/// As check_script, continuing from earlier scripts (tables they create, what they drop).
fn check_script_in(sql: &str, allow: &[String], script: &mut extract::Script, history: &mut History) -> Vec<(i32, Finding, Level)> {
    let statements = server_sql::split_statements(sql).unwrap_or_else(|error| {
        raise(error.code, format!("migrate_guard_check: {}", error.message), None, None)
    });
    let nodes = server_sql::parse_nodes(sql).unwrap_or_default();
    let levels = current_levels();
    let allowances: Vec<Allowance> = allow.iter().filter_map(|line| rules::parse_header_allowance(line).ok()).collect();
    let mut out = Vec::new();
    for (index, (statement, node)) in statements.iter().zip(nodes).enumerate() {
        // SAFETY: node is the raw parse tree of `statement`.
        let text = statement.text.clone();
        let make = move || Some(text.clone());
        let Some(facts) = (unsafe { extract::statement(node, &extract::LazyText::new(&make), Some(script)) }) else { continue };
        let mut ctx = context(&facts, Some(statement.text.clone()), &levels);
        ctx.history = history.clone();
        for (finding, level) in rules::evaluate(&facts, &ctx, &levels) {
            if !allowances.iter().any(|a| a.rule == finding.rule) {
                out.push((index as i32 + 1, finding, level));
            }
        }
        if let Statement::CreateTable { name, .. } = &facts {
            script.created.insert(name.clone());
        }
        record(history, &facts);
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
        let mut history = History::default();
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
