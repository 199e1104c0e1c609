//! Drift from psql: migrate_drift() lists the DDL run outside any revision,
//! migrate_drift_absorb() marks entries absorbed by hand, with a reason (an
//! event), and migrate_revision_from_drift() turns the unabsorbed ones into a
//! revision. migrate_verify() reports what is left (inspect.rs).

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::errors::{raise, OrRaise};
use crate::store;

/// One unabsorbed drift row, as migrate_verify and migrate_revision_from_drift read it.
pub struct Unabsorbed {
    pub drift_id: i64,
    pub occurred_at: TimestampWithTimeZone,
    /// "2026-12-02 03:12:45 UTC", for a revision's comments.
    pub occurred_at_utc: String,
    pub performed_by: String,
    pub session_role: String,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub command_tag: String,
    pub object_identity: Option<String>,
    pub statement: Option<String>,
    pub unrecorded_before: i32,
}

impl Unabsorbed {
    /// "alice (session bob, psql, 10.0.0.7)": who ran it and from where.
    pub fn who(&self) -> String {
        let mut parts = Vec::new();
        if self.session_role != self.performed_by {
            parts.push(format!("session {}", self.session_role));
        }
        parts.extend(self.application_name.clone());
        parts.push(self.client_addr.clone().unwrap_or_else(|| "local".into()));
        format!("{} ({})", self.performed_by, parts.join(", "))
    }

    /// "ALTER TABLE public.users": the command and its object.
    pub fn what(&self) -> String {
        match &self.object_identity {
            Some(object) => format!("{} {object}", self.command_tag),
            None => self.command_tag.clone(),
        }
    }
}

/// The unabsorbed drift, in the order it happened.
pub fn unabsorbed(client: &pgrx::spi::SpiClient<'_>) -> Vec<Unabsorbed> {
    client
        .select(
            "SELECT drift_id, occurred_at, performed_by, session_role, application_name,
                    pg_catalog.host(client_addr), command_tag, object_identity, statement,
                    unrecorded_before,
                    pg_catalog.to_char(pg_catalog.timezone('UTC', occurred_at), 'YYYY-MM-DD HH24:MI:SS') OPERATOR(pg_catalog.||) ' UTC'
               FROM migrate.drift WHERE absorbed_at IS NULL ORDER BY drift_id",
            None,
            &[],
        )
        .map(|rows| {
            rows.map(|row| {
                pgrx::check_for_interrupts!();
                Unabsorbed {
                    drift_id: row.get(1).ok().flatten().unwrap_or_default(),
                    occurred_at: row.get(2).ok().flatten().unwrap_or_else(|| TimestampWithTimeZone::try_from(0i64).unwrap()),
                    performed_by: row.get(3).ok().flatten().unwrap_or_default(),
                    session_role: row.get(4).ok().flatten().unwrap_or_default(),
                    application_name: row.get(5).ok().flatten(),
                    client_addr: row.get(6).ok().flatten(),
                    command_tag: row.get(7).ok().flatten().unwrap_or_default(),
                    object_identity: row.get(8).ok().flatten(),
                    statement: row.get(9).ok().flatten(),
                    unrecorded_before: row.get(10).ok().flatten().unwrap_or_default(),
                    occurred_at_utc: row.get(11).ok().flatten().unwrap_or_default(),
                }
            })
            .collect::<Vec<_>>()
        })
        .or_raise("read migrate.drift")
}

/// Only roles that may change pg_migrate's state absorb drift.
pub fn require_absorb_privilege(client: &pgrx::spi::SpiClient<'_>, what: &str) {
    let may: bool = client
        .select(
            "SELECT pg_catalog.has_table_privilege('migrate.drift', 'UPDATE')
                AND pg_catalog.has_table_privilege('migrate.events', 'INSERT')",
            None,
            &[],
        )
        .and_then(|rows| rows.first().get_one::<bool>())
        .or_raise("check the privilege to absorb drift")
        .unwrap_or(false);
    if !may {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for {what}"),
            Some("Absorbing drift needs UPDATE on migrate.drift and INSERT on migrate.events.".into()),
            Some("Run it as the extension's owner, or have the owner grant the privileges (see docs/functions.md, Privileges).".into()),
        )
    }
}

/// Mark drift entries absorbed by hand: the change is known and wanted (or
/// undone), and no revision needs to carry it. Returns how many were marked.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_drift_absorb(drift_ids: Option<Vec<Option<i64>>>, reason: Option<&str>) -> i64 {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "migrate_drift_absorb: a reason is required",
            Some("The reason is kept with the entries and in the audit log (migrate.events).".into()),
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            Some("SELECT migrate_drift_absorb(ARRAY[12, 13], 'hotfix, reverted by hand');".into()),
        )
    });
    let ids: Vec<i64> = drift_ids.unwrap_or_default().into_iter().flatten().collect();
    if ids.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "migrate_drift_absorb: no drift_id given",
            None,
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            Some("SELECT drift_id, command_tag, object_identity FROM migrate_drift(); lists the entries.".into()),
        )
    }
    Spi::connect_mut(|client| {
        require_absorb_privilege(client, "migrate_drift_absorb");
        let marked = absorb(client, &ids, None, Some(reason), "migrate_drift_absorb");
        store::log_event(client, "absorb", None, None, Some(format!("drift {} absorbed by hand: {reason}", id_list(&ids))));
        marked
    })
}

/// "3, 4, 7"
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// Mark `ids` absorbed (into `revision`, or by hand with `reason`). Every id
/// must exist and be unabsorbed: otherwise nothing is marked.
pub fn absorb(client: &mut pgrx::spi::SpiClient<'_>, ids: &[i64], revision: Option<&str>, reason: Option<&str>, what: &str) -> i64 {
    let unknown: Vec<i64> = client
        .select(
            "SELECT i FROM pg_catalog.unnest($1::bigint[]) i
              WHERE NOT EXISTS (SELECT FROM migrate.drift d
                                 WHERE d.drift_id OPERATOR(pg_catalog.=) i AND d.absorbed_at IS NULL)
              ORDER BY i",
            None,
            &[ids.to_vec().into()],
        )
        .map(|rows| rows.filter_map(|row| row.get::<i64>(1).ok().flatten()).collect())
        .or_raise("look up drift entries");
    if !unknown.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("{what}: no unabsorbed drift entry {}", id_list(&unknown)),
            Some("Each entry is absorbed once; these do not exist or are absorbed already. Nothing was marked.".into()),
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            Some("SELECT drift_id, command_tag, object_identity FROM migrate_drift(); lists the unabsorbed entries.".into()),
        )
    }
    client
        .update(
            "UPDATE migrate.drift
                SET absorbed_at = pg_catalog.clock_timestamp(), absorbed_by = current_user,
                    absorbed_into = $2, absorbed_reason = $3
              WHERE drift_id OPERATOR(pg_catalog.=) ANY ($1::bigint[]) AND absorbed_at IS NULL",
            None,
            &[ids.to_vec().into(), revision.map(str::to_string).into(), reason.map(str::to_string).into()],
        )
        .map(|table| table.len() as i64)
        .or_raise("mark drift absorbed")
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION migrate_drift(include_absorbed boolean DEFAULT false) RETURNS SETOF migrate.drift
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM migrate.drift d
     WHERE include_absorbed OR d.absorbed_at IS NULL
     ORDER BY d.drift_id
$$;
"#,
    name = "migrate_drift",
    requires = ["schema"],
);
