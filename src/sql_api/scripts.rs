//! Running revisions outside one function call: the psql plan (`migrate_plan()`
//! \gexec) for statements that must run at top level, such as CREATE INDEX
//! CONCURRENTLY, and the offline script (`migrate_sql()`), Alembic's `--sql`.
//!
//! Both are sequences of top-level statements. The bookkeeping functions in
//! schema `migrate` check, before and after a revision's statements, that the
//! state is what the plan expected, so a stale or half-run plan cannot record
//! a revision that did not really apply.

use std::collections::HashMap;

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, quote_qualified_identifier, SpiClient};

use super::apply::step_rows;
use pgrx::datum::Interval;
use crate::engine::{self, acquire_lock, parse_direction, parse_target_or_raise, plan_steps, step_banner, LockScope};
use crate::guard::context;
use crate::errors::{raise, OrRaise};
use crate::revisions::graph::{Direction, RevisionNode, Step};
use crate::server_sql::{self, ConcurrentIndex, StatementKind};
use crate::store::{self, Body, Definition, LoadedGraph, Method, StepRecord};

/// Check that `revision` can take `direction` now, exactly as the plan assumed.
/// Reads only this revision's row (and, for a downgrade, the applied revisions
/// that name it): a step's cost does not grow with the loaded graph.
fn check_step(client: &SpiClient<'_>, revision: &str, direction: Direction, checksum: &str) -> Definition {
    let stale = |message: String| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            message,
            Some("The plan or script was made for a different state. Nothing was applied for this revision.".into()),
            Some("Make the plan again: SELECT * FROM migrate_plan('<target>') \\gexec".into()),
        )
    };
    let Some(state) = store::step_state(client, revision, direction) else {
        stale(format!("revision {revision} is not defined in this database"))
    };
    if state.definition.checksum != checksum {
        stale(format!("revision {revision} was reloaded with a different text after the plan was made"));
    }
    match direction {
        Direction::Upgrade => {
            if state.applied {
                stale(format!("revision {revision} is already applied"));
            }
            if let Some(missing) = &state.missing_prerequisite {
                stale(format!("revision {revision} needs {missing}, which is not applied"));
            }
        }
        Direction::Downgrade => {
            if !state.applied {
                stale(format!("revision {revision} is not applied"));
            }
            if let Some(other) = &state.applied_child {
                stale(format!("revision {revision} cannot be downgraded while {other} is applied"));
            }
        }
    }
    state.definition
}

/// Take the migration lock for this session (first statement of a plan).
#[pg_schema]
pub mod migrate {
    use super::*;

    #[pg_extern(volatile)]
    #[search_path(pg_catalog, pg_temp)]
    fn lock() -> String {
        Spi::connect(|client| acquire_lock(client, LockScope::Session));
        "pg_migrate lock acquired".to_string()
    }

    #[pg_extern(volatile)]
    #[search_path(pg_catalog, pg_temp)]
    fn unlock() -> String {
        // Whatever step was in progress is over: its Allow lines end here.
        context::end_all();
        let released = Spi::connect(engine::release_session_lock);
        if released { "pg_migrate lock released" } else { "pg_migrate lock was not held" }.to_string()
    }

    /// Apply exactly one transactional revision (one row of a plan), through
    /// the PL/pgSQL wrapper migrate.apply_step() (it restores guard SQLSTATEs).
    #[pg_extern(volatile)]
    fn run_step(
        revision: &str,
        direction: &str,
        checksum: &str,
        method: default!(&str, "'plan'"),
    ) -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(direction, String),
        name!(message, String),
        name!(duration, Option<Interval>),
    ),
