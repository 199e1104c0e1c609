//! Running revisions: the migration lock, executing a revision's statements with
//! errors that name the revision, file line and statement, and the bookkeeping.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use pgrx::datum::Interval;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::errors::{raise, raise_graph_error, raise_target_error, OrRaise};
use crate::guard::context;
use crate::revisions::graph::{Direction, Step};
use crate::revisions::target::{parse_target, Target};
use crate::server_sql::{self, line_of, StatementKind};
use crate::store::{self, Definition, LoadedGraph, Method, StepRecord};

/// Advisory lock key shared by every command that changes the applied state
/// ("pgmigrat" in ASCII). Advisory locks are per database.
pub const LOCK_KEY: i64 = 0x7067_6d69_6772_6174;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// Released at commit or rollback: one migrate_upgrade() call.
    Transaction,
    /// Held across the statements of a psql plan or offline script.
    Session,
}

/// Serialize migration commands. Waits as long as lock_timeout allows; when it
/// gives up, the error names the session that holds the lock.
pub fn acquire_lock(client: &SpiClient<'_>, scope: LockScope) {
    take_lock(client, scope);
    // pgrx runs SPI read-only, on the calling statement's snapshot, until the
    // transaction has an xid. That snapshot predates the wait, so it may miss
    // revisions the previous holder just committed: take an xid so every
    // following query gets a fresh snapshot (READ COMMITTED).
    // SAFETY: assigns a transaction id or raises an ERROR.
    unsafe { pg_sys::GetCurrentTransactionId() };
}

fn take_lock(client: &SpiClient<'_>, scope: LockScope) {
    let (try_lock, lock) = match scope {
        LockScope::Transaction => ("pg_try_advisory_xact_lock", "pg_advisory_xact_lock"),
        LockScope::Session => ("pg_try_advisory_lock", "pg_advisory_lock"),
    };
    let got: bool = client
        .select(&format!("SELECT pg_catalog.{try_lock}($1)"), None, &[LOCK_KEY.into()])
        .and_then(|rows| rows.first().get_one())
        .or_raise("try the migration lock")
        .unwrap_or(false);
    if got {
        return;
    }

    let holder = lock_holder(client);
    let lock_timeout: String = client
        .select("SELECT pg_catalog.current_setting('lock_timeout')", None, &[])
        .and_then(|rows| rows.first().get_one())
        .or_raise("read lock_timeout")
        .unwrap_or_default();
    notice!("waiting for the pg_migrate lock held by {holder}");

    let wait = format!("SELECT pg_catalog.{lock}($1)");
    PgTryBuilder::new(AssertUnwindSafe(|| {
        client.select(&wait, None, &[LOCK_KEY.into()]).or_raise("take the migration lock");
    }))
    .catch_when(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, move |_| {
        raise(
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            format!("another pg_migrate command is running: {holder}"),
            Some(format!(
                "lock_timeout ({lock_timeout}) expired while waiting for the migration lock. \
                 Nothing was applied."
            )),
            Some(
                "Wait for that session to finish and run the command again, or raise \
                 lock_timeout to wait longer (SET lock_timeout = '5min')."
                    .into(),
            ),
        )
    })
    .execute();
}

/// "pid 1234 (role alice, transaction open since ..., query: ...)".
fn lock_holder(client: &SpiClient<'_>) -> String {
    let classid = (LOCK_KEY >> 32) as u32 as i64;
    let objid = (LOCK_KEY & 0xffff_ffff) as u32 as i64;
    let row = client
        .select(
            "SELECT l.pid,
                    pg_catalog.format('pid %s (role %s, transaction open since %s, query: %s)',
                                      l.pid, a.usename, a.xact_start::timestamp(0),
                                      pg_catalog.left(a.query, 200))
               FROM pg_catalog.pg_locks l
               LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
              WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted
                AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database
                                   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
                AND l.classid::bigint OPERATOR(pg_catalog.=) $1 AND l.objid::bigint OPERATOR(pg_catalog.=) $2
                AND l.objsubid OPERATOR(pg_catalog.=) 1
                AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
              LIMIT 1",
            None,
            &[classid.into(), objid.into()],
        )
        .and_then(|rows| if rows.is_empty() { Ok((None, None)) } else { rows.first().get_two::<i32, String>() })
        .or_raise("look up the lock holder");
    match row {
        (Some(_), Some(description)) => description,
        _ => "a session that has since finished".into(),
    }
}

/// Running revisions is for roles that may record them: their "-- Allow:"
/// lines acknowledge dangerous DDL, so no other role may run under them.
pub fn require_recording_privilege(client: &SpiClient<'_>, what: &str) {
    let may: bool = client
        .select("SELECT pg_catalog.has_table_privilege('migrate.applied', 'INSERT')", None, &[])
        .and_then(|rows| rows.first().get_one())
        .or_raise("check the privilege to record revisions")
        .unwrap_or(false);
    if !may {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for {what}: only a role that may record revisions can run them"),
            Some("Recording a revision needs INSERT on migrate.applied. Nothing was run.".into()),
            Some("Run it as the extension's owner, or have the owner grant the privileges (see docs/functions.md, Privileges).".into()),
        )
    }
}

