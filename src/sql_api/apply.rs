//! Moving the applied state: migrate_upgrade(), migrate_downgrade(), migrate_stamp().
//!
//! Upgrade and downgrade run the user's migrations, so they do not pin
//! search_path: migrations run with the caller's, as they would from psql.
//! Every internal query is schema-qualified instead.

use pgrx::datum::Interval;
use pgrx::prelude::*;

use crate::engine::{self, acquire_lock, parse_target_or_raise, plan_steps, LockScope, StepOutcome};
use crate::errors::raise_graph_error;
use crate::revisions::graph::Direction;
use crate::store::{self, Method, StepRecord};

pub type StepRows = TableIterator<
    'static,
    (
        name!(revision, String),
        name!(direction, String),
        name!(message, String),
        name!(duration, Option<Interval>),
    ),
>;

pub fn step_rows(outcomes: Vec<StepOutcome>) -> StepRows {
    TableIterator::new(outcomes.into_iter().map(|o| {
        (o.revision, o.direction.as_str().to_string(), o.message, o.duration)
    }))
}

fn run(target_text: &str, direction: Direction) -> StepRows {
    let target = parse_target_or_raise(target_text);
    let outcomes = Spi::connect_mut(|client| {
        engine::require_recording_privilege(client, &format!("migrate_{}()", direction.as_str()));
        acquire_lock(client, LockScope::Transaction);
        let loaded = store::load_graph(client);
        let applied = store::applied_ids(client);
        let steps = plan_steps(&loaded, &applied, &target, direction);
        engine::check_runnable(&loaded.definitions, &steps, target_text);
        engine::apply_steps(client, &loaded.definitions, &steps, Method::Function)
    });
    if outcomes.is_empty() {
        notice!("nothing to {}: the database is already at '{target_text}'", direction.as_str());
    }
    step_rows(outcomes)
}

/// Apply every revision needed to reach `target`, in one transaction.
/// Called through the PL/pgSQL wrapper migrate_upgrade() (see below).
#[pg_extern(volatile, schema = "migrate")]
fn run_upgrade(target: &str) -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(direction, String),
        name!(message, String),
        name!(duration, Option<Interval>),
    ),
> {
    run(target, Direction::Upgrade)
}

/// Undo applied revisions down to `target`, in one transaction.
/// Called through the PL/pgSQL wrapper migrate_downgrade().
#[pg_extern(volatile, schema = "migrate")]
fn run_downgrade(target: &str) -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(direction, String),
        name!(message, String),
        name!(duration, Option<Interval>),
    ),
> {
    run(target, Direction::Downgrade)
}

/// Set the applied state to `target` without running any SQL (`alembic stamp`).
/// With `purge`, first forget every applied revision, known or not.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_stamp(target: &str, purge: default!(bool, false)) -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(direction, String),
        name!(message, String),
        name!(duration, Option<Interval>),
    ),
> {
    let parsed = parse_target_or_raise(target);
    let outcomes = Spi::connect_mut(|client| {
        acquire_lock(client, LockScope::Transaction);
        let loaded = store::load_graph(client);
        let mut applied = store::applied_ids(client);
        let mut records = Vec::new();
        let now = store::now_us();
        if purge {
            let mut forgotten: Vec<&String> = applied.iter().collect();
            forgotten.sort();
            records.extend(forgotten.into_iter().map(|id| StepRecord {
                revision: id.clone(),
                direction: Direction::Downgrade,
                checksum: None,
                started_at: now,
                duration_us: None,
            }));
            store::record_steps(client, Method::Stamp, &records);
            applied.clear();
        }
        let steps = loaded
            .graph
            .stamp_plan(&applied, &parsed)
            .unwrap_or_else(|error| raise_graph_error(&error));
        let stamped: Vec<StepRecord> = steps
            .iter()
            .map(|step| StepRecord {
                revision: step.revision.clone(),
                direction: step.direction,
                checksum: loaded.definitions.get(&step.revision).map(|d| d.checksum.clone()),
                started_at: now,
                duration_us: None,
            })
            .collect();
        store::record_steps(client, Method::Stamp, &stamped);
        records.extend(stamped);
        records
            .into_iter()
            .map(|record| StepOutcome {
                message: loaded
                    .graph
                    .get(&record.revision)
                    .map_or_else(|| "(no definition)".to_string(), |n| n.message.clone()),
                revision: record.revision,
                direction: record.direction,
                duration: None,
            })
            .collect::<Vec<_>>()
    });
    step_rows(outcomes)
}

/// The real SQLSTATE of an error that came back through Rust as XX000 with
/// `message`: pgrx knows only PostgreSQL's own codes, so a guard rule's MG code
/// or a user's own code is carried beside it, and the wrappers below put it back.
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn carried_sqlstate(message: &str) -> Option<String> {
    crate::pg_report::take_carried(message)
}

pgrx::extension_sql!(
    r#"
-- Re-raise an error that came back through Rust as XX000 with its real code.
CREATE FUNCTION migrate.reraise(code text, message text, detail text, hint text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, DETAIL = coalesce(detail, ''), HINT = coalesce(hint, '');
END
$$;

-- migrate_upgrade() and migrate_downgrade() are thin PL/pgSQL wrappers: the work
-- is in Rust; the wrapper only restores a SQLSTATE pgrx does not know (a guard
-- rule's, or a user's own), which it cannot carry through a Rust function. No search_path is pinned: revisions run
-- with the caller's.
CREATE FUNCTION migrate_upgrade(target text DEFAULT 'head')
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE plpgsql AS $$
DECLARE
    m pg_catalog.text; d pg_catalog.text; h pg_catalog.text; c pg_catalog.text;
BEGIN
    RETURN QUERY SELECT * FROM migrate.run_upgrade(target);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    c := migrate.carried_sqlstate(m);
    IF c IS NULL THEN RAISE; END IF;
    PERFORM migrate.reraise(c, m, d, h);
END
$$;
COMMENT ON FUNCTION migrate_upgrade(text) IS 'Apply every revision needed to reach target, in one transaction';

CREATE FUNCTION migrate_downgrade(target text)
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE plpgsql AS $$
DECLARE
    m pg_catalog.text; d pg_catalog.text; h pg_catalog.text; c pg_catalog.text;
BEGIN
    RETURN QUERY SELECT * FROM migrate.run_downgrade(target);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    c := migrate.carried_sqlstate(m);
    IF c IS NULL THEN RAISE; END IF;
    PERFORM migrate.reraise(c, m, d, h);
END
$$;
COMMENT ON FUNCTION migrate_downgrade(text) IS 'Undo applied revisions down to target, in one transaction';
"#,
    name = "upgrade_wrappers",
    requires = [run_upgrade, run_downgrade, carried_sqlstate],
);