> {
        let direction = parse_direction(direction);
        let method = parse_method(method);
        let outcomes = Spi::connect_mut(|client| {
            engine::require_recording_privilege(client, "migrate.run_step()");
            acquire_lock(client, LockScope::Transaction);
            let definition = check_step(client, revision, direction, checksum);
            let step = single_step(&definition.node, direction);
            let definitions = HashMap::from([(revision.to_string(), definition)]);
            engine::check_runnable(&definitions, std::slice::from_ref(&step), revision);
            engine::apply_steps(client, &definitions, &[step], method)
        });
        step_rows(outcomes)
    }

    /// Before a revision's statements run at top level: check the state, start the clock.
    #[pg_extern(volatile)]
    #[search_path(pg_catalog, pg_temp)]
    fn begin_step(revision: &str, direction: &str, checksum: &str) -> String {
        let direction = parse_direction(direction);
        let (banner, allow, statements) = Spi::connect(|client| {
            // Its Allow lines cover what runs next: only for roles that could record it.
            engine::require_recording_privilege(client, "migrate.begin_step()");
            acquire_lock(client, LockScope::Transaction);
            let node = check_step(client, revision, direction, checksum).node;
            let body = store::bodies(client, &[revision.to_string()]).remove(revision);
            let statements = body
                .as_ref()
                .and_then(|b| b.section(direction).0)
                .and_then(|sql| server_sql::split_statements(sql).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.text)
                .collect::<Vec<_>>();
            let allow = body.map(|b| b.allow).unwrap_or_default();
            (step_banner(&single_step(&node, direction), &node.message), allow, statements)
        });
        // The revision's "-- Allow:" lines cover its own statements, which psql
        // runs next, as this role, until end_step, unlock or an error.
        context::begin_plan_step(revision, direction, &allow, statements, store::now_us());
        notice!("{banner}");
        banner
    }

    /// After a revision's statements ran: record it, unless one of them failed.
    #[pg_extern(volatile)]
    fn end_step(revision: &str, direction: &str, checksum: &str, method: default!(&str, "'plan'")) -> String {
        let direction = parse_direction(direction);
        let method = parse_method(method);
        let Some(active) = context::end_plan_step(revision, direction) else {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("no migrate.begin_step('{revision}', '{}') ran in this session", direction.as_str()),
                Some("The revision's statements were not run by this plan, so it is not recorded.".into()),
                Some("Run the whole plan in one psql session: SELECT * FROM migrate_plan('<target>') \\gexec".into()),
            )
        };
        if active.aborted {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("a statement of revision {revision} failed; it is not recorded as {}d", direction.as_str()),
                Some("An error was reported above, after migrate.begin_step(). Statements that did succeed \
                      are not undone: a non-transactional revision runs without a transaction."
                    .into()),
                Some("Fix the cause, then make and run the plan again (with \\set ON_ERROR_STOP on).".into()),
            );
        }
        Spi::connect_mut(|client| {
            acquire_lock(client, LockScope::Transaction);
            check_step(client, revision, direction, checksum);
            if direction == Direction::Upgrade {
                let bodies = store::bodies(client, &[revision.to_string()]);
                if let Some(body) = bodies.get(revision) {
                    require_valid_indexes(client, revision, body);
                }
            }
            let elapsed = i64::try_from(active.clock.elapsed().as_micros()).unwrap_or(i64::MAX);
            store::record_steps(
                client,
                method,
                &[StepRecord {
                    revision: revision.to_string(),
                    direction,
                    checksum: Some(checksum.to_string()),
                    started_at: active.started_at_us,
                    duration_us: Some(elapsed),
                }],
            );
        });
        format!("recorded {} {revision}", direction.as_str())
    }
}

fn parse_method(text: &str) -> Method {
    match text {
        "plan" => Method::Plan,
        "sql" => Method::Sql,
        _ => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown method \"{text}\""),
            None,
            Some("Use 'plan' or 'sql'.".into()),
        ),
    }
}

fn single_step(node: &RevisionNode, direction: Direction) -> Step {
    let (from, to) = match direction {
        Direction::Upgrade => (node.parents.clone(), vec![node.id.clone()]),
        Direction::Downgrade => (vec![node.id.clone()], node.parents.clone()),
    };
    Step { revision: node.id.clone(), direction, from, to }
}

/// The concurrent indexes a revision builds.
fn concurrent_indexes(body: &Body) -> Vec<ConcurrentIndex> {
    server_sql::split_statements(&body.upgrade_sql)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|statement| match statement.kind {
            StatementKind::TopLevelOnly { concurrent_index, .. } => concurrent_index,
            _ => None,
        })
        .collect()
}

