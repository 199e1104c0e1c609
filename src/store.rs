//! Reads and writes of pg_migrate's own tables in schema `migrate`. Every name is
//! schema-qualified, operators too (OPERATOR(pg_catalog.=)): some callers run with the
//! user's search_path, and public may hold look-alikes (scripts/lint-sql.py checks).

use std::collections::{HashMap, HashSet};

use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiHeapTupleData};

use crate::errors::{raise_graph_error, OrRaise};
use crate::revisions::graph::{Direction, RevisionGraph, RevisionNode};
use crate::revisions::parser::MigrationFile;

/// A revision's metadata: what the graph needs, without the SQL text.
#[derive(Debug, Clone)]
pub struct Definition {
    pub node: RevisionNode,
    pub checksum: String,
    pub source_file: Option<String>,
}

/// The SQL of one revision, fetched only for the revisions a command runs.
#[derive(Debug, Clone)]
pub struct Body {
    /// `-- Allow:` header lines, applied by the guard while the revision runs.
    pub allow: Vec<String>,
    pub upgrade_sql: String,
    pub downgrade_sql: Option<String>,
    pub upgrade_line: usize,
    pub downgrade_line: Option<usize>,
}

impl Body {
    pub fn section(&self, direction: Direction) -> (Option<&str>, usize) {
        match direction {
            Direction::Upgrade => (Some(&self.upgrade_sql), self.upgrade_line),
            Direction::Downgrade => {
                (self.downgrade_sql.as_deref(), self.downgrade_line.unwrap_or(1))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppliedRow {
    pub checksum: Option<String>,
    pub applied_at: TimestampWithTimeZone,
    pub applied_by: String,
    pub duration: Option<Interval>,
    pub method: String,
}

/// The definitions of `ids` only (those that exist), read by key.
pub fn definitions_of(client: &SpiClient<'_>, ids: &[String]) -> Vec<Definition> {
    client
        .select(
            "SELECT revision_id, message, down_revisions, branch_labels, depends_on,
                    transactional, checksum, source_file
               FROM migrate.revisions WHERE revision_id OPERATOR(pg_catalog.=) ANY ($1)",
            None,
            &[ids.to_vec().into()],
        )
        .or_raise("read migrate.revisions")
        .map(|row| read_definition(&row))
        .collect()
}

pub fn definitions(client: &SpiClient<'_>) -> Vec<Definition> {
    let rows = client
        .select(
            "SELECT revision_id, message, down_revisions, branch_labels, depends_on,
                    transactional, checksum, source_file
               FROM migrate.revisions",
            None,
            &[],
        )
        .or_raise("read migrate.revisions");
    let mut result = Vec::with_capacity(rows.len());
    for row in rows {
        result.push(read_definition(&row));
    }
    result
}

/// What a plan step checks about its own revision, read by key in one query:
/// the cost of a step does not grow with the number of loaded revisions.
pub struct StepState {
    pub definition: Definition,
    pub applied: bool,
    /// The first parent or dependency (in that order) that is not applied.
    pub missing_prerequisite: Option<String>,
    /// An applied revision that has this one as parent or dependency (asked for downgrades only).
    pub applied_child: Option<String>,
}

pub fn step_state(client: &SpiClient<'_>, revision: &str, direction: Direction) -> Option<StepState> {
    let rows = client
        .select(
            "SELECT r.revision_id, r.message, r.down_revisions, r.branch_labels, r.depends_on,
                    r.transactional, r.checksum, r.source_file,
                    EXISTS (SELECT FROM migrate.applied a
                             WHERE a.revision_id OPERATOR(pg_catalog.=) r.revision_id),
                    (SELECT u.p FROM pg_catalog.unnest(pg_catalog.array_cat(r.down_revisions, r.depends_on))
                                     WITH ORDINALITY AS u(p, o)
                      WHERE NOT EXISTS (SELECT FROM migrate.applied a
                                         WHERE a.revision_id OPERATOR(pg_catalog.=) u.p)
                      ORDER BY u.o LIMIT 1),
                    CASE WHEN $2 THEN
                        (SELECT c.revision_id FROM migrate.revisions c
                           JOIN migrate.applied a ON a.revision_id OPERATOR(pg_catalog.=) c.revision_id
                          WHERE pg_catalog.array_cat(c.down_revisions, c.depends_on)
                                    OPERATOR(pg_catalog.@>) ARRAY[r.revision_id]
                          LIMIT 1)
                    END
               FROM migrate.revisions r
              WHERE r.revision_id OPERATOR(pg_catalog.=) $1",
            None,
            &[revision.to_string().into(), (direction == Direction::Downgrade).into()],
        )
        .or_raise("read a revision");
    let row = rows.into_iter().next()?;
    Some(StepState {
        definition: read_definition(&row),
        applied: row.get(9).or_raise("read applied").unwrap_or(false),
        missing_prerequisite: row.get(10).or_raise("read a prerequisite"),
        applied_child: row.get(11).or_raise("read a dependent revision"),
    })
}

/// Columns 1 to 8: revision_id, message, down_revisions, branch_labels,
/// depends_on, transactional, checksum, source_file.
fn read_definition(row: &SpiHeapTupleData<'_>) -> Definition {
    Definition {
        node: RevisionNode {
            id: row.get(1).or_raise("read a revision id").unwrap_or_default(),
            message: row.get(2).or_raise("read a message").unwrap_or_default(),
            parents: row.get(3).or_raise("read parents").unwrap_or_default(),
            branch_labels: row.get(4).or_raise("read labels").unwrap_or_default(),
            depends_on: row.get(5).or_raise("read dependencies").unwrap_or_default(),
            transactional: row.get(6).or_raise("read transactional").unwrap_or(true),
        },
        checksum: row.get(7).or_raise("read a checksum").unwrap_or_default(),
        source_file: row.get(8).or_raise("read a file name"),
    }
}

/// The loaded definitions as a graph, indexed by id.
pub struct LoadedGraph {
    pub graph: RevisionGraph,
    pub definitions: HashMap<String, Definition>,
}

pub fn load_graph(client: &SpiClient<'_>) -> LoadedGraph {
    let definitions = definitions(client);
    let nodes = definitions.iter().map(|d| d.node.clone()).collect();
    let graph = RevisionGraph::new(nodes).unwrap_or_else(|e| raise_graph_error(&e));
    let definitions = definitions.into_iter().map(|d| (d.node.id.clone(), d)).collect();
    LoadedGraph { graph, definitions }
}

pub fn bodies(client: &SpiClient<'_>, ids: &[String]) -> HashMap<String, Body> {
    let rows = client
        .select(
            "SELECT revision_id, upgrade_sql, downgrade_sql, upgrade_line, downgrade_line, allow
               FROM migrate.revisions WHERE revision_id OPERATOR(pg_catalog.=) ANY($1)",
            None,
            &[ids.to_vec().into()],
        )
        .or_raise("read revision SQL");
    let mut result = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.get(1).or_raise("read a revision id").unwrap_or_default();
        let line = |value: Option<i32>| value.and_then(|v| usize::try_from(v).ok());
        result.insert(
            id,
            Body {
                upgrade_sql: row.get(2).or_raise("read upgrade SQL").unwrap_or_default(),
                downgrade_sql: row.get(3).or_raise("read downgrade SQL"),
                upgrade_line: line(row.get(4).or_raise("read a line")).unwrap_or(1),
                downgrade_line: line(row.get(5).or_raise("read a line")),
                allow: row.get(6).or_raise("read allow").unwrap_or_default(),
            },
        );
    }
    result
}

pub fn applied(client: &SpiClient<'_>) -> HashMap<String, AppliedRow> {
    let rows = client
        .select(
            "SELECT revision_id, checksum, applied_at, applied_by, duration, method FROM migrate.applied",
            None,
            &[],
        )
        .or_raise("read migrate.applied");
    let mut result = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.get(1).or_raise("read a revision id").unwrap_or_default();
        let Some(applied_at) = row.get(3).or_raise("read applied_at") else { continue };
        result.insert(
            id,
            AppliedRow {
                checksum: row.get(2).or_raise("read a checksum"),
                applied_at,
                applied_by: row.get(4).or_raise("read applied_by").unwrap_or_default(),
                duration: row.get(5).or_raise("read a duration"),
                method: row.get(6).or_raise("read a method").unwrap_or_default(),
            },
        );
    }
    result
}

/// The applied rows of `ids` only, read by key.
pub fn applied_of(client: &SpiClient<'_>, ids: &[String]) -> HashMap<String, Option<String>> {
    client
        .select(
            "SELECT revision_id, checksum FROM migrate.applied
              WHERE revision_id OPERATOR(pg_catalog.=) ANY ($1)",
            None,
            &[ids.to_vec().into()],
        )
        .or_raise("read migrate.applied")
        .filter_map(|row| {
            let id = row.get::<String>(1).ok().flatten()?;
            Some((id, row.get::<String>(2).ok().flatten()))
        })
        .collect()
}

/// One applied head, as migrate.applied_heads keeps them.
pub struct CurrentHead {
    pub revision: String,
    /// None when no definition of the applied revision is loaded.
    pub message: Option<String>,
    pub applied_at: Option<TimestampWithTimeZone>,
    pub applied_by: Option<String>,
}

/// The applied heads: cost proportional to their number, not to the graph.
pub fn current_heads(client: &SpiClient<'_>) -> Vec<CurrentHead> {
    client
        .select(
            "SELECT h.revision_id, r.message, a.applied_at, a.applied_by
               FROM migrate.applied_heads h
               JOIN migrate.applied a ON a.revision_id OPERATOR(pg_catalog.=) h.revision_id
               LEFT JOIN migrate.revisions r ON r.revision_id OPERATOR(pg_catalog.=) h.revision_id",
            None,
            &[],
        )
        .or_raise("read migrate.applied_heads")
        .map(|row| CurrentHead {
            revision: row.get(1).or_raise("read a revision id").unwrap_or_default(),
            message: row.get(2).or_raise("read a message"),
            applied_at: row.get(3).or_raise("read applied_at"),
            applied_by: row.get(4).or_raise("read applied_by"),
        })
        .collect()
}

/// Whether a revision outside `ids` names one of `ids` as parent or dependency.
pub fn named_from_outside(client: &SpiClient<'_>, ids: &[String]) -> bool {
    client
        .select(
            "SELECT EXISTS (SELECT FROM migrate.revisions c
                             WHERE pg_catalog.array_cat(c.down_revisions, c.depends_on)
                                       OPERATOR(pg_catalog.&&) $1::pg_catalog.text[]
                               AND c.revision_id OPERATOR(pg_catalog.<>) ALL ($1))",
            None,
            &[ids.to_vec().into()],
        )
        .and_then(|rows| rows.first().get_one::<bool>())
        .or_raise("look up revisions that name a revision")
        .unwrap_or(true)
}

/// Whether a branch label or id of the batch clashes with a revision outside it:
/// a label that is another revision's id or label, or an id that is another's label.
pub fn label_clash_outside(client: &SpiClient<'_>, ids: &[String], labels: &[String]) -> bool {
    if labels.is_empty() && ids.is_empty() {
        return false;
    }
    client
        .select(
            // Two lookups, one through each index (an OR of them would scan the table).
            "SELECT EXISTS (SELECT FROM migrate.revisions o
                             WHERE o.revision_id OPERATOR(pg_catalog.=) ANY ($2)
                               AND o.revision_id OPERATOR(pg_catalog.<>) ALL ($1))
                 OR EXISTS (SELECT FROM migrate.revisions o
                             WHERE o.branch_labels OPERATOR(pg_catalog.&&)
                                       pg_catalog.array_cat($1::pg_catalog.text[], $2::pg_catalog.text[])
                               AND o.revision_id OPERATOR(pg_catalog.<>) ALL ($1))",
            None,
            &[ids.to_vec().into(), labels.to_vec().into()],
        )
        .and_then(|rows| rows.first().get_one::<bool>())
        .or_raise("look up branch labels")
        .unwrap_or(true)
}

