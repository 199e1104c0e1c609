//! The event triggers. Their functions are hand-written C entry points: they
//! read the parse tree (ddl_command_start) or the table being rewritten
//! (table_rewrite), run the rules, and report the findings with the rule's own
//! SQLSTATE (class MG), which pgrx's own error path would turn into XX000.

use std::ffi::CStr;

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;

use super::context;
use super::extract;
use super::facts::{Context, History, Statement};
use super::history::HistoryIndex;
use super::script_settings::ScriptSettings;
use super::static_rewrite;
use super::rules::{self, Allowance, Finding, Level};
use super::settings::{self, GuardMode};
use crate::errors::{raise, OrRaise};
use crate::pg_report::{event_trigger_function, Report, Severity};
use crate::server_sql;

fn guard_active() -> bool {
    // SAFETY: reads of backend globals.
    settings::GUARD.get() != GuardMode::Off && !context::is_bypassed() && !unsafe { pg_sys::creating_extension }
}

/// The statement text: what pg_migrate is running, or the client's query when
/// it holds exactly one statement - and only if that text is the very statement
/// being checked (same node type), not a DO block or function call around it.
fn statement_text(tag: Option<NodeTag>) -> Option<String> {
    let candidate = context::statement().or_else(client_query)?;
    let statements = server_sql::split_statements(&candidate).ok()?;
    let [statement] = statements.as_slice() else { return None };
    let tag = tag?;
    let nodes = server_sql::parse_nodes(&statement.text).ok()?;
    // SAFETY: parse_nodes returns valid node pointers.
    let same = nodes.len() == 1 && unsafe { (*nodes[0]).type_ } == tag;
    same.then(|| statement.text.clone())
}

/// The text the client sent, as it is.
fn client_query() -> Option<String> {
    // SAFETY: debug_query_string is NULL or a NUL-terminated string.
    unsafe {
        let pointer = pg_sys::debug_query_string;
        (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
    }
}

/// The client's statement when it sent exactly one, split as a plan splits a
/// revision: what psql's \gexec sends for one row of migrate_plan().
pub fn client_statement() -> Option<String> {
    let statements = server_sql::split_statements(&client_query()?).ok()?;
    let [statement] = statements.as_slice() else { return None };
    Some(statement.text.clone())
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
pub fn context(statement: &Statement, sql: Option<String>) -> Context {
    let thresholds = settings::thresholds();
    // Holders of any age: lock_queue judges the old ones, and a lock_timeout
    // names them all (lock_wait).
    let mut blockers = Vec::new();
    for (table, level) in statement.locks() {
        if table.shared() && table.oid != 0 {
            blockers.extend(extract::blockers(table, level));
        }
    }
    Context {
        // SAFETY: the lock_timeout GUC's backing variable.
        lock_timeout_ms: i64::from(unsafe { pg_sys::LockTimeout }),
        thresholds,
        blockers,
        history: context::with_history(|h| relevant_history(h, statement)),
        sql,
    }
}

fn current_levels() -> rules::Levels {
    settings::levels().unwrap_or_else(|error| {
        warning!("pg_migrate.guard_levels is ignored: {error}");
        rules::Levels::default()
    })
}

/// What is left to report about a statement, and what its HINTs need.
#[derive(Default)]
struct Verdict {
    findings: Vec<(Finding, Level)>,
    /// The statement's text, when known, for the HINT's BEGIN ... COMMIT.
    sql: Option<String>,
    /// pg_migrate.allow has a value that is not this transaction's own (SET
    /// without LOCAL), so it acknowledged nothing.
    allow_not_local: bool,
    /// The statement cannot run in a transaction block (VACUUM FULL), so the
    /// HINT cannot offer BEGIN; SET LOCAL ...
    outside_transaction_block: bool,
}

/// Evaluate, apply acknowledgements (audited), return the rest to be reported.
fn judge(statement: Statement, sql: &extract::LazyText<'_>) -> Verdict {
    let levels = current_levels();
    let outside_transaction_block = statement.runs_outside_transaction_blocks();
    let mut ctx = context(&statement, None);
    super::lock_wait::expect(&statement, &ctx.blockers);
    let mut findings = rules::evaluate(&statement, &ctx, &levels);
    context::with_history(|history| record(history, &statement));
    if findings.is_empty() {
        return Verdict::default();
    }
    // Only now is the statement's text worth finding: the HINTs quote it.
    let sql = sql.get().map(str::to_string);
    if sql.is_some() {
        ctx.sql = sql.clone();
        findings = rules::evaluate(&statement, &ctx, &levels);
    }
    let acknowledged = settings::acknowledgements().unwrap_or_else(|error| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid pg_migrate.allow: {error}"),
            None,
            Some("BEGIN; SET LOCAL pg_migrate.allow = '<rule>: <why this is safe>'; <the statement>; COMMIT;".into()),
        )
    });
    let revision = context::revision_in_force(client_statement);
    let warn_only = settings::GUARD.get() == GuardMode::Warn;
    let mut pending = Vec::new();
    for (finding, level) in findings {
        let by_setting = acknowledged.allowances.iter().find(|a| a.rule == finding.rule).map(|a| (a.reason.clone(), "setting"));
        let by_revision = revision
            .as_ref()
            .and_then(|r| r.allowances.iter().find(|a: &&Allowance| a.rule == finding.rule))
            .map(|a| (a.reason.clone(), "revision"));
        if let Some((reason, source)) = by_setting.or(by_revision) {
            if level >= Level::Warning {
                audit(&finding, sql.as_deref(), &reason, revision.as_ref().map(|r| r.id.as_str()), source);
            }
            continue;
        }
        let level = if warn_only && level == Level::Error { Level::Warning } else { level };
        pending.push((finding, level));
    }
    Verdict { findings: pending, sql, allow_not_local: acknowledged.set_but_not_local, outside_transaction_block }
}