fn table_name(index: &ConcurrentIndex) -> String {
    match &index.table_schema {
        Some(schema) => quote_qualified_identifier(schema, &index.table_name),
        None => quote_identifier(&index.table_name),
    }
}

/// (qualified index name, is valid) of a named concurrent index, if it exists.
fn index_state(client: &SpiClient<'_>, index: &ConcurrentIndex) -> Option<(String, bool)> {
    let name = index.index_name.as_ref()?;
    let row = client
        .select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), i.indisvalid
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE c.relname OPERATOR(pg_catalog.=) $1 AND i.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($2)",
            None,
            &[name.clone().into(), table_name(index).into()],
        )
        .and_then(|rows| if rows.is_empty() { Ok((None, None)) } else { rows.first().get_two::<String, bool>() })
        .or_raise("look up an index");
    match row {
        (Some(qualified), Some(valid)) => Some((qualified, valid)),
        _ => None,
    }
}

/// A failed CREATE INDEX CONCURRENTLY leaves an INVALID index; with IF NOT EXISTS
/// a rerun would skip it and record a revision whose index does not work.
fn require_valid_indexes(client: &SpiClient<'_>, revision: &str, body: &Body) {
    for index in concurrent_indexes(body) {
        let Some(name) = &index.index_name else { continue };
        match index_state(client, &index) {
            Some((_, true)) => {}
            Some((qualified, false)) => raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("index {qualified} of revision {revision} is INVALID; not recording the revision"),
                Some("A concurrent index build failed or was cancelled and left an invalid index behind.".into()),
                Some("Make and run the plan again: it drops the invalid index first (DROP INDEX CONCURRENTLY).".into()),
            ),
            None => raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("index {name} of revision {revision} does not exist on {}; not recording the revision", table_name(&index)),
                None,
                Some("Make and run the plan again.".into()),
            ),
        }
    }
}

struct PlannedRevision<'a> {
    step: &'a Step,
    node: &'a RevisionNode,
    checksum: &'a str,
    statements: Vec<String>,
}

fn planned<'a>(client: &SpiClient<'_>, loaded: &'a LoadedGraph, steps: &'a [Step]) -> Vec<PlannedRevision<'a>> {
    let ids: Vec<String> = steps.iter().map(|s| s.revision.clone()).collect();
    let bodies = store::bodies(client, &ids);
    steps
        .iter()
        .filter_map(|step| {
            pgrx::check_for_interrupts!();
            let node = loaded.graph.get(&step.revision)?;
            let definition = loaded.definitions.get(&step.revision)?;
            let body = bodies.get(&step.revision)?;
            let (sql, _) = body.section(step.direction);
            let Some(sql) = sql else {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("revision {} has no downgrade section", step.revision),
                    None,
                    Some("Add a \"-- migrate:downgrade\" section and reload the file.".into()),
                )
            };
            let statements = server_sql::split_statements(sql)
                .unwrap_or_else(|e| raise(e.code, format!("revision {}: {}", step.revision, e.message), None, None));
            Some(PlannedRevision {
                step,
                node,
                checksum: &definition.checksum,
                statements: statements.into_iter().map(|s| s.text).collect(),
            })
        })
        .collect()
}

fn steps_for(client: &SpiClient<'_>, target: &str, direction: &str) -> (LoadedGraph, Vec<Step>, Direction) {
    let parsed = parse_target_or_raise(target);
    let direction = parse_direction(direction);
    let loaded = store::load_graph(client);
    let applied = store::applied_ids(client);
    let steps = plan_steps(&loaded, &applied, &parsed, direction);
    (loaded, steps, direction)
}

/// One `-- ` comment line from any text. A carriage return or line feed would
/// end the comment and let the rest run as SQL, so every control character
/// (tabs aside) becomes a space. Every comment written from data goes here.
fn sql_comment(text: &str) -> String {
    let safe: String = text.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect();
    format!("-- {safe}")
}

