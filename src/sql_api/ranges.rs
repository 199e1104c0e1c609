//! Alembic's `-r lower:upper` ranges: migrate_history(range),
//! migrate_history_verbose(range), and the range form of migrate_sql
//! (`migrate_sql('ae10:head')`, Alembic's `upgrade ae10:head --sql`).

use std::collections::{HashMap, HashSet};

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::engine::{parse_direction, plan_steps};
use crate::errors::{raise, raise_graph_error, OrRaise};
use crate::revisions::range::{history, script_range, RangeError};
use crate::sql_api::inspect::{history_row, HistoryRow};
use crate::sql_api::scripts::offline_script;
use crate::store::{self, AppliedRow, LoadedGraph};

fn raise_range_error(error: &RangeError) -> ! {
    match error {
        RangeError::Graph(graph) => raise_graph_error(graph),
        RangeError::Syntax { .. } | RangeError::Target(_) => {
            raise(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, error.message(), None, error.hint())
        }
        RangeError::NotAncestor { .. } | RangeError::NeedsState { .. } => {
            raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, error.message(), None, error.hint())
        }
    }
}

fn required_range<'a>(range: Option<&'a str>, function: &str) -> &'a str {
    range.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{function}: range must not be NULL"),
            None,
            Some("Write lower:upper, lower: or :upper; ':' is the whole graph.".into()),
        )
    })
}

/// One revision of a history range: its migrate_history() row, and what the
/// verbose form adds.
struct HistoryEntry {
    row: HistoryRow,
    checksum: String,
    file_name: Option<String>,
}

fn history_entries(range: &str) -> Vec<HistoryEntry> {
    let (loaded, applied): (LoadedGraph, HashMap<String, AppliedRow>) =
        Spi::connect(|client| (store::load_graph(client), store::applied(client)));
    let applied_ids: HashSet<String> = applied.keys().cloned().collect();
    let ids = history(&loaded.graph, &applied_ids, range).unwrap_or_else(|e| raise_range_error(&e));
    let current: HashSet<&str> = loaded.graph.current_heads(&applied_ids).into_iter().collect();
    let mut entries = Vec::with_capacity(ids.len());
    for id in ids {
        pgrx::check_for_interrupts!();
        let (Some(node), Some(definition)) = (loaded.graph.get(&id), loaded.definitions.get(&id)) else { continue };
        let is_head = loaded.graph.children(&id).is_empty();
        let row = history_row(&id, node, is_head, current.contains(id.as_str()), applied.get(&id));
        entries.push(HistoryEntry { row, checksum: definition.checksum.clone(), file_name: definition.source_file.clone() });
    }
    entries
}


/// The revisions of a range (`alembic history -r range`), in upgrade order,
/// with the columns of migrate_history().
#[pg_extern(stable, name = "migrate_history")]
#[search_path(pg_catalog, pg_temp)]
fn migrate_history_range(range: Option<&str>) -> TableIterator<
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
    let range = required_range(range, "migrate_history");
    TableIterator::new(history_entries(range).into_iter().map(|e| e.row))
}


/// `alembic history --verbose -r range`: migrate_history(range) and each
/// revision's Create Date, file name and checksum.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_history_verbose(range: default!(Option<&str>, "':'")) -> TableIterator<
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
        name!(create_date, Option<String>),
        name!(file_name, Option<String>),
        name!(checksum, String),
    ),
> {
    let range = required_range(range, "migrate_history_verbose");
    let entries = history_entries(range);
    let ids: Vec<String> = entries.iter().map(|e| e.row.0.clone()).collect();
    let create_dates: HashMap<String, String> = Spi::connect(|client| {
        client
            .select(
                "SELECT revision_id, create_date FROM migrate.revisions
                  WHERE revision_id OPERATOR(pg_catalog.=) ANY ($1) AND create_date IS NOT NULL",
                None,
                &[ids.into()],
            )
            .or_raise("read migrate.revisions")
            .filter_map(|row| match (row.get::<String>(1), row.get::<String>(2)) {
                (Ok(Some(id)), Ok(Some(date))) => Some((id, date)),
                _ => None,
            })
            .collect()
    });
    TableIterator::new(entries.into_iter().map(move |e| {
        let (revision, parents, message, branch_labels, depends_on, is_head, is_current, applied_at, applied_by) = e.row;
        let create_date = create_dates.get(&revision).cloned();
        (
            revision,
            parents,
            message,
            branch_labels,
            depends_on,
            is_head,
            is_current,
            applied_at,
            applied_by,
            create_date,
            e.file_name,
            e.checksum,
        )
    }))
}

/// The offline script for `from:to` (migrate_sql with a colon in its
/// target), made from the graph alone: the target database is assumed to be
/// at `from`. No applied state is read and no migration lock is taken; the
/// script's own bookkeeping calls check the state where it runs.
pub fn range_script(range: &str, direction: &str) -> String {
    let direction = parse_direction(direction);
    Spi::connect(|client| {
        let loaded = store::load_graph(client);
        let (assumed, target) = script_range(&loaded.graph, range, direction).unwrap_or_else(|e| raise_range_error(&e));
        let steps = plan_steps(&loaded, &assumed, &target, direction);
        offline_script(client, &loaded, &steps, direction, &format!("over the range '{}'", range.trim()))
    })
}
