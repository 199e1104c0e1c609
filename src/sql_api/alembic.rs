//! Taking over a database that Alembic migrated: migrate_adopt_alembic() stamps
//! what its version table says is applied, and can keep that table up to date
//! afterwards (alembic.sql: a trigger on migrate.applied), so a team can go back
//! to Alembic during the move. See docs/from-alembic.md.

use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::spi::{quote_literal, SpiClient};

use crate::engine::{self, acquire_lock, LockScope};
use crate::errors::{raise, raise_graph_error, OrRaise};
use crate::revisions::adopt::{adoption_steps, AdoptError};
use crate::store::{self, Method, StepRecord};

use super::apply::step_rows;

/// The version table's name as regclass prints it (schema-qualified under the
/// pinned path), after checking it has Alembic's version_num column.
fn version_table_name(client: &SpiClient<'_>, table: pg_sys::Oid) -> String {
    let row = client
        .select(
            "SELECT c.oid::pg_catalog.regclass::pg_catalog.text,
                    EXISTS (SELECT FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
                               AND a.attname OPERATOR(pg_catalog.=) 'version_num'
                               AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped)
               FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
            None,
            &[table.into()],
        )
        .and_then(|rows| if rows.is_empty() { Ok((None, None)) } else { rows.first().get_two::<String, bool>() })
        .or_raise("look up the version table");
    match row {
        (Some(name), Some(true)) => name,
        (Some(name), _) => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("{name} has no column version_num: it is not an Alembic version table"),
            Some("Alembic keeps the revisions a database is at in the column version_num of its version table.".into()),
            Some("Name the version table your env.py configures (version_table, version_table_schema): \
                  SELECT * FROM migrate_adopt_alembic('myschema.alembic_version');"
                .into()),
        ),
        _ => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation with oid {} does not exist", u32::from(table)),
            None,
            None,
        ),
    }
}

fn version_heads(client: &SpiClient<'_>, table: &str) -> Vec<String> {
    // `table` is regclass output: quoted and qualified as needed.
    client
        .select(&format!("SELECT version_num::pg_catalog.text FROM {table} ORDER BY 1"), None, &[])
        .or_raise("read the Alembic version table")
        .filter_map(|row| row.get::<String>(1).ok().flatten())
        .collect()
}

fn raise_adopt_error(error: &AdoptError, table: &str) -> ! {
    match error {
        AdoptError::NotLoaded { missing } => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("{table} lists revisions that are not loaded: {}", missing.join(", ")),
            Some("Adopting stamps the revisions the version table names and their ancestors; each must be loaded first. Nothing was stamped.".into()),
            Some("Convert the Alembic history (scripts/migrate-from-alembic -c alembic.ini migrations/) and load it \
                  (migrate_load_dir() or scripts/migrate-load-local), then adopt again."
                .into()),
        ),
        AdoptError::Diverged { extra } => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("pg_migrate records revisions as applied that {table} does not reach: {}", extra.join(", ")),
            Some("The two tools disagree about this database. Nothing was stamped.".into()),
            Some("If the version table is right, forget pg_migrate's state first: SELECT * FROM migrate_stamp('base', purge => true); then adopt again.".into()),
        ),
        AdoptError::Graph(error) => raise_graph_error(error),
    }
}

/// Stamp what Alembic's version table says is applied; with `keep_in_sync`,
/// pg_migrate keeps that table up to date from now on (without, it stops).
/// Called through migrate_adopt_alembic(version_table regclass, keep_in_sync).
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn adopt_alembic(version_table: Option<pg_sys::Oid>, keep_in_sync: Option<bool>) -> TableIterator<
    'static,
    (
        name!(revision, String),
        name!(direction, String),
        name!(message, String),
        name!(duration, Option<Interval>),
    ),
