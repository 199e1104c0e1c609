//! migrate_revision_from_drift(): the unabsorbed drift, in the order it
//! happened, as a new revision on top of the head. Here, where the change is
//! already made, the revision is recorded as applied (a stamp: no SQL runs)
//! and the drift rows are absorbed by it; elsewhere it applies as any other,
//! and its downgrade (the mechanical inverse, when there is one) undoes it.

use pgrx::prelude::*;

use super::authoring::{create_revision, RevisionSpec};
use super::drift::{absorb, require_absorb_privilege, unabsorbed, Unabsorbed};
use crate::drift::changes::{changes, TypeChange};
use crate::drift::revision::{sections, Entry};
use crate::engine::require_recording_privilege;
use crate::errors::{raise, OrRaise};
use crate::revisions::graph::Direction;
use crate::server_sql::{self, StatementKind};
use crate::store::{self, Method, StepRecord};

/// The entries, or a refusal when one cannot be reproduced from its text.
fn entries(drift: &[Unabsorbed], client: &pgrx::spi::SpiClient<'_>) -> Vec<Entry> {
    let unknown: Vec<String> = drift.iter().filter(|d| d.statement.is_none()).map(|d| format!("{} ({})", d.drift_id, d.what())).collect();
    if !unknown.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "migrate_revision_from_drift: some drift has no statement text of its own",
            Some(format!(
                "Drift {} ran inside a function or DO block (migrate_drift() shows the query in in_query), so no statement reproduces it alone. Nothing was created.",
                unknown.join(", ")
            )),
            Some("Write a revision for it with migrate_revision(), then mark those entries with migrate_drift_absorb(ARRAY[...], '<reason>'), and call this again.".into()),
        )
    }
    drift
        .iter()
        .map(|d| {
            pgrx::check_for_interrupts!();
            let types: Vec<TypeChange> = type_changes(client, d.drift_id);
            let statement = d.statement.clone().unwrap_or_default();
            Entry {
                drift_id: d.drift_id,
                command_tag: d.command_tag.clone(),
                object_identity: d.object_identity.clone(),
                performed_by: d.who(),
                occurred_at: d.occurred_at_utc.clone(),
                changes: changes(&statement, &d.what(), &types),
                statement,
            }
        })
        .collect()
}

fn type_changes(client: &pgrx::spi::SpiClient<'_>, drift_id: i64) -> Vec<TypeChange> {
    let json: Option<String> = client
        .select(
            "SELECT type_changes::pg_catalog.text FROM migrate.drift WHERE drift_id OPERATOR(pg_catalog.=) $1",
            None,
            &[drift_id.into()],
        )
        .and_then(|rows| rows.first().get_one::<String>())
        .or_raise("read migrate.drift.type_changes");
    json.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
}

/// A statement that cannot run in a transaction block (CREATE INDEX CONCURRENTLY)
/// makes the revision non-transactional, as a hand-written one would be.
fn transactional(entries: &[Entry]) -> bool {
    !entries.iter().any(|entry| {
        server_sql::split_statements(&entry.statement)
            .map(|statements| statements.iter().any(|s| matches!(s.kind, StatementKind::TopLevelOnly { .. })))
            .unwrap_or(false)
    })
}

/// Turn the unabsorbed drift into a revision on top of `head`, record it as
/// applied here and absorb the drift into it. Returns the file to save.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_revision_from_drift(
    message: Option<&str>,
    head: default!(Option<&str>, "'head'"),
    branch_label: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(revision, String), name!(file_name, String), name!(source, String))> {
    let message = message.map(str::trim).filter(|m| !m.is_empty()).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "migrate_revision_from_drift: message must not be NULL or empty",
            None,
            Some("Say in a few words what the drift did, e.g. 'hotfix: index on orders.customer_id'.".into()),
        )
    });
    let head = head.unwrap_or("head");
    let (drift, entries) = Spi::connect(|client| {
        require_recording_privilege(client, "migrate_revision_from_drift");
        require_absorb_privilege(client, "migrate_revision_from_drift");
        let drift = unabsorbed(client);
        let entries = entries(&drift, client);
        (drift, entries)
    });
    if drift.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "migrate_revision_from_drift: there is no unabsorbed drift",
            Some("Every DDL command run outside a revision is absorbed already (migrate_drift(true) lists them all).".into()),
            Some("Use migrate_revision() to write a revision by hand.".into()),
        )
    }
    let gaps: i64 = drift.iter().map(|d| i64::from(d.unrecorded_before)).sum();
    if gaps > 0 {
        pgrx::warning!(
            "{gaps} DDL command(s) ran but could not be recorded as drift: the revision may not reproduce everything (migrate_verify() says where)"
        );
    }
    let made = sections(&entries);
    let spec = RevisionSpec {
        message: message.to_string(),
        upgrade: made.upgrade,
        downgrade: made.downgrade,
        head: head.to_string(),
        branch_labels: branch_label.map(|label| vec![label.trim().to_string()]).unwrap_or_default(),
        transactional: transactional(&entries),
        ..RevisionSpec::default()
    };
    let new = create_revision(&spec);
    let ids: Vec<i64> = drift.iter().map(|d| d.drift_id).collect();
    Spi::connect_mut(|client| {
        require_parents_applied(client, &new.revision);
        let checksum: Option<String> = client
            .select(
                "SELECT checksum FROM migrate.revisions WHERE revision_id OPERATOR(pg_catalog.=) $1",
                None,
                &[new.revision.clone().into()],
            )
            .and_then(|rows| rows.first().get_one::<String>())
            .or_raise("read the new revision's checksum");
        let step = StepRecord {
            revision: new.revision.clone(),
            direction: Direction::Upgrade,
            checksum,
            started_at: store::now_us(),
            duration_us: None,
        };
        store::record_steps(client, Method::Stamp, &[step]);
        absorb(client, &ids, Some(&new.revision), None, "migrate_revision_from_drift");
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        store::log_event(client, "absorb", Some(&new.revision), None, Some(format!("drift {list} absorbed into {}", new.revision)));
    });
    TableIterator::once((new.revision, new.file_name, new.source))
}

/// The drift happened on top of what is applied here: recording the new
/// revision as applied needs its parents applied too.
fn require_parents_applied(client: &pgrx::spi::SpiClient<'_>, revision: &str) {
    let missing: Vec<String> = client
        .select(
            "SELECT p FROM migrate.revisions r, pg_catalog.unnest(r.down_revisions) p
              WHERE r.revision_id OPERATOR(pg_catalog.=) $1
                AND NOT EXISTS (SELECT FROM migrate.applied a WHERE a.revision_id OPERATOR(pg_catalog.=) p)
              ORDER BY p",
            None,
            &[revision.to_string().into()],
        )
        .map(|rows| rows.filter_map(|row| row.get::<String>(1).ok().flatten()).collect())
        .or_raise("check the new revision's parents");
    if !missing.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("migrate_revision_from_drift: {} not applied in this database", missing.join(", ")),
            Some("The drift is recorded as applied on top of its parent, so the parent must be applied here. Nothing was created.".into()),
            Some("Upgrade to the head first, or name an applied head: migrate_revision_from_drift('<message>', head => '<current revision>').".into()),
        )
    }
}