/// Whether walking parents and dependencies up from `references` through the
/// loaded revisions (other than `id` itself) comes back to `id`. Reads only the
/// ancestors of `references`.
pub fn ancestors_reach(client: &SpiClient<'_>, references: &[String], id: &str) -> bool {
    client
        .select(
            "WITH RECURSIVE up(id) AS (
                 SELECT pg_catalog.unnest($1::pg_catalog.text[])
                 UNION
                 SELECT u.p FROM up
                   JOIN migrate.revisions r ON r.revision_id OPERATOR(pg_catalog.=) up.id
                  CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.array_cat(r.down_revisions, r.depends_on)) AS u(p)
                  WHERE r.revision_id OPERATOR(pg_catalog.<>) $2)
             SELECT EXISTS (SELECT FROM up WHERE up.id OPERATOR(pg_catalog.=) $2)",
            None,
            &[references.to_vec().into(), id.to_string().into()],
        )
        .and_then(|rows| rows.first().get_one::<bool>())
        .or_raise("walk the ancestors of a revision")
        .unwrap_or(true)
}

pub fn applied_ids(client: &SpiClient<'_>) -> HashSet<String> {
    client
        .select("SELECT revision_id FROM migrate.applied", None, &[])
        .or_raise("read migrate.applied")
        .filter_map(|row| row.get::<String>(1).ok().flatten())
        .collect()
}

