//! Reading the graph and the applied state: migrate_current(), migrate_history(),
//! migrate_heads(), migrate_branches(), migrate_show(), migrate_verify().

use std::collections::{HashMap, HashSet};

use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;

use crate::errors::raise_graph_error;
use crate::revisions::graph::RevisionNode;
use crate::store::{self, AppliedRow, LoadedGraph};

fn state() -> (LoadedGraph, HashMap<String, AppliedRow>) {
    Spi::connect(|client| (store::load_graph(client), store::applied(client)))
}

/// Applied revisions that are not in the graph (their file was never loaded here).
fn undefined_applied<'a>(loaded: &LoadedGraph, applied: &'a HashMap<String, AppliedRow>) -> Vec<&'a String> {
    let mut ids: Vec<&String> = applied.keys().filter(|id| loaded.graph.get(id).is_none()).collect();
    ids.sort();
    ids
}

const UNDEFINED: &str = "(no definition loaded)";

/// The applied heads: the revisions the database is "at".
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_current() -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(message, String),
        name!(applied_at, Option<TimestampWithTimeZone>),
        name!(applied_by, Option<String>),
    ),
> {
    // migrate.applied_heads holds exactly these (its triggers keep it): the
    // graph is not read, so the cost is the number of heads.
    let mut heads = Spi::connect(|client| store::current_heads(client));
    // Defined heads by id, then applied revisions with no definition, by id.
    heads.sort_by(|a, b| (a.message.is_none(), &a.revision).cmp(&(b.message.is_none(), &b.revision)));
    let rows: Vec<_> = heads
        .into_iter()
        .map(|head| {
            let message = head.message.unwrap_or_else(|| UNDEFINED.into());
            (head.revision, message, head.applied_at, head.applied_by)
        })
        .collect();
    TableIterator::new(rows)
}

/// The columns of migrate_history(), shared with its range form.
pub(crate) type HistoryRow = (
    String,
    Vec<String>,
    String,
    Vec<String>,
    Vec<String>,
    bool,
    bool,
    Option<TimestampWithTimeZone>,
    Option<String>,
);

/// A loaded revision's migrate_history() row.
pub(crate) fn history_row(
    id: &str,
    node: &RevisionNode,
    is_head: bool,
    is_current: bool,
    applied: Option<&AppliedRow>,
) -> HistoryRow {
    (
        id.to_string(),
        node.parents.clone(),
        node.message.clone(),
        node.branch_labels.clone(),
        node.depends_on.clone(),
        is_head,
        is_current,
        applied.map(|r| r.applied_at),
        applied.map(|r| r.applied_by.clone()),
    )
}

/// The whole graph in upgrade order, one row per revision.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn migrate_history() -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(parents, Vec<String>),
        name!(message, String),
        name!(branch_labels, Vec<String>),
        name!(depends_on, Vec<String>),
        name!(is_head, bool),
        name!(is_current, bool),
        name!(applied_at, Option<TimestampWithTimeZone>),
        name!(applied_by, Option<String>),
    ),
> {
    let (loaded, applied) = state();
    let ids: HashSet<String> = applied.keys().cloned().collect();
    let heads: HashSet<&str> = loaded.graph.heads().into_iter().collect();
    let current: HashSet<&str> = loaded.graph.current_heads(&ids).into_iter().collect();
    let mut rows = Vec::with_capacity(loaded.graph.len() + applied.len());
    for id in loaded.graph.topo_order() {
        pgrx::check_for_interrupts!();
        let Some(node) = loaded.graph.get(id) else { continue };
        rows.push(history_row(id, node, heads.contains(id), current.contains(id), applied.get(id)));
    }
    for id in undefined_applied(&loaded, &applied) {
        let row = &applied[id];
        rows.push((
            id.clone(),
            Vec::new(),
            UNDEFINED.into(),
            Vec::new(),
            Vec::new(),
            false,
            true,
            Some(row.applied_at),
            Some(row.applied_by.clone()),
        ));
    }
    TableIterator::new(rows)
}

/// The heads of the graph, applied or not.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_heads() -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(message, String),
        name!(branch_labels, Vec<String>),
        name!(is_applied, bool),
    ),
> {
    let (loaded, applied) = state();
    let rows: Vec<_> = loaded
        .graph
        .heads()
        .into_iter()
        .filter_map(|id| loaded.graph.get(id))
        .map(|node| {
            (node.id.clone(), node.message.clone(), branch_labels_of(&loaded, &node.id), applied.contains_key(&node.id))
        })
        .collect();
    TableIterator::new(rows)
}

/// The labels a revision belongs to: its own and those of its labelled ancestors.
fn branch_labels_of(loaded: &LoadedGraph, id: &str) -> Vec<String> {
    pgrx::check_for_interrupts!();
    loaded.graph.branch_labels_of(id)
}

/// Branch points: revisions with more than one child.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_branches() -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(message, String),
        name!(children, Vec<String>),
        name!(branch_labels, Vec<String>),
    ),
> {
    let (loaded, _) = state();
    let rows: Vec<_> = loaded
        .graph
        .branch_points()
        .into_iter()
        .filter_map(|id| loaded.graph.get(id))
        .map(|node| {
            let children: Vec<String> = loaded.graph.children(&node.id).into_iter().map(str::to_string).collect();
            let labels: Vec<String> = children
                .iter()
                .filter_map(|child| loaded.graph.get(child))
                .flat_map(|child| child.branch_labels.clone())
                .collect();
            (node.id.clone(), node.message.clone(), children, labels)
        })
        .collect();
    TableIterator::new(rows)
}