pub fn release_session_lock(client: &SpiClient<'_>) -> bool {
    client
        .select("SELECT pg_catalog.pg_advisory_unlock($1)", None, &[LOCK_KEY.into()])
        .and_then(|rows| rows.first().get_one())
        .or_raise("release the migration lock")
        .unwrap_or(false)
}

/// A target, or the error that says what is wrong with it.
pub fn parse_target_or_raise(text: &str) -> Target {
    parse_target(text).unwrap_or_else(|error| raise_target_error(&error))
}

/// 'upgrade' or 'downgrade'.
pub fn parse_direction(text: &str) -> Direction {
    match text.trim().to_ascii_lowercase().as_str() {
        "upgrade" | "up" => Direction::Upgrade,
        "downgrade" | "down" => Direction::Downgrade,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown direction \"{text}\""),
            None,
            Some("Use 'upgrade' or 'downgrade'.".into()),
        ),
    }
}

/// The steps that moving to `target` takes from the current state.
pub fn plan_steps(
    loaded: &LoadedGraph,
    applied: &std::collections::HashSet<String>,
    target: &Target,
    direction: Direction,
) -> Vec<Step> {
    let plan = match direction {
        Direction::Upgrade => loaded.graph.upgrade_plan(applied, target),
        Direction::Downgrade => loaded.graph.downgrade_plan(applied, target),
    };
    plan.unwrap_or_else(|error| raise_graph_error(&error))
}

/// Where a revision's SQL came from, for error messages.
pub struct RevisionLabel<'a> {
    pub id: &'a str,
    pub source_file: Option<&'a str>,
}

impl RevisionLabel<'_> {
    fn at_line(&self, line: usize) -> String {
        match self.source_file {
            Some(file) => format!("revision {} ({file}, line {line})", self.id),
            None => format!("revision {} (line {line})", self.id),
        }
    }
}

/// Inside a function every statement shares the caller's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// A normal upgrade: top-level-only statements are refused.
    InTransaction,
    /// The round-trip test: CONCURRENTLY is dropped so the statement can run here.
    RoundTrip,
}

/// Run one section of a revision, statement by statement, so that an error can
/// say which statement and line failed. Errors keep their original SQLSTATE.
pub fn run_section(
    client: &mut SpiClient<'_>,
    label: &RevisionLabel<'_>,
    sql: &str,
    first_line: usize,
    mode: RunMode,
) {
    let statements = server_sql::split_statements(sql).unwrap_or_else(|error| {
        let line = line_of(sql, error.offset.unwrap_or(0), first_line);
        raise(error.code, format!("{}: {}", label.at_line(line), error.message), None, None)
    });
    for statement in statements {
        pgrx::check_for_interrupts!();
        let line = statement.line(first_line);
        let text = match &statement.kind {
            StatementKind::Ordinary => statement.text.clone(),
            StatementKind::TransactionControl => raise(
                PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
                format!("{}: transaction control is not allowed in a revision", label.at_line(line)),
                Some(format!("Statement: {}", excerpt(&statement.text))),
                Some("pg_migrate runs each revision in a transaction of its own; remove BEGIN/COMMIT.".into()),
            ),
            StatementKind::TopLevelOnly { what, .. } => match mode {
                RunMode::RoundTrip => server_sql::without_concurrently(&statement.text)
                    .unwrap_or_else(|| statement.text.clone()),
                RunMode::InTransaction => raise(
                    PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
                    format!("{}: {what} cannot run inside a transaction", label.at_line(line)),
                    None,
                    Some("Mark the revision \"-- Transactional: false\" and apply it with migrate_plan().".into()),
                ),
            },
        };
        context::with_statement(&text, || execute_statement(client, label, &text, line));
    }
}

fn execute_statement(client: &mut SpiClient<'_>, label: &RevisionLabel<'_>, text: &str, line: usize) {
    let location = label.at_line(line);
    let result = PgTryBuilder::new(AssertUnwindSafe(|| {
        let run = || client.update(text, None, &[]).map(|_| ()).map_err(|e| e.to_string());
        crate::pg_report::noting_sqlstate(run)
    }))
    .catch_others(|caught| match caught {
        CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
            let mut detail = format!("Statement: {}", excerpt(text));
            if let Some(original) = report.detail() {
                detail = format!("{original}\n{detail}");
            }
            let code = report.sql_error_code();
            let hint = if code == PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY
                && report.message().contains("shared memory")
            {
                Some(
                    "Every revision in one call keeps its locks until commit. Apply fewer \
                     revisions per call (for example migrate_downgrade('-1000') repeatedly), \
                     use migrate_plan(), which commits after each revision, or raise \
                     max_locks_per_transaction (needs a restart)."
                        .to_string(),
                )
            } else {
                report.hint().map(str::to_string)
            };
            let message = format!("{location} failed: {}", report.message());
            // pgrx knows only PostgreSQL's own codes; keep the real one (a guard
            // rule's MG code, a user's RAISE ... USING ERRCODE) for the wrappers.
            let mapped = crate::pg_report::decode_sqlstate(code as i32);
            if let Some(real) = crate::pg_report::noted_sqlstate().filter(|real| *real != mapped) {
                crate::pg_report::carry(real, message.clone());
            }
            raise(code, message, Some(detail), hint)
        }
        other => other.rethrow(),
    })
    .execute();
    if let Err(spi_error) = result {
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{location} failed: {spi_error}"),
            Some(format!("Statement: {}", excerpt(text))),
            None,
        );
    }
}