/// Insert or replace one definition.
pub fn save_definition(
    client: &mut SpiClient<'_>,
    file: &MigrationFile,
    checksum: &str,
    source: &str,
    source_file: Option<&str>,
) {
    client
        .update(
            "INSERT INTO migrate.revisions AS r
                 (revision_id, message, down_revisions, branch_labels, depends_on, transactional,
                  create_date, upgrade_sql, downgrade_sql, upgrade_line, downgrade_line,
                  checksum, source_file, source, allow)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (revision_id) DO UPDATE SET
                 message = EXCLUDED.message, down_revisions = EXCLUDED.down_revisions,
                 branch_labels = EXCLUDED.branch_labels, depends_on = EXCLUDED.depends_on,
                 transactional = EXCLUDED.transactional, create_date = EXCLUDED.create_date,
                 upgrade_sql = EXCLUDED.upgrade_sql, downgrade_sql = EXCLUDED.downgrade_sql,
                 upgrade_line = EXCLUDED.upgrade_line, downgrade_line = EXCLUDED.downgrade_line,
                 checksum = EXCLUDED.checksum, source_file = EXCLUDED.source_file,
                 source = EXCLUDED.source, allow = EXCLUDED.allow, loaded_at = pg_catalog.now(), loaded_by = current_user",
            None,
            &[
                file.revision_id.clone().into(),
                file.message.clone().into(),
                file.down_revisions.clone().into(),
                file.branch_labels.clone().into(),
                file.depends_on.clone().into(),
                file.transactional.into(),
                file.create_date.clone().into(),
                file.upgrade_sql.clone().into(),
                file.downgrade_sql.clone().into(),
                to_i32(file.upgrade_line).into(),
                file.downgrade_line.map(to_i32).into(),
                checksum.to_string().into(),
                source_file.map(str::to_string).into(),
                source.to_string().into(),
                file.allow.clone().into(),
            ],
        )
        .or_raise("save a revision");
}

