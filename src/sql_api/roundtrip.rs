//! migrate_test_roundtrip(): upgrade to the heads, downgrade to base, upgrade
//! again, then roll all of it back. The migration test every project should run
//! in CI, in one call.

use pgrx::prelude::*;

use crate::engine::{acquire_lock, run_section, LockScope, RevisionLabel, RunMode};
use crate::revisions::graph::Direction;
use crate::revisions::target::Target;
use crate::store::{self, Method, StepRecord};
use crate::subxact::{self, Keep};

type Rows = Vec<(String, String, String, Option<String>)>;

/// One row per step: phase, revision, status (ok, failed, no downgrade,
/// empty downgrade, error) and what went wrong. Nothing it does is kept.
/// Non-transactional revisions run here without CONCURRENTLY, since everything
/// shares one transaction.
#[pg_extern(volatile)]
fn migrate_test_roundtrip() -> TableIterator<
    'static,
    (
        name!(phase, String),
        name!(revision, String),
        name!(status, String),
        name!(detail, Option<String>),
    ),
> {
    let rows = Spi::connect_mut(|client| {
        acquire_lock(client, LockScope::Transaction);
        let loaded = store::load_graph(client);
        let mut rows: Rows = Vec::new();
        let phases = [
            ("upgrade", Direction::Upgrade, Target::Heads),
            ("downgrade", Direction::Downgrade, Target::Base),
            ("upgrade again", Direction::Upgrade, Target::Heads),
        ];
        // Everything below is undone at the end, whatever happens.
        let _ = subxact::run(Keep::Rollback, || {
            for (phase, direction, target) in phases {
                pgrx::check_for_interrupts!();
                let applied = store::applied_ids(client);
                let plan = match direction {
                    Direction::Upgrade => loaded.graph.upgrade_plan(&applied, &target),
                    Direction::Downgrade => loaded.graph.downgrade_plan(&applied, &target),
                };
                let steps = match plan {
                    Ok(steps) => steps,
                    Err(error) => {
                        rows.push((phase.into(), String::new(), "error".into(), Some(error.message())));
                        return;
                    }
                };
                let ids: Vec<String> = steps.iter().map(|s| s.revision.clone()).collect();
                let bodies = store::bodies(client, &ids);
                for step in &steps {
                    pgrx::check_for_interrupts!();
                    let Some(body) = bodies.get(&step.revision) else { continue };
                    let (sql, first_line) = body.section(direction);
                    let warning = match sql {
                        None => Some("no downgrade"),
                        Some(text) if text.trim().is_empty() && !body.upgrade_sql.trim().is_empty() => {
                            Some("empty downgrade")
                        }
                        _ => None,
                    };
                    let source_file = loaded.definitions.get(&step.revision).and_then(|d| d.source_file.as_deref());
                    let label = RevisionLabel { id: &step.revision, source_file };
                    let outcome = subxact::run(Keep::Commit, || {
                        if let Some(sql) = sql {
                            crate::guard::context::in_revision(&step.revision, &body.allow, || {
                                run_section(client, &label, sql, first_line, RunMode::RoundTrip)
                            });
                        }
                        let record = StepRecord {
                            revision: step.revision.clone(),
                            direction,
                            checksum: None,
                            started_at: store::now_us(),
                            duration_us: None,
                        };
                        store::record_steps(client, Method::Function, &[record]);
                    });
                    match (outcome, warning) {
                        (Err(failure), _) => {
                            // The real five characters, a user's own code included.
                            let detail = match failure.detail {
                                Some(detail) => format!("{} ({}): {detail}", failure.message, failure.sqlstate),
                                None => format!("{} ({})", failure.message, failure.sqlstate),
                            };
                            rows.push((phase.into(), step.revision.clone(), "failed".into(), Some(detail)));
                            return;
                        }
                        (Ok(()), Some(warning)) => rows.push((
                            phase.into(),
                            step.revision.clone(),
                            warning.into(),
                            Some("its changes are not undone by a downgrade".into()),
                        )),
                        (Ok(()), None) => rows.push((phase.into(), step.revision.clone(), "ok".into(), None)),
                    }
                }
            }
        });
        rows
    });
    TableIterator::new(rows)
}