/// A call of a bookkeeping function; every argument is a quoted literal.
fn call(function: &str, revision: &PlannedRevision<'_>, method: &str) -> String {
    format!(
        "migrate.{function}({}, {}, {}{})",
        quote_literal(&revision.step.revision),
        quote_literal(revision.step.direction.as_str()),
        quote_literal(revision.checksum),
        if method.is_empty() { String::new() } else { format!(", {}", quote_literal(method)) }
    )
}

/// Top-level statements that psql runs one by one with \gexec:
///   \set ON_ERROR_STOP on
///   SELECT * FROM migrate_plan('head') \gexec
/// A transactional revision is one statement; a non-transactional one is its
/// statements, between begin_step() and end_step().
#[pg_extern(volatile)]
fn migrate_plan(
    target: default!(&str, "'head'"),
    direction: default!(&str, "'upgrade'"),
) -> SetOfIterator<'static, String> {
    let rows = Spi::connect(|client| {
        let (loaded, steps, direction) = steps_for(client, target, direction);
        let mut rows = Vec::new();
        if steps.is_empty() {
            notice!("nothing to {}: the database is already at '{target}'", direction.as_str());
            return rows;
        }
        rows.push("SELECT migrate.lock()".to_string());
        for revision in planned(client, &loaded, &steps) {
            let banner = step_banner(revision.step, &revision.node.message);
            if revision.node.transactional {
                rows.push(format!("{}\nSELECT * FROM {}", sql_comment(&banner), call("apply_step", &revision, "")));
                continue;
            }
            rows.push(format!(
                "{}\nSELECT {}",
                sql_comment(&format!("{banner} (outside a transaction)")),
                call("begin_step", &revision, "")
            ));
            for statement in &revision.statements {
                pgrx::check_for_interrupts!();
                if direction == Direction::Upgrade {
                    if let Some(drop) = drop_invalid_index(client, statement) {
                        rows.push(drop);
                    }
                }
                rows.push(statement.clone());
            }
            rows.push(format!("SELECT {}", call("end_step", &revision, "plan")));
        }
        rows.push("SELECT migrate.unlock()".to_string());
        rows
    });
    SetOfIterator::new(rows)
}

/// If `statement` builds a concurrent index that an earlier failed build left
/// INVALID, the statement that removes it first (IF NOT EXISTS would skip it).
fn drop_invalid_index(client: &SpiClient<'_>, statement: &str) -> Option<String> {
    let parsed = server_sql::split_statements(statement).ok()?;
    let StatementKind::TopLevelOnly { concurrent_index: Some(index), .. } = &parsed.first()?.kind else {
        return None;
    };
    match index_state(client, index)? {
        (qualified, false) => Some(format!(
            "{}\nDROP INDEX CONCURRENTLY IF EXISTS {qualified}",
            sql_comment(&format!("{qualified} is INVALID, left by a failed concurrent build: drop it before rebuilding"))
        )),
        (_, true) => None,
    }
}

/// The script that would run, for review or for running later with
/// `psql -v ON_ERROR_STOP=1 -f script.sql` (Alembic's `upgrade --sql`);
/// `from:to` makes it for a range, from the graph alone.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_sql(target: default!(&str, "'head'"), direction: default!(&str, "'upgrade'")) -> String {
    // No target has a colon (identifiers cannot), so 'from:to' is a range.
    if target.contains(':') {
        return super::ranges::range_script(target, direction);
    }
    Spi::connect(|client| {
        let (loaded, steps, direction) = steps_for(client, target, direction);
        offline_script(client, &loaded, &steps, direction, &format!("to '{target}'"))
    })
}

/// "1 revision", "3 revisions".
fn revisions_count(count: usize) -> String {
    if count == 1 { "1 revision".to_string() } else { format!("{count} revisions") }
}

