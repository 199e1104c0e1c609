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

-- Lookups by key instead of scans of the whole graph: the revisions that name a
-- revision as parent or dependency (a plan step's downgrade check, a load's cycle
-- check, the applied heads) and the owner of a branch label (a load's clash check).
-- fastupdate off: every lookup reads the index itself, never a pending list.
CREATE INDEX revisions_references_idx ON migrate.revisions
    USING gin ((pg_catalog.array_cat(down_revisions, depends_on))) WITH (fastupdate = off);  -- sql-lint: allow(a storage parameter, not an operator)
CREATE INDEX revisions_branch_labels_idx ON migrate.revisions
    USING gin (branch_labels) WITH (fastupdate = off);  -- sql-lint: allow(a storage parameter, not an operator)

-- The applied heads, as migrate_current() shows them: applied revisions with no
-- applied child, and applied revisions with no loaded definition. Derived from
-- migrate.applied and migrate.revisions and kept exactly right by the triggers
-- below, whoever writes those tables, so reading the current state costs the
-- number of heads, not the number of revisions.
CREATE TABLE migrate.applied_heads (
    revision_id text PRIMARY KEY
);
COMMENT ON TABLE migrate.applied_heads IS 'The applied heads (migrate_current()), kept by triggers on migrate.applied and migrate.revisions';

CREATE FUNCTION migrate.keep_applied_heads() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    touched pg_catalog.text[];
BEGIN
    -- A changed row can change whether it is a head, and whether its parents
    -- (before and after the change) are: recompute exactly those. Two
    -- statements, whatever the change: a plan step pays for them on every revision.
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' AND TG_TABLE_NAME OPERATOR(pg_catalog.=) 'applied' THEN
        DELETE FROM migrate.applied_heads;
        RETURN NULL;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        touched := ARRAY(SELECT a.revision_id FROM migrate.applied a);
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        touched := ARRAY(SELECT n.revision_id FROM new_rows n);
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' AND TG_TABLE_NAME OPERATOR(pg_catalog.=) 'applied' THEN
        touched := ARRAY(SELECT o.revision_id FROM old_rows o);
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        touched := ARRAY(SELECT o.revision_id FROM old_rows o
                         UNION ALL SELECT p FROM old_rows o, pg_catalog.unnest(o.down_revisions) AS u(p));
    ELSIF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'applied' THEN
        touched := ARRAY(SELECT o.revision_id FROM old_rows o UNION ALL SELECT n.revision_id FROM new_rows n);
    ELSE
        touched := ARRAY(SELECT o.revision_id FROM old_rows o UNION ALL SELECT n.revision_id FROM new_rows n
                         UNION ALL SELECT p FROM old_rows o, pg_catalog.unnest(o.down_revisions) AS u(p));
    END IF;
    IF pg_catalog.cardinality(touched) OPERATOR(pg_catalog.=) 0 THEN
        RETURN NULL;  -- a statement that changed no row (record_steps runs both a DELETE and an INSERT)
    END IF;
    -- The touched revisions and their parents now; which of them are heads;
    -- the others leave migrate.applied_heads, these join it.
    WITH affected AS (
             SELECT u.id FROM pg_catalog.unnest(touched) AS u(id)
             UNION
             SELECT p FROM pg_catalog.unnest(touched) AS u(id)
               JOIN migrate.revisions r ON r.revision_id OPERATOR(pg_catalog.=) u.id
              CROSS JOIN LATERAL pg_catalog.unnest(r.down_revisions) AS q(p)),
         heads AS (
             SELECT a.revision_id FROM affected t
               JOIN migrate.applied a ON a.revision_id OPERATOR(pg_catalog.=) t.id
              -- No applied child, or no definition. (An OR: both stay lookups by
              -- key for each touched row, never a join over the whole table.)
              WHERE NOT EXISTS (
                        SELECT FROM migrate.revisions c
                          JOIN migrate.applied ca ON ca.revision_id OPERATOR(pg_catalog.=) c.revision_id
                         WHERE pg_catalog.array_cat(c.down_revisions, c.depends_on) OPERATOR(pg_catalog.@>) ARRAY[a.revision_id]
                           AND c.down_revisions OPERATOR(pg_catalog.@>) ARRAY[a.revision_id])
                 OR NOT EXISTS (
                        SELECT FROM migrate.revisions d WHERE d.revision_id OPERATOR(pg_catalog.=) a.revision_id)),
         gone AS (
             DELETE FROM migrate.applied_heads h USING affected t
              WHERE h.revision_id OPERATOR(pg_catalog.=) t.id
                AND NOT EXISTS (SELECT FROM heads s WHERE s.revision_id OPERATOR(pg_catalog.=) h.revision_id))
    INSERT INTO migrate.applied_heads (revision_id) SELECT s.revision_id FROM heads s ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER applied_heads_insert AFTER INSERT ON migrate.applied
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();
CREATE TRIGGER applied_heads_update AFTER UPDATE ON migrate.applied
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();
CREATE TRIGGER applied_heads_delete AFTER DELETE ON migrate.applied
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();
CREATE TRIGGER applied_heads_truncate AFTER TRUNCATE ON migrate.applied
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();
CREATE TRIGGER applied_heads_insert AFTER INSERT ON migrate.revisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();
CREATE TRIGGER applied_heads_update AFTER UPDATE ON migrate.revisions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();
CREATE TRIGGER applied_heads_delete AFTER DELETE ON migrate.revisions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();
CREATE TRIGGER applied_heads_truncate AFTER TRUNCATE ON migrate.revisions
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.keep_applied_heads();

-- Append-only audit log.
CREATE TABLE migrate.events (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action       text NOT NULL CHECK (action IN ('upgrade', 'downgrade', 'stamp', 'unstamp', 'load', 'reload', 'merge', 'revision', 'unload', 'update', 'absorb', 'adopt')),  -- sql-lint: allow(resolved at CREATE EXTENSION, pg_catalog searched first)
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
COMMENT ON COLUMN migrate.events.action IS 'upgrade, downgrade, stamp, unstamp, load, reload, merge, revision (written by migrate_revision), unload, update (of the extension itself; detail names the versions), absorb (drift absorbed into a revision or by hand; detail says which), or adopt (of an Alembic version table; detail names it and its heads)';
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
GRANT SELECT ON migrate.revisions, migrate.applied, migrate.applied_heads, migrate.events TO PUBLIC;

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
                      CHECK (status IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')),  -- sql-lint: allow(resolved at CREATE EXTENSION, pg_catalog searched first)
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
    search_path       text NOT NULL,
    runs_in           text NOT NULL DEFAULT 'foreground'
                      CHECK (runs_in IN ('foreground', 'background')),  -- sql-lint: allow(resolved at CREATE EXTENSION, pg_catalog searched first)
    session_role      oid,
    runner_epoch      timestamptz,
    queued_at         timestamptz,
    waiting_for       text,
    wal_waits         bigint NOT NULL DEFAULT 0,
    slot_waits        bigint NOT NULL DEFAULT 0,
    vacuum_waits      bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE migrate.backfills IS 'Batched backfill jobs: progress is committed with every batch';
COMMENT ON COLUMN migrate.backfills.batch_size IS 'Keys the next batch walks: options.batch_size, adapted to target_batch_ms or to a sparse table';
COMMENT ON COLUMN migrate.backfills.options IS 'The job''s options (batch_size, pause_ms, target_batch_ms, max_replication_lag_ms, lock_timeout_ms, max_retries, notice_interval_ms, max_wal_rate, max_slot_lag, pause_during_autovacuum)';
COMMENT ON COLUMN migrate.backfills.run_as IS 'Oid of the role that started the job: every batch runs as this role';
COMMENT ON COLUMN migrate.backfills.search_path IS 'search_path of the role that started the job: the SET list and condition run under it';
COMMENT ON COLUMN migrate.backfills.runs_in IS 'foreground (inside CALL migrate_backfill) or background (a worker started by migrate_backfill_start)';
COMMENT ON COLUMN migrate.backfills.session_role IS 'Oid of the login role of the session that started a background job: its worker connects as this role';
COMMENT ON COLUMN migrate.backfills.runner_epoch IS 'pg_postmaster_start_time() when run_by_pid took the job: a pid of an earlier server life is not the runner';
COMMENT ON COLUMN migrate.backfills.queued_at IS 'When a background job joined the queue: queued jobs start in this order';
COMMENT ON COLUMN migrate.backfills.waiting_for IS 'What the job waits for now, if anything (queue, worker slot, replication lag, WAL rate, slot lag, vacuum)';
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

-- DDL run outside any pg_migrate revision (issue 12), one row per command, written
-- by the event triggers as the extension's owner. Append-only: the only change a
-- row ever takes is being absorbed, once (by a revision made from it, or by hand
-- with a reason).
CREATE TABLE migrate.drift (
    drift_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    performed_by      text NOT NULL,
    session_role      text NOT NULL DEFAULT session_user,
    application_name  text,
    client_addr       inet DEFAULT pg_catalog.inet_client_addr(),
    backend_pid       integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    xid               xid8 DEFAULT pg_catalog.pg_current_xact_id(),
    command_tag       text NOT NULL,
    object_type       text,
    object_identity   text,
    statement         text,
    in_query          text,
    unrecorded_before integer NOT NULL DEFAULT 0,
    type_changes      jsonb,
    absorbed_at       timestamptz,
    absorbed_by       text,
    absorbed_into     text,
    absorbed_reason   text
);
COMMENT ON TABLE migrate.drift IS 'DDL run outside any pg_migrate revision, one row per command (append-only; rows are only ever absorbed, once)';
COMMENT ON COLUMN migrate.drift.performed_by IS 'current_user when the command ran';
COMMENT ON COLUMN migrate.drift.statement IS 'The command''s own text (its part of a query string of several commands); NULL when it ran inside a function or DO block';
COMMENT ON COLUMN migrate.drift.in_query IS 'The client''s query the command ran inside, when statement is NULL';
COMMENT ON COLUMN migrate.drift.unrecorded_before IS 'Commands of the same backend just before this one that ran but could not be recorded (a gap)';
COMMENT ON COLUMN migrate.drift.type_changes IS 'ALTER COLUMN ... TYPE: each column''s type before and after ([{"column", "from", "to"}]), for the inverse';
COMMENT ON COLUMN migrate.drift.absorbed_into IS 'The revision made from this drift (migrate_revision_from_drift), or NULL';
COMMENT ON COLUMN migrate.drift.absorbed_reason IS 'Why it was marked absorbed by hand (migrate_drift_absorb), or NULL';

CREATE FUNCTION migrate.drift_is_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    absorption CONSTANT pg_catalog.text[] := ARRAY['absorbed_at', 'absorbed_by', 'absorbed_into', 'absorbed_reason'];
BEGIN
    -- Absorbing a row is the one change allowed: once, and nothing else in the row.
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND OLD.absorbed_at IS NULL AND NEW.absorbed_at IS NOT NULL
       AND (pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.-) absorption)
           OPERATOR(pg_catalog.=) (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.-) absorption) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'migrate.drift is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Recorded drift is never changed or removed; an entry can only be absorbed, once.',
              HINT = 'SELECT migrate_drift_absorb(ARRAY[<drift_id>], ''<reason>''); or SELECT * FROM migrate_revision_from_drift(''<message>'');';
END
$$;
CREATE TRIGGER drift_append_only BEFORE UPDATE OR DELETE ON migrate.drift
    FOR EACH ROW EXECUTE FUNCTION migrate.drift_is_append_only();
CREATE TRIGGER drift_no_truncate BEFORE TRUNCATE ON migrate.drift
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.drift_is_append_only();
GRANT SELECT ON migrate.drift TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.drift', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('migrate.drift', 'drift_id'), '');
