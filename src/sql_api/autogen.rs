//! migrate_check() and migrate_autogenerate(): the live schema compared with
//! the desired DDL (src/introspect fills the model, src/autogen compares and
//! writes), and the result reported or loaded as revisions.

use pgrx::prelude::*;

use crate::autogen::{self, Diff, PlannedRevision};
use crate::errors::{raise, OrRaise};
use crate::introspect::{catalog, desired};
use crate::sql_api::authoring::{create_revision, RevisionSpec};
use crate::store;

fn quote(name: &str) -> String {
    Spi::get_one_with_args::<String>("SELECT pg_catalog.quote_ident($1)", &[name.into()])
        .or_raise("quote a schema name")
        .unwrap_or_default()
}

fn schema_or_raise(schema: Option<&str>) -> &str {
    schema.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "the schema to compare must not be NULL",
            None,
            Some("Leave it out for 'public', or name the live schema.".into()),
        )
    })
}

/// Both sides read and compared; also what was left out of the desired DDL.
fn compare(desired_ddl: Option<&str>, schema: &str) -> (Diff, Vec<String>) {
    let Some(desired_ddl) = desired_ddl else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "the desired schema must not be NULL",
            None,
            Some("Give the DDL of the schema the application wants: a schema.sql, or pg_dump --schema-only output.".into()),
        )
    };
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $1)",
        &[schema.into()],
    )
    .or_raise("look up the schema")
    .unwrap_or(false);
    if !exists {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
            format!("schema \"{schema}\" does not exist"),
            None,
            Some("Name the live schema to compare as its catalog name (case matters), e.g. 'public'.".into()),
        );
    }
    let quoted = quote(schema);
    let live = catalog::read_namespace(schema, &quoted);
    let wanted = desired::read_desired(desired_ddl, schema);
    (autogen::diff(&live, &wanted.schema, &quoted), wanted.skipped)
}

/// One row per difference between the live `schema` and the desired DDL;
/// none when they match. With `strict`, a difference is an ERROR (SQLSTATE
/// 42P15), for a CI job: psql -c "SELECT migrate_check(...)" fails on drift.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_check(
    desired: Option<&str>,
    schema: default!(Option<&str>, "'public'"),
    strict: default!(Option<bool>, false),
) -> TableIterator<'static, (name!(object, String), name!(difference, String))> {
    let schema = schema_or_raise(schema);
    let strict = strict.unwrap_or(false);
    let (diff, skipped) = compare(desired, schema);
    let rows = diff.rows();
    for line in &skipped {
        pgrx::notice!("{line}");
    }
    if strict && !rows.is_empty() {
        let listed: Vec<String> = rows.iter().take(20).map(|(o, d)| format!("{o}: {d}")).collect();
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_DEFINITION,
            format!("schema \"{schema}\" differs from the desired schema in {} place(s)", rows.len()),
            Some(format!("{}{}", listed.join("\n"), if rows.len() > 20 { "\n..." } else { "" })),
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            Some("SELECT * FROM migrate_autogenerate('<message>', <desired>) writes the revisions that take it there.".into()),
        );
    }
    TableIterator::new(rows)
}

/// Revisions, loaded on top of the head (not applied), that take the live
/// `schema` to the desired one and back, in the safe forms (docs/autogenerate.md).
/// Each is checked by the guard as migrate_review would, and its findings are
/// written into it as "-- Review:" lines and printed.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_autogenerate(
    message: Option<&str>,
    desired: Option<&str>,
    schema: default!(Option<&str>, "'public'"),
) -> TableIterator<'static, (name!(revision, String), name!(transactional, bool), name!(source, String))> {
    let schema = schema_or_raise(schema);
    let message = message.unwrap_or_default();
    if message.trim().is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a revision needs a message",
            None,
            Some("Say in a few words what the change does, as alembic revision --autogenerate -m does.".into()),
        );
    }
    let parent = head_at_current();
    let (diff, skipped) = compare(desired, schema);
    if !diff.refusals.is_empty() {
        let listed: Vec<String> = diff.refusals.iter().map(|r| format!("{}: {}. {}", r.object, r.difference, r.explanation)).collect();
        raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{} difference(s) cannot be written as a revision", diff.refusals.len()),
            Some(format!("{}\nNothing was loaded.", listed.join("\n"))),
            Some("Write that change by hand (migrate_check lists every difference), then run migrate_autogenerate again for the rest.".into()),
        );
    }
    let mut notes: Vec<String> = diff.uncompared.iter().map(|u| format!("{}: {}", u.object, u.difference)).collect();
    notes.extend(skipped);
    for note in &notes {
        pgrx::notice!("{note}");
    }
    if diff.steps.is_empty() {
        pgrx::notice!("schema \"{schema}\" already matches the desired schema: no revision was generated");
        return TableIterator::new(Vec::new());
    }
    let mut planned = autogen::plan_revisions(&diff, &notes);
    review(&mut planned);
    TableIterator::new(write_files(message, parent, &planned))
}