/// Record an acknowledged dangerous operation, as the extension's owner: roles
/// that may acknowledge need not be able to write the audit log themselves.
fn audit(finding: &Finding, sql: Option<&str>, reason: &str, revision: Option<&str>, source: &str) {
    let who: (Option<String>, Option<String>) = extract::read_two("SELECT current_user::pg_catalog.text, session_user::pg_catalog.text", &[], &[]);
    let owner = extract::read_one::<pg_sys::Oid>("SELECT extowner FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_migrate'", &[], &[]);
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

// A finding at level error is thrown from the outermost frame (pg_report's macro).
event_trigger_function!(migrate_guard_ddl_start, pg_finfo_migrate_guard_ddl_start, |f| report(guard_ddl_start(f)));
event_trigger_function!(migrate_guard_table_rewrite, pg_finfo_migrate_guard_table_rewrite, |f| report(guard_table_rewrite(f)));
event_trigger_function!(migrate_guard_sql_drop, pg_finfo_migrate_guard_sql_drop, |f| report(guard_sql_drop(f)));

fn guard_ddl_start(fcinfo: pg_sys::FunctionCallInfo) -> Verdict {
    // SAFETY: an event trigger is called with EventTriggerData as its context.
    let node = unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || !pgrx::is_a(context, NodeTag::T_EventTriggerData) {
            return Verdict::default();
        }
        (*(context as *mut pg_sys::EventTriggerData)).parsetree
    };
    guard_statement(node)
}

/// The rules' findings for one raw statement node.
fn guard_statement(node: *mut pg_sys::Node) -> Verdict {
    if node.is_null() || !guard_active() {
        return Verdict::default();
    }
    // SAFETY: node is a valid parse tree node.
    let tag = unsafe { (*node).type_ };
    let make = move || statement_text(Some(tag));
    let sql = extract::LazyText::new(&make);
    // SAFETY: node is the raw statement node of the command about to run.
    match unsafe { extract::statement(node, &sql, None) } {
        Some(statement) => judge(statement, &sql),
        None => Verdict::default(),
    }
}

/// Statements the ddl_command_start trigger checks (its WHEN TAG list), by node:
/// the hook checks them itself while session_replication_role = replica.
pub fn event_trigger_node(node: *mut pg_sys::Node) -> bool {
    [
        NodeTag::T_IndexStmt,
        NodeTag::T_AlterTableStmt,
        NodeTag::T_DropStmt,
        NodeTag::T_CreateStmt,
        NodeTag::T_AlterEnumStmt,
        NodeTag::T_RefreshMatViewStmt,
        NodeTag::T_AlterTableMoveAllStmt,
        NodeTag::T_AlterDomainStmt,
    ]
    .into_iter()
    // SAFETY: node is a valid parse tree node.
    .any(|tag| unsafe { pgrx::is_a(node, tag) })
}