fn to_i32(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// How a step was carried out, as recorded in migrate.applied.method and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Function,
    Plan,
    Sql,
    Stamp,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Function => "function",
            Method::Plan => "plan",
            Method::Sql => "sql",
            Method::Stamp => "stamp",
        }
    }
}

/// One finished step, ready for the bookkeeping tables.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub revision: String,
    pub direction: Direction,
    pub checksum: Option<String>,
    /// Microseconds since the PostgreSQL epoch, as GetCurrentTimestamp() gives it.
    pub started_at: i64,
    /// None when stamped (no SQL ran).
    pub duration_us: Option<i64>,
}

/// Record a batch of steps: applied rows and events, in two statements whatever
/// the batch size, so bookkeeping stays negligible next to the DDL.
pub fn record_steps(client: &mut SpiClient<'_>, method: Method, steps: &[StepRecord]) {
    if steps.is_empty() {
        return;
    }
    let column = |f: &dyn Fn(&StepRecord) -> Option<String>| -> Vec<Option<String>> {
        steps.iter().map(f).collect()
    };
    let ids = column(&|s| Some(s.revision.clone()));
    let directions = column(&|s| Some(s.direction.as_str().to_string()));
    let checksums = column(&|s| s.checksum.clone());
    let started: Vec<i64> = steps.iter().map(|s| s.started_at).collect();
    let durations: Vec<Option<i64>> = steps.iter().map(|s| s.duration_us).collect();
    let stamped = method == Method::Stamp;

    client
        .update(
            "WITH step AS (
                 SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),
                                          pg_catalog.unnest($2::pg_catalog.text[]),
                                          pg_catalog.unnest($3::pg_catalog.text[]),
                                          pg_catalog.unnest($4::bigint[]),
                                          pg_catalog.unnest($5::bigint[]))
                          AS s(revision_id, direction, checksum, started_us, duration_us)),
             removed AS (
                 DELETE FROM migrate.applied a USING step
                  WHERE step.direction OPERATOR(pg_catalog.=) 'downgrade'
                    AND a.revision_id OPERATOR(pg_catalog.=) step.revision_id),
             added AS (
                 INSERT INTO migrate.applied (revision_id, checksum, applied_at, applied_by, duration, method)
                 SELECT revision_id, checksum,
                        pg_catalog.timestamptz '2000-01-01 00:00:00+00'
                            OPERATOR(pg_catalog.+) (started_us OPERATOR(pg_catalog.*) interval '1 microsecond'),
                        current_user, duration_us OPERATOR(pg_catalog.*) interval '1 microsecond', $6
                   FROM step WHERE direction OPERATOR(pg_catalog.=) 'upgrade')
             INSERT INTO migrate.events (occurred_at, action, revision_id, checksum, duration, method)
             SELECT pg_catalog.timestamptz '2000-01-01 00:00:00+00'
                        OPERATOR(pg_catalog.+) (started_us OPERATOR(pg_catalog.*) interval '1 microsecond'),
                    CASE WHEN NOT $7 THEN direction
                         WHEN direction OPERATOR(pg_catalog.=) 'upgrade' THEN 'stamp' ELSE 'unstamp' END,
                    revision_id, checksum, duration_us OPERATOR(pg_catalog.*) interval '1 microsecond', $6
               FROM step",
            None,
            &[
                ids.into(),
                directions.into(),
                checksums.into(),
                started.into(),
                durations.into(),
                method.as_str().into(),
                stamped.into(),
            ],
        )
        .or_raise("record applied revisions");
}

pub fn log_event(
    client: &mut SpiClient<'_>,
    action: &str,
    revision: Option<&str>,
    checksum: Option<&str>,
    detail: Option<String>,
) {
    client
        .update(
            "INSERT INTO migrate.events (action, revision_id, checksum, detail) VALUES ($1, $2, $3, $4)",
            None,
            &[
                action.to_string().into(),
                revision.map(str::to_string).into(),
                checksum.map(str::to_string).into(),
                detail.into(),
            ],
        )
        .or_raise("write migrate.events");
}

pub fn now_us() -> i64 {
    // SAFETY: a plain read of the system clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}
