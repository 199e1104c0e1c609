-- pg_migrate's state. Everything lives in schema "migrate", readable by everyone,
-- writable by the extension's owner (and whoever the owner grants it to).
CREATE SCHEMA IF NOT EXISTS migrate;
COMMENT ON SCHEMA migrate IS 'pg_migrate: revision definitions, applied state and the audit log';

-- One row per loaded migration file.
CREATE TABLE migrate.revisions (
    revision_id    text PRIMARY KEY,
    message        text NOT NULL DEFAULT '',
    down_revisions text[] NOT NULL DEFAULT '{}',
    branch_labels  text[] NOT NULL DEFAULT '{}',
    depends_on     text[] NOT NULL DEFAULT '{}',
    transactional  boolean NOT NULL DEFAULT true,
    create_date    text,
    upgrade_sql    text NOT NULL,
    downgrade_sql  text,
    upgrade_line   integer NOT NULL DEFAULT 1,
    downgrade_line integer,
    checksum       text NOT NULL,
    allow          text[] NOT NULL DEFAULT '{}',
    source_file    text,
    source         text NOT NULL,
    loaded_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    loaded_by      text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE migrate.revisions IS 'Loaded revision definitions (one per migration file)';
COMMENT ON COLUMN migrate.revisions.checksum IS 'sha256 of the upgrade section text';

-- One row per applied revision.
CREATE TABLE migrate.applied (
    revision_id text PRIMARY KEY,
    checksum    text,
    applied_at  timestamptz NOT NULL,
    applied_by  text NOT NULL,
    duration    interval,
    method      text NOT NULL CHECK (method IN ('function', 'plan', 'sql', 'stamp'))  -- sql-lint: allow(resolved at CREATE EXTENSION, pg_catalog searched first)
);
COMMENT ON TABLE migrate.applied IS 'Applied revisions, with the checksum of the text that ran';
COMMENT ON COLUMN migrate.applied.duration IS 'NULL when stamped: no SQL ran';

-- Append-only audit log.
CREATE TABLE migrate.events (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action       text NOT NULL CHECK (action IN ('upgrade', 'downgrade', 'stamp', 'unstamp', 'load', 'reload', 'merge', 'revision', 'unload', 'update', 'adopt')),  -- sql-lint: allow(resolved at CREATE EXTENSION, pg_catalog searched first)
    revision_id  text,
    checksum     text,
    duration     interval,
    method       text,
    detail       text,
    performed_by text NOT NULL DEFAULT current_user,
    session_role text NOT NULL DEFAULT session_user,
    backend_pid  integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    xid          xid8 DEFAULT pg_catalog.pg_current_xact_id()
);
COMMENT ON TABLE migrate.events IS 'Append-only log of every upgrade, downgrade, stamp and load';
COMMENT ON COLUMN migrate.events.action IS 'upgrade, downgrade, stamp, unstamp, load, reload, merge, revision (written by migrate_revision), unload, update (of the extension itself; detail names the versions), or adopt (of an Alembic version table; detail names it and its heads)';
CREATE INDEX events_revision_id_idx ON migrate.events (revision_id);

CREATE FUNCTION migrate.events_are_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    -- One function guards both logs, so the message names the table it fired on.
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = CASE
                  WHEN TG_TABLE_NAME OPERATOR(pg_catalog.=) 'guard_log' THEN 'The guard log keeps every acknowledged dangerous operation; rows are never changed or removed.'
                  ELSE 'The audit log keeps every upgrade, downgrade and stamp; rows are never changed or removed.'
              END;
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON migrate.events
    FOR EACH ROW EXECUTE FUNCTION migrate.events_are_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON migrate.events
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.events_are_append_only();

GRANT USAGE ON SCHEMA migrate TO PUBLIC;
GRANT SELECT ON migrate.revisions, migrate.applied, migrate.events TO PUBLIC;

-- Extension tables are left out of pg_dump unless registered: the state must survive a dump.
SELECT pg_catalog.pg_extension_config_dump('migrate.revisions', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.applied', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.events', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('migrate.events', 'event_id'), '');

-- One row per batched backfill job, updated in the same transaction as each batch.
-- The table is known by its oid (a rename keeps the job; a drop ends it); its
-- name is derived when shown. The options are one jsonb object (the Rust struct
-- BackfillOptions); the columns are the job's identity and progress.
CREATE TABLE migrate.backfills (
    job_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_name          text NOT NULL UNIQUE,
    table_oid         oid NOT NULL,
    set_expression    text NOT NULL,
    where_condition   text,
    key_columns       text[] NOT NULL,
    key_types         text[] NOT NULL,
    batch_size        integer NOT NULL CHECK (batch_size OPERATOR(pg_catalog.>) 0),
    last_key          text[],
    rows_done         bigint NOT NULL DEFAULT 0,
    rows_scanned      bigint NOT NULL DEFAULT 0,
    batches           bigint NOT NULL DEFAULT 0,
    retries           bigint NOT NULL DEFAULT 0,
    lag_waits         bigint NOT NULL DEFAULT 0,
    estimated_total   bigint,
    status            text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'paused', 'done', 'failed', 'cancelled')),  -- sql-lint: allow(resolved at CREATE EXTENSION, pg_catalog searched first)
    started_at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    resumed_at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    scanned_at_resume bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at       timestamptz,
    last_error        text,
    last_sqlstate     text,
    run_by_pid        integer,
    created_by        text NOT NULL DEFAULT current_user,
    options           jsonb NOT NULL,
    run_as            oid NOT NULL,
    search_path       text NOT NULL
);
COMMENT ON TABLE migrate.backfills IS 'Batched backfill jobs: progress is committed with every batch';
COMMENT ON COLUMN migrate.backfills.batch_size IS 'Keys the next batch walks: options.batch_size, adapted to target_batch_ms or to a sparse table';
COMMENT ON COLUMN migrate.backfills.options IS 'The job''s options (batch_size, pause_ms, target_batch_ms, max_replication_lag_ms, lock_timeout_ms, max_retries, notice_interval_ms)';
COMMENT ON COLUMN migrate.backfills.run_as IS 'Oid of the role that started the job: every batch runs as this role';
COMMENT ON COLUMN migrate.backfills.search_path IS 'search_path of the role that started the job: the SET list and condition run under it';
GRANT SELECT ON migrate.backfills TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.backfills', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('migrate.backfills', 'job_id'), '');

-- Acknowledged dangerous operations (pg_migrate.allow or a revision's "-- Allow:" line).
CREATE TABLE migrate.guard_log (
    log_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    performed_by text NOT NULL,
    session_role text NOT NULL,
    backend_pid  integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    rule         text NOT NULL,
    sqlstate     text NOT NULL,
    message      text NOT NULL,
    statement    text,
    reason       text NOT NULL,
    revision_id  text,
    source       text NOT NULL CHECK (source IN ('setting', 'revision'))  -- sql-lint: allow(resolved at CREATE EXTENSION, pg_catalog searched first)
);
COMMENT ON TABLE migrate.guard_log IS 'Every dangerous operation the guard let through because it was acknowledged';
CREATE TRIGGER guard_log_append_only BEFORE UPDATE OR DELETE ON migrate.guard_log
    FOR EACH ROW EXECUTE FUNCTION migrate.events_are_append_only();
CREATE TRIGGER guard_log_no_truncate BEFORE TRUNCATE ON migrate.guard_log
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.events_are_append_only();
GRANT SELECT ON migrate.guard_log TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.guard_log', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('migrate.guard_log', 'log_id'), '');