/// For the ProcessUtility hook (TRUNCATE, REINDEX, VACUUM FULL, CLUSTER, and
/// everything while event triggers are off): the error to throw, if any,
/// in a database where pg_migrate is installed.
pub fn check_utility(node: *mut pg_sys::Node) -> Option<Report> {
    // SAFETY: a catalog look-up by name.
    let installed = unsafe { pg_sys::get_extension_oid(c"pg_migrate".as_ptr(), true) } != pg_sys::InvalidOid;
    if !installed {
        return None;
    }
    report(guard_statement(node))
}

fn guard_table_rewrite(_fcinfo: pg_sys::FunctionCallInfo) -> Verdict {
    if !guard_active() {
        return Verdict::default();
    }
    let (oid, reason) = extract::read_two::<pg_sys::Oid, i32>(
        "SELECT pg_catalog.pg_event_trigger_table_rewrite_oid(), pg_catalog.pg_event_trigger_table_rewrite_reason()",
        &[],
        &[],
    );
    let (Some(oid), Some(reason)) = (oid, reason) else { return Verdict::default() };
    // SAFETY: catalog look-ups of an existing relation.
    match unsafe { extract::table_by_oid(oid) } {
        Some(table) => {
            let make = || statement_text(None);
            judge(Statement::Rewrite { table, reason: reason as u32 }, &extract::LazyText::new(&make))
        }
        None => Verdict::default(),
    }
}

/// sql_drop: the tables and columns the command dropped without naming them
/// (cascade.rs), judged like any statement: levels, acknowledgements, audit.
fn guard_sql_drop(fcinfo: pg_sys::FunctionCallInfo) -> Verdict {
    if !guard_active() {
        return Verdict::default();
    }
    // SAFETY: an event trigger is called with EventTriggerData as its context.
    let (node, tag) = unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || !pgrx::is_a(context, NodeTag::T_EventTriggerData) {
            return Verdict::default();
        }
        let data = &*(context as *mut pg_sys::EventTriggerData);
        (data.parsetree, data.tag)
    };
    // SAFETY: the raw parse tree and tag of the command that dropped the objects.
    match unsafe { super::cascade::dropped_statement(node, tag) } {
        Some(statement) => {
            // SAFETY: node is a valid parse tree node (dropped_statement checked it).
            let node_tag = unsafe { (*node).type_ };
            let make = move || statement_text(Some(node_tag));
            judge(statement, &extract::LazyText::new(&make))
        }
        None => Verdict::default(),
    }
}