/// Every detail of one revision, its SQL included. Best read with \x.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn migrate_show(
    revision: &str,
) -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(message, String),
        name!(parents, Vec<String>),
        name!(children, Vec<String>),
        name!(depends_on, Vec<String>),
        name!(branch_labels, Vec<String>),
        name!(transactional, bool),
        name!(is_head, bool),
        name!(applied, bool),
        name!(applied_at, Option<TimestampWithTimeZone>),
        name!(applied_by, Option<String>),
        name!(duration, Option<Interval>),
        name!(applied_method, Option<String>),
        name!(checksum, String),
        name!(applied_checksum, Option<String>),
        name!(source_file, Option<String>),
        name!(upgrade_sql, String),
        name!(downgrade_sql, Option<String>),
    ),
> {
    let (loaded, applied) = state();
    let id = loaded.graph.resolve_revision(revision).unwrap_or_else(|e| raise_graph_error(&e)).to_string();
    let Some(node) = loaded.graph.get(&id) else { return TableIterator::new(Vec::new()) };
    let definition = &loaded.definitions[&id];
    let body = Spi::connect(|client| store::bodies(client, std::slice::from_ref(&id))).remove(&id);
    let row = applied.get(&id);
    let children = loaded.graph.children(&id).into_iter().map(str::to_string).collect();
    let is_head = loaded.graph.children(&id).is_empty();
    TableIterator::new(vec![(
        id.clone(),
        node.message.clone(),
        node.parents.clone(),
        children,
        node.depends_on.clone(),
        node.branch_labels.clone(),
        node.transactional,
        is_head,
        row.is_some(),
        row.map(|r| r.applied_at),
        row.map(|r| r.applied_by.clone()),
        row.and_then(|r| r.duration),
        row.map(|r| r.method.clone()),
        definition.checksum.clone(),
        row.and_then(|r| r.checksum.clone()),
        definition.source_file.clone(),
        body.as_ref().map(|b| b.upgrade_sql.clone()).unwrap_or_default(),
        body.and_then(|b| b.downgrade_sql),
    )])
}

/// Applied revisions whose definition changed or disappeared, applied
/// revisions whose parents are not applied (hand-edited state), and DDL run
/// outside any revision that nothing absorbed (one row per command, with who
/// ran it and when), including gaps where commands could not be recorded.
/// A new C symbol: the result gained drift_id, performed_by and occurred_at
/// (0.1.0's migrate_verify_wrapper refuses, superseded.rs).
#[pg_extern(stable, name = "migrate_verify")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn verify_with_drift() -> TableIterator<
    'static,
    (
        name!(revision, Option<String>),
        name!(problem, String),
        name!(applied_checksum, Option<String>),
        name!(defined_checksum, Option<String>),
        name!(applied_at, Option<TimestampWithTimeZone>),
        name!(drift_id, Option<i64>),
        name!(performed_by, Option<String>),
        name!(occurred_at, Option<TimestampWithTimeZone>),
    ),
> {
    let (loaded, applied, drift) = Spi::connect(|client| {
        (store::load_graph(client), store::applied(client), super::drift::unabsorbed(client))
    });
    let mut ids: Vec<&String> = applied.keys().collect();
    ids.sort();
    let mut rows = Vec::new();
    let revision_row = |id: &String, problem: String, applied: Option<String>, defined: Option<String>, at| {
        (Some(id.clone()), problem, applied, defined, Some(at), None, None, None)
    };
    for id in ids {
        let row = &applied[id];
        let Some(definition) = loaded.definitions.get(id) else {
            rows.push(revision_row(id, "applied but no definition is loaded".to_string(), row.checksum.clone(), None, row.applied_at));
            continue;
        };
        if row.checksum.as_deref().is_some_and(|sum| sum != definition.checksum) {
            rows.push(revision_row(
                id,
                "upgrade text changed since it was applied".to_string(),
                row.checksum.clone(),
                Some(definition.checksum.clone()),
                row.applied_at,
            ));
        }
        let missing: Vec<&str> = definition
            .node
            .parents
            .iter()
            .chain(&definition.node.depends_on)
            .filter(|parent| !applied.contains_key(*parent))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            rows.push(revision_row(
                id,
                format!("applied, but {} not applied", missing.join(", ")),
                row.checksum.clone(),
                Some(definition.checksum.clone()),
                row.applied_at,
            ));
        }
    }
    for entry in drift {
        pgrx::check_for_interrupts!();
        let drift_row = |problem: String| {
            (None, problem, None, None, None, Some(entry.drift_id), Some(entry.who()), Some(entry.occurred_at))
        };
        if entry.unrecorded_before > 0 {
            rows.push(drift_row(format!(
                "{} DDL command(s) ran but could not be recorded, in the session of drift {}, before it",
                entry.unrecorded_before, entry.drift_id
            )));
        }
        let text = entry.statement.as_deref().map_or_else(
            || "inside a function or DO block".to_string(),
            |statement| crate::engine::excerpt(statement),
        );
        rows.push(drift_row(format!("DDL outside any revision: {} ({text})", entry.what())));
    }
    TableIterator::new(rows)
}
