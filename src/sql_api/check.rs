//! The guard without running anything: migrate_guard_check() for a script,
//! migrate_review() for the revisions an upgrade would apply.

use pgrx::prelude::*;

use std::collections::HashMap;

use crate::engine::{excerpt, parse_target_or_raise, plan_steps};
use crate::guard::triggers::{check_script, check_scripts};
use crate::revisions::graph::Direction;
use crate::server_sql;
use crate::store;

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

/// What the guard would say about the revisions an upgrade to `target` would
/// apply, before running it. A revision's "-- Allow:" lines apply to it, and
/// so do its own SET LOCAL lock_timeout / pg_migrate.allow statements.
/// `detail` is the DETAIL a live refusal would carry. (0.1.0 had no `detail`
/// column; its C symbol, migrate_review_wrapper, is in superseded.rs.)
#[pg_extern(volatile, name = "migrate_review")]
fn review_pending(
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
        name!(detail, String),
        name!(hint, String),
    ),
> {
    let parsed = parse_target_or_raise(target);
    let rows = Spi::connect(|client| {
        let loaded = store::load_graph(client);
        let applied = store::applied_ids(client);
        let steps = plan_steps(&loaded, &applied, &parsed, Direction::Upgrade);
        let ids: Vec<String> = steps.iter().map(|s| s.revision.clone()).collect();
        let bodies = store::bodies(client, &ids);
        let pending: Vec<(&String, &store::Body)> =
            steps.iter().filter_map(|step| bodies.get(&step.revision).map(|body| (&step.revision, body))).collect();
        let scripts = pending.iter().map(|(_, body)| (body.upgrade_sql.as_str(), body.allow.as_slice()));
        let mut texts: HashMap<usize, Vec<String>> = HashMap::new();
        check_scripts(scripts)
            .into_iter()
            .map(|(index, n, finding, level)| {
                // As the live refusal from migrate_upgrade: the rule's DETAIL, then the statement.
                let statements = texts.entry(index).or_insert_with(|| {
                    server_sql::split_statements(&pending[index].1.upgrade_sql)
                        .map(|s| s.into_iter().map(|s| s.text).collect())
                        .unwrap_or_default()
                });
                let detail = match statements.get((n - 1) as usize) {
                    Some(text) => format!("{}\nStatement: {}", finding.detail, excerpt(text)),
                    None => finding.detail,
                };
                (
                    pending[index].0.clone(),
                    n,
                    finding.rule.name().to_string(),
                    level.as_str().to_string(),
                    finding.rule.sqlstate().to_string(),
                    finding.message,
                    detail,
                    finding.hint,
                )
            })
            .collect::<Vec<_>>()
    });
    TableIterator::new(rows)
}