/// The offline script of `steps`: consecutive transactional revisions share
/// one transaction, a non-transactional one runs outside any. `destination`
/// says where it goes ("to 'head'"), for the header.
pub(crate) fn offline_script(
    client: &SpiClient<'_>,
    loaded: &LoadedGraph,
    steps: &[Step],
    direction: Direction,
    destination: &str,
) -> String {
    let database: String = client
        .select("SELECT pg_catalog.current_database()::pg_catalog.text", None, &[])
        .and_then(|rows| rows.first().get_one())
        .or_raise("read the database name")
        .unwrap_or_default();
    let mut script = format!(
        "{}\n-- Run it with: psql -v ON_ERROR_STOP=1 -f <this file>\n\n",
        sql_comment(&format!(
            "pg_migrate offline script: {} {destination} ({}), made from database {database}",
            direction.as_str(),
            revisions_count(steps.len())
        ))
    );
    if steps.is_empty() {
        script.push_str("-- Nothing to do.\n");
        return script;
    }
    script.push_str("SELECT migrate.lock();\n\n");
    let mut in_transaction = false;
    for revision in planned(client, loaded, steps) {
        let banner = step_banner(revision.step, &revision.node.message);
        let transactional = revision.node.transactional;
        if transactional != in_transaction {
            script.push_str(if transactional { "BEGIN;\n\n" } else { "COMMIT;\n\n" });
            in_transaction = transactional;
        }
        let outside = if transactional { "" } else { " (outside a transaction)" };
        script.push_str(&format!(
            "{}\nSELECT {};\n\n",
            sql_comment(&format!("{banner}{outside}")),
            call("begin_step", &revision, "")
        ));
        for statement in &revision.statements {
            pgrx::check_for_interrupts!();
            script.push_str(statement);
            script.push_str(";\n\n");
        }
        script.push_str(&format!("SELECT {};\n\n", call("end_step", &revision, "sql")));
    }
    if in_transaction {
        script.push_str("COMMIT;\n\n");
    }
    script.push_str("SELECT migrate.unlock();\n");
    script
}

#[cfg(test)]
mod comment_tests {
    use super::{revisions_count, sql_comment};

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(revisions_count(0), "0 revisions");
        assert_eq!(revisions_count(1), "1 revision");
        assert_eq!(revisions_count(2), "2 revisions");
    }

    #[test]
    fn a_comment_cannot_be_ended_by_its_text() {
        for text in ["x\rSELECT 1/0;", "x\nSELECT 1/0;", "x\r\nDROP TABLE t;", "a\u{0}b\u{85}c"] {
            let comment = sql_comment(text);
            assert!(comment.starts_with("-- "));
            assert!(!comment.chars().any(char::is_control), "{comment:?}");
        }
        assert_eq!(sql_comment("Running upgrade  -> a1, add\tt"), "-- Running upgrade  -> a1, add\tt");
    }
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION migrate.apply_step(step_revision text, step_direction text, step_checksum text, step_method text DEFAULT 'plan')
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE plpgsql AS $$
DECLARE
    m pg_catalog.text; d pg_catalog.text; h pg_catalog.text; c pg_catalog.text;
BEGIN
    RETURN QUERY SELECT * FROM migrate.run_step(step_revision, step_direction, step_checksum, step_method);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    c := migrate.carried_sqlstate(m);
    IF c IS NULL THEN RAISE; END IF;
    PERFORM migrate.reraise(c, m, d, h);
END
$$;
"#,
    name = "apply_step_wrapper",
    requires = ["upgrade_wrappers", migrate::run_step],
);

// Who may call the internal functions. A plan's or script's bookkeeping is for
// roles that run migrations; every function that runs revisions also checks
// inside that its caller may record them (INSERT on migrate.applied).
// run_upgrade, run_downgrade, carried_sqlstate and reraise stay callable by
// PUBLIC: migrate_upgrade() and migrate_downgrade() call them as the caller.
pgrx::extension_sql!(
    r#"
REVOKE EXECUTE ON FUNCTION migrate.lock() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.unlock() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.begin_step(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.end_step(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.run_step(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.apply_step(text, text, text, text) FROM PUBLIC;
"#,
    name = "internal_function_privileges",
    requires = ["apply_step_wrapper", "upgrade_wrappers", migrate::lock, migrate::unlock, migrate::begin_step, migrate::end_step],
);