pub fn excerpt(text: &str) -> String {
    const LIMIT: usize = 300;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{} ...", &text[..cut]),
        None => text.to_string(),
    }
}

/// "Running upgrade a, b -> m, Merge billing": Alembic's wording.
pub fn step_banner(step: &Step, message: &str) -> String {
    format!(
        "Running {} {} -> {}, {}",
        step.direction.as_str(),
        step.from.join(", "),
        step.to.join(", "),
        message
    )
}

/// One row of the result of migrate_upgrade()/migrate_downgrade().
pub struct StepOutcome {
    pub revision: String,
    pub direction: Direction,
    pub message: String,
    pub duration: Option<Interval>,
}

/// Refuse the whole call before running anything if a step cannot run here.
pub fn check_runnable(definitions: &HashMap<String, Definition>, steps: &[Step], target: &str) {
    for step in steps {
        let Some(node) = definitions.get(&step.revision).map(|d| &d.node) else { continue };
        if !node.transactional {
            let direction = step.direction.as_str();
            raise(
                PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
                format!(
                    "revision {} ({}) is marked Transactional: false and cannot run inside migrate_{direction}()",
                    node.id, node.message
                ),
                Some(
                    "Its statements must run one by one at top level, outside any function or \
                     transaction block (CREATE INDEX CONCURRENTLY needs that). Nothing was applied."
                        .into(),
                ),
                Some(format!(
                    "Run the plan from psql, which applies each revision on its own:\n\
                     \\set ON_ERROR_STOP on\n\
                     SELECT * FROM {} \\gexec",
                    plan_call(target, step.direction)
                )),
            );
        }
    }
}

/// `migrate_plan('head')`, or `migrate_plan('x', 'downgrade')`.
pub fn plan_call(target: &str, direction: Direction) -> String {
    let target = pgrx::spi::quote_literal(target);
    match direction {
        Direction::Upgrade => format!("migrate_plan({target})"),
        Direction::Downgrade => format!("migrate_plan({target}, 'downgrade')"),
    }
}

/// Run the steps in this transaction and record them. The caller holds the lock.
pub fn apply_steps(
    client: &mut SpiClient<'_>,
    definitions: &HashMap<String, Definition>,
    steps: &[Step],
    method: Method,
) -> Vec<StepOutcome> {
    let ids: Vec<String> = steps.iter().map(|s| s.revision.clone()).collect();
    let bodies = store::bodies(client, &ids);
    let mut records = Vec::with_capacity(steps.len());
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        let Some(definition) = definitions.get(&step.revision) else {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("revision {} has no definition", step.revision),
                None,
                Some("Load its file with migrate_load() or migrate_load_dir().".into()),
            )
        };
        let Some(body) = bodies.get(&step.revision) else { continue };
        let (sql, first_line) = body.section(step.direction);
        let Some(sql) = sql else {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("revision {} has no downgrade section", step.revision),
                Some("Nothing was applied.".into()),
                Some(format!(
                    "Add a \"-- migrate:downgrade\" section and reload the file, or mark it unapplied \
                     without running SQL: SELECT * FROM migrate_stamp('{}');",
                    step.from.first().map_or("base", |_| step.to.first().map_or("base", String::as_str))
                )),
            )
        };
        notice!("{}", step_banner(step, &definition.node.message));
        let started_at = store::now_us();
        let clock = Instant::now();
        let label = RevisionLabel { id: &step.revision, source_file: definition.source_file.as_deref() };
        context::in_revision(&step.revision, &body.allow, || {
            run_section(client, &label, sql, first_line, RunMode::InTransaction)
        });
        let elapsed = i64::try_from(clock.elapsed().as_micros()).unwrap_or(i64::MAX);
        records.push(StepRecord {
            revision: step.revision.clone(),
            direction: step.direction,
            checksum: Some(definition.checksum.clone()),
            started_at,
            duration_us: Some(elapsed),
        });
        outcomes.push(StepOutcome {
            revision: step.revision.clone(),
            direction: step.direction,
            message: definition.node.message.clone(),
            duration: Some(Interval::from_micros(elapsed)),
        });
    }
    store::record_steps(client, method, &records);
    outcomes
}