> {
    let (Some(version_table), Some(keep_in_sync)) = (version_table, keep_in_sync) else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "migrate_adopt_alembic() needs a version table and keep_in_sync, not NULL",
            None,
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            Some("SELECT * FROM migrate_adopt_alembic('alembic_version', keep_in_sync => false);".into()),
        )
    };
    let outcomes = Spi::connect_mut(|client| {
        engine::require_recording_privilege(client, "migrate_adopt_alembic()");
        acquire_lock(client, LockScope::Transaction);
        let table = version_table_name(client, version_table);
        let heads = version_heads(client, &table);
        let loaded = store::load_graph(client);
        let applied = store::applied_ids(client);
        let steps = adoption_steps(&loaded.graph, &applied, &heads)
            .unwrap_or_else(|error| raise_adopt_error(&error, &table));
        let now = store::now_us();
        let records: Vec<StepRecord> = steps
            .iter()
            .map(|step| StepRecord {
                revision: step.revision.clone(),
                direction: step.direction,
                checksum: loaded.definitions.get(&step.revision).map(|d| d.checksum.clone()),
                started_at: now,
                duration_us: None,
            })
            .collect();
        store::record_steps(client, Method::Stamp, &records);
        set_sync(client, &table, keep_in_sync);
        let detail = format!(
            "from {table}: heads {}; {} revisions stamped; keep_in_sync {}",
            if heads.is_empty() { "(none: base)".to_string() } else { heads.join(", ") },
            records.len(),
            if keep_in_sync { "on" } else { "off" }
        );
        store::log_event(client, "adopt", None, None, Some(detail));
        if heads.is_empty() {
            notice!("{table} is empty: the database is at base, nothing to stamp");
        }
        steps
            .into_iter()
            .map(|step| engine::StepOutcome {
                message: loaded.graph.get(&step.revision).map(|n| n.message.clone()).unwrap_or_default(),
                revision: step.revision,
                direction: step.direction,
                duration: None::<Interval>,
            })
            .collect::<Vec<_>>()
    });
    step_rows(outcomes)
}

fn set_sync(client: &mut SpiClient<'_>, table: &str, keep_in_sync: bool) {
    if keep_in_sync {
        let may: bool = client
            .select(
                "SELECT pg_catalog.has_table_privilege($1::pg_catalog.regclass, 'INSERT, DELETE')",
                None,
                &[table.to_string().into()],
            )
            .and_then(|rows| rows.first().get_one())
            .or_raise("check the privileges on the version table")
            .unwrap_or(false);
        if !may {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied to keep {table} in sync: it needs INSERT and DELETE on it"),
                Some("Every later upgrade, downgrade and stamp would rewrite the version table as the role that runs it. Nothing was stamped.".into()),
                Some("Adopt as the role that runs migrations, or grant it INSERT and DELETE on the version table.".into()),
            )
        }
    }
    let listed: bool = client
        .select(
            "SELECT EXISTS (SELECT FROM migrate.alembic_sync WHERE version_table OPERATOR(pg_catalog.=) $1)",
            None,
            &[table.to_string().into()],
        )
        .and_then(|rows| rows.first().get_one())
        .or_raise("read migrate.alembic_sync")
        .unwrap_or(false);
    // Only a change writes: adopting without keep_in_sync needs no privilege on the list.
    let statement = match (keep_in_sync, listed) {
        (true, false) => "INSERT INTO migrate.alembic_sync (version_table) VALUES ($1)",
        (false, true) => "DELETE FROM migrate.alembic_sync WHERE version_table OPERATOR(pg_catalog.=) $1",
        _ => return,
    };
    client.update(statement, None, &[table.to_string().into()]).or_raise("record the version table to keep in sync");
    if keep_in_sync {
        notice!(
            "pg_migrate keeps {table} up to date from now on; stop with SELECT * FROM migrate_adopt_alembic({}, keep_in_sync => false);",
            quote_literal(table)
        );
    }
}

pgrx::extension_sql_file!("alembic.sql", name = "alembic", requires = ["schema", adopt_alembic]);