/// The head the new revisions go on; the database must be at it, since the
/// live schema is what the comparison starts from (Alembic refuses the same).
fn head_at_current() -> Option<String> {
    Spi::connect(|client| {
        let loaded = store::load_graph(client);
        let applied = store::applied_ids(client);
        let heads: Vec<String> = loaded.graph.heads().into_iter().map(str::to_string).collect();
        if heads.len() > 1 {
            raise(
                PgSqlErrorCode::ERRCODE_CARDINALITY_VIOLATION,
                format!("the revision graph has {} heads: {}", heads.len(), heads.join(", ")),
                Some("A generated revision goes on top of the one head. Nothing was loaded.".into()),
                Some("Merge them first: SELECT migrate_merge(ARRAY['heads']) (or name them).".into()),
            );
        }
        let current: Vec<String> = loaded.graph.current_heads(&applied).into_iter().map(str::to_string).collect();
        if current != heads {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the database is not at the head revision",
                Some(format!(
                    "Head {}, applied {}. The live schema would not be the one the new revision starts from. Nothing was loaded.",
                    heads.first().map_or("(none)", String::as_str),
                    if current.is_empty() { "(none)".to_string() } else { current.join(", ") }
                )),
                // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
                Some("SELECT * FROM migrate_plan('head') \\gexec  (or migrate_upgrade('head')), then generate again.".into()),
            );
        }
        heads.into_iter().next()
    })
}

/// The guard's findings for the revisions in order, as migrate_review would
/// report them once they are loaded, written into each as "-- Review:" lines.
fn review(planned: &mut [PlannedRevision]) {
    let scripts: Vec<(String, Vec<String>)> = planned.iter().map(|p| (p.upgrade.clone(), p.allow.clone())).collect();
    let findings = crate::guard::triggers::check_scripts(scripts.iter().map(|(sql, allow)| (sql.as_str(), allow.as_slice())));
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); planned.len()];
    for (index, statement, finding, level) in findings {
        let line = format!(
            "guard, statement {statement}: {} [{}, {}] {}",
            level.as_str(),
            finding.rule.name(),
            finding.rule.sqlstate(),
            finding.message
        );
        pgrx::notice!("revision {} of {}: {line}", index + 1, planned.len());
        lines[index].push(line);
    }
    for (plan, found) in planned.iter_mut().zip(lines) {
        if found.is_empty() {
            continue;
        }
        let mut head: String = found.iter().map(|l| format!("-- Review: {l}\n")).collect();
        head.push_str(&plan.upgrade);
        plan.upgrade = head;
    }
}

/// Each planned revision created and loaded on top of the one before
/// (the first on the head), through the authoring path migrate_revision uses.
fn write_files(message: &str, parent: Option<String>, planned: &[PlannedRevision]) -> Vec<(String, bool, String)> {
    let message: String = message.trim().chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect();
    let mut head = parent.unwrap_or_else(|| "base".to_string());
    let mut out = Vec::with_capacity(planned.len());
    for (index, plan) in planned.iter().enumerate() {
        pgrx::check_for_interrupts!();
        let title = if planned.len() > 1 { format!("{message} ({}/{}: {})", index + 1, planned.len(), plan.title) } else { message.clone() };
        let spec = RevisionSpec {
            message: title,
            upgrade: plan.upgrade.clone(),
            downgrade: Some(plan.downgrade.clone()),
            head: head.clone(),
            transactional: plan.transactional,
            allow: plan.allow.clone(),
            ..RevisionSpec::default()
        };
        let created = create_revision(&spec);
        head = created.revision.clone();
        out.push((created.revision, plan.transactional, created.source));
    }
    out
}