/// Send notices and warnings now, notices first; hand back the first error,
/// for the entry point to throw.
fn report(verdict: Verdict) -> Option<Report> {
    let Verdict { mut findings, sql, allow_not_local, outside_transaction_block } = verdict;
    findings.sort_by_key(|(_, level)| *level);
    let mut error = None;
    for (finding, level) in findings {
        let severity = match level {
            Level::Off => continue,
            Level::Notice => Severity::Notice,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        };
        // Only a stopped statement needs a way through: after a WARNING it has run.
        let hint = if level == Level::Error {
            format!("{}\n{}", finding.hint, acknowledge_hint(finding.rule, sql.as_deref(), allow_not_local, outside_transaction_block))
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

/// How to acknowledge: SET LOCAL does nothing outside a transaction block (psql
/// runs each statement in its own), so the HINT writes out the whole block.
fn acknowledge_hint(rule: rules::Rule, sql: Option<&str>, allow_not_local: bool, outside_transaction_block: bool) -> String {
    let statement = sql.map_or_else(|| "<the statement>".to_string(), |s| s.trim().trim_end_matches(';').trim_end().to_string());
    if outside_transaction_block {
        // SET LOCAL needs a transaction block, which the statement refuses.
        return format!(
            "To do it anyway: it cannot run inside a transaction block, so SET LOCAL cannot acknowledge it. \
             Put it in a \"-- Transactional: false\" revision with \"-- Allow: {rule} <reason>\" (applied by migrate_plan), \
             or, as a superuser, SET pg_migrate.guard_levels = '{rule}=warning'; {statement}; RESET pg_migrate.guard_levels;",
            rule = rule.name()
        );
    }
    let mut hint = format!(
        "To do it anyway: BEGIN; SET LOCAL pg_migrate.allow = '{rule}: <reason>'; {statement}; COMMIT; \
         (or \"-- Allow: {rule} <reason>\" in a migration file)",
        rule = rule.name()
    );
    if allow_not_local {
        hint.push_str(
            "\npg_migrate.allow is set, but not by SET LOCAL in this transaction, so it acknowledges nothing: \
             a session's, role's or database's setting never does.",
        );
    }
    hint
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION migrate.guard_ddl_start() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_guard_ddl_start';
CREATE FUNCTION migrate.guard_table_rewrite() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_guard_table_rewrite';

CREATE EVENT TRIGGER migrate_guard_start ON ddl_command_start
    WHEN TAG IN ('CREATE INDEX', 'DROP INDEX', 'ALTER TABLE', 'DROP TABLE', 'CREATE TABLE', 'ALTER TYPE',
                 'ALTER INDEX', 'ALTER MATERIALIZED VIEW', 'REFRESH MATERIALIZED VIEW', 'ALTER DOMAIN')
    EXECUTE FUNCTION migrate.guard_ddl_start();
CREATE EVENT TRIGGER migrate_guard_rewrite ON table_rewrite
    EXECUTE FUNCTION migrate.guard_table_rewrite();
"#,
    name = "guard_event_triggers",
);

/// Findings of every statement of `sql` (1-based statement numbers); `allow`
/// are a revision's header lines.
pub fn check_script(sql: &str, allow: &[String]) -> Vec<(i32, Finding, Level)> {
    check_script_in(sql, allow, &mut extract::Script::default(), &mut HistoryIndex::default())
}

/// As check_script over scripts that run one after the other (the revisions an
/// upgrade applies): a table an earlier one creates is new to the later ones.
/// Each finding comes with the index of its script.
pub fn check_scripts<'a>(scripts: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Vec<(usize, i32, Finding, Level)> {
    let mut script = extract::Script::default();
    let mut history = HistoryIndex::default();
    let mut out = Vec::new();
    for (index, (sql, allow)) in scripts.into_iter().enumerate() {
        pgrx::check_for_interrupts!();
        out.extend(check_script_in(sql, allow, &mut script, &mut history).into_iter().map(|(n, f, l)| (index, n, f, l)));
    }
    out
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
    // SET lock_timeout, SET LOCAL pg_migrate.allow ... earlier in this script.
    let mut settings = ScriptSettings::default();
    let mut out = Vec::new();
    for (index, (statement, node)) in statements.iter().zip(nodes).enumerate() {
        pgrx::check_for_interrupts!();
        // SAFETY: node is the raw parse tree of `statement`.
        unsafe { settings.observe(node) };
        let text = statement.text.clone();
        let make = move || Some(text.clone());
        // SAFETY: node is the raw parse tree of `statement`.
        let Some(facts) = (unsafe { extract::statement(node, &extract::LazyText::new(&make), Some(script)) }) else { continue };
        let acknowledged = |rule: rules::Rule| allowances.iter().chain(settings.allowances()).any(|a| a.rule == rule);
        let mut judge_facts = |facts: &Statement, history: &HistoryIndex| {
            let mut ctx = context(facts, Some(statement.text.clone()));
            ctx.history = history.relevant(facts);
            if let Some(ms) = settings.lock_timeout_ms() {
                ctx.lock_timeout_ms = ms;
            }
            for (finding, level) in rules::evaluate(facts, &ctx, &levels) {
                if !acknowledged(finding.rule) {
                    out.push((index as i32 + 1, finding, level));
                }
            }
        };
        judge_facts(&facts, history);
        // What the table_rewrite event would report, decided from the catalog.
        // SAFETY: as above.
        for (table, reason) in unsafe { static_rewrite::rewrites(node) } {
            judge_facts(&Statement::Rewrite { table, reason }, history);
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
