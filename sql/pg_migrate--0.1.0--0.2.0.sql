-- pg_migrate 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_migrate UPDATE.
--
-- Written by hand: every change to the extension's SQL objects since 0.1.0, in
-- the order it was made. tests/e2e/test_upgrade.py updates a database made by
-- the 0.1.0 build and checks that it ends with exactly the objects of a fresh
-- 0.2.0 install, every row kept. Nothing here may rewrite or drop user state.
\echo Use "ALTER EXTENSION pg_migrate UPDATE" to load this file. \quit

-- The audit log records extension updates, and (issue 12) revisions written by
-- migrate_revision(), revisions taken out by migrate_unload(), and drift absorbed.
ALTER TABLE migrate.events DROP CONSTRAINT events_action_check;
ALTER TABLE migrate.events ADD CONSTRAINT events_action_check
    CHECK (action IN ('upgrade', 'downgrade', 'stamp', 'unstamp', 'load', 'reload', 'merge', 'revision', 'unload', 'update', 'absorb', 'adopt'));  -- sql-lint: allow(resolved at ALTER EXTENSION, pg_catalog searched first)
COMMENT ON COLUMN migrate.events.action IS 'upgrade, downgrade, stamp, unstamp, load, reload, merge, revision (written by migrate_revision), unload, update (of the extension itself; detail names the versions), absorb (drift absorbed into a revision or by hand; detail says which), or adopt (of an Alembic version table; detail names it and its heads)';

-- Issue 9, acknowledgements and internal functions: the bookkeeping of plans and
-- offline scripts is for roles that run migrations, not PUBLIC (the functions
-- that run revisions also check inside that the caller may record them).
REVOKE EXECUTE ON FUNCTION migrate.lock() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.unlock() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.begin_step(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.end_step(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.run_step(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.apply_step(text, text, text, text) FROM PUBLIC;

-- Issue 9, search_path: the SQL objects that run under the caller's search_path
-- name everything through pg_catalog, operators (OPERATOR(pg_catalog.=)) and
-- PL/pgSQL variable types included, so that look-alikes a database owner plants
-- in public never run. (The backfill view and procedures are made again in the
-- backfills section below.)
CREATE OR REPLACE FUNCTION migrate_upgrade(target text DEFAULT 'head')
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE plpgsql AS $$
DECLARE
    m pg_catalog.text; d pg_catalog.text; h pg_catalog.text; c pg_catalog.text;
BEGIN
    RETURN QUERY SELECT * FROM migrate.run_upgrade(target);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    c := migrate.carried_sqlstate(m);
    IF c IS NULL THEN RAISE; END IF;
    PERFORM migrate.reraise(c, m, d, h);
END
$$;

CREATE OR REPLACE FUNCTION migrate_downgrade(target text)
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE plpgsql AS $$
DECLARE
    m pg_catalog.text; d pg_catalog.text; h pg_catalog.text; c pg_catalog.text;
BEGIN
    RETURN QUERY SELECT * FROM migrate.run_downgrade(target);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    c := migrate.carried_sqlstate(m);
    IF c IS NULL THEN RAISE; END IF;
    PERFORM migrate.reraise(c, m, d, h);
END
$$;

CREATE OR REPLACE FUNCTION migrate.apply_step(step_revision text, step_direction text, step_checksum text, step_method text DEFAULT 'plan')
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE plpgsql AS $$
DECLARE
    m pg_catalog.text; d pg_catalog.text; h pg_catalog.text; c pg_catalog.text;
BEGIN
    RETURN QUERY SELECT * FROM migrate.run_step(step_revision, step_direction, step_checksum, step_method);
EXCEPTION WHEN internal_error THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    c := migrate.carried_sqlstate(m);
    IF c IS NULL THEN RAISE; END IF;
    PERFORM migrate.reraise(c, m, d, h);
END
$$;

-- Issue 9, backfills (each selected row updated exactly once; options as one
-- typed struct). migrate.backfills: the options move into one jsonb column
-- (the Rust struct BackfillOptions), the table is known by its oid only (its
-- name is derived when shown), and the role that started a job and its
-- search_path are recorded. A job of 0.1.0 keeps its progress and resumes where
-- it stopped: its options come from its old columns, it runs as the role named
-- in created_by, and its expressions under the path they were checked with in
-- 0.1.0 (pg_catalog, pg_temp). The status view reads the old columns, so it is
-- made again.
DROP VIEW migrate_backfill_status;
ALTER TABLE migrate.backfills ADD COLUMN options jsonb;
ALTER TABLE migrate.backfills ADD COLUMN run_as oid;
ALTER TABLE migrate.backfills ADD COLUMN search_path text;
UPDATE migrate.backfills
   SET options = pg_catalog.jsonb_build_object(
           'batch_size', COALESCE(rows_per_batch, batch_size),
           'pause_ms', pause_ms,
           'target_batch_ms', target_batch_ms,
           'max_replication_lag_ms', max_replication_lag_ms,
           'lock_timeout_ms', lock_timeout_ms,
           'max_retries', max_retries,
           'notice_interval_ms', notice_interval_ms),
       run_as = COALESCE((SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) created_by), 0),
       search_path = 'pg_catalog, pg_temp';
ALTER TABLE migrate.backfills ALTER COLUMN options SET NOT NULL;
ALTER TABLE migrate.backfills ALTER COLUMN run_as SET NOT NULL;
ALTER TABLE migrate.backfills ALTER COLUMN search_path SET NOT NULL;
ALTER TABLE migrate.backfills
    DROP COLUMN table_name,
    DROP COLUMN rows_per_batch,
    DROP COLUMN pause_ms,
    DROP COLUMN target_batch_ms,
    DROP COLUMN max_replication_lag_ms,
    DROP COLUMN lock_timeout_ms,
    DROP COLUMN max_retries,
    DROP COLUMN notice_interval_ms;
COMMENT ON COLUMN migrate.backfills.batch_size IS 'Keys the next batch walks: options.batch_size, adapted to target_batch_ms or to a sparse table';
COMMENT ON COLUMN migrate.backfills.options IS 'The job''s options (batch_size, pause_ms, target_batch_ms, max_replication_lag_ms, lock_timeout_ms, max_retries, notice_interval_ms, max_wal_rate, max_slot_lag, pause_during_autovacuum)';
COMMENT ON COLUMN migrate.backfills.run_as IS 'Oid of the role that started the job: every batch runs as this role';
COMMENT ON COLUMN migrate.backfills.search_path IS 'search_path of the role that started the job: the SET list and condition run under it';

DROP FUNCTION migrate.backfill_prepare(oid, text, text, text, integer, integer, integer, integer, integer, integer, integer);
CREATE  FUNCTION migrate."backfill_prepare"(
	"table" oid, /* Option < pg_sys :: Oid > */
	"set_expression" TEXT, /* Option < & str > */
	"where_condition" TEXT, /* Option < & str > */
	"job_name" TEXT, /* Option < & str > */
	"options" jsonb, /* Option < JsonB > */
	"search_path" TEXT /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'prepare_job_wrapper';
DROP FUNCTION migrate.backfill_report(bigint);
CREATE  FUNCTION migrate."backfill_report"(
	"job_id" bigint /* i64 */
) RETURNS TABLE (
	"sqlstate" TEXT,  /* Option < String > */
	"message" TEXT,  /* Option < String > */
	"detail" TEXT,  /* Option < String > */
	"hint" TEXT  /* Option < String > */
)
STRICT VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'failed_job_report_wrapper';
-- No longer STRICT: a NULL argument is refused (22004) instead of ignored.
CREATE OR REPLACE FUNCTION migrate."backfill_resume_prepare"(
	"job_name" TEXT /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'backfill_resume_prepare_wrapper';
CREATE OR REPLACE FUNCTION "migrate_backfill_pause"(
	"job_name" TEXT /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_backfill_pause_wrapper';
CREATE OR REPLACE FUNCTION "migrate_backfill_cancel"(
	"job_name" TEXT /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_backfill_cancel_wrapper';
CREATE OR REPLACE FUNCTION migrate."not_null_check_name"(
	"table" oid, /* Option < pg_sys :: Oid > */
	"column_name" TEXT /* Option < & str > */
) RETURNS TEXT /* Option < String > */
VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'not_null_check_name_wrapper';
CREATE OR REPLACE FUNCTION migrate."set_not_null_step"(
	"table" oid, /* Option < pg_sys :: Oid > */
	"column_name" TEXT, /* Option < & str > */
	"check_name" TEXT, /* Option < & str > */
	"step" TEXT, /* Option < & str > */
	"lock_timeout_ms" INT /* Option < i32 > */
) RETURNS void
VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_not_null_step_wrapper';

CREATE VIEW migrate_backfill_status AS
SELECT b.job_name,
       (SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class c
         WHERE c.oid OPERATOR(pg_catalog.=) b.table_oid) AS table_name,
       b.status,
       b.rows_done,
       b.rows_scanned,
       b.estimated_total,
       pg_catalog.round(100.0 OPERATOR(pg_catalog.*) b.rows_scanned OPERATOR(pg_catalog./)
                        CASE WHEN b.estimated_total OPERATOR(pg_catalog.<>) 0 THEN b.estimated_total END, 1) AS percent,
       b.batch_size,
       b.batches,
       b.retries,
       b.lag_waits,
       r.rate AS keys_per_second,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'running' AND r.rate OPERATOR(pg_catalog.>) 0
                 AND b.estimated_total OPERATOR(pg_catalog.>) b.rows_scanned
            THEN pg_catalog.make_interval(secs => pg_catalog.round((b.estimated_total OPERATOR(pg_catalog.-) b.rows_scanned)
                                                                  OPERATOR(pg_catalog./) r.rate))
       END AS eta,
       b.started_at,
       b.updated_at,
       b.finished_at,
       b.last_error,
       b.options
  FROM migrate.backfills b,
       LATERAL (SELECT EXTRACT(epoch FROM b.updated_at OPERATOR(pg_catalog.-) b.resumed_at) AS seconds) s,
       LATERAL (SELECT pg_catalog.round((b.rows_scanned OPERATOR(pg_catalog.-) b.scanned_at_resume) OPERATOR(pg_catalog./)
                                        CASE WHEN s.seconds OPERATOR(pg_catalog.<>) 0 THEN s.seconds END) AS rate) r;
COMMENT ON VIEW migrate_backfill_status IS 'Progress, rate and ETA of batched backfills';
GRANT SELECT ON migrate_backfill_status TO PUBLIC;

CREATE OR REPLACE PROCEDURE migrate.backfill_run(job bigint)
LANGUAGE plpgsql AS $$
DECLARE
    wait_ms integer;
    failure pg_catalog.record;
BEGIN
    LOOP
        wait_ms := migrate.backfill_batch(job);
        COMMIT;
        EXIT WHEN wait_ms IS NULL OR wait_ms OPERATOR(pg_catalog.<) 0;
        IF wait_ms OPERATOR(pg_catalog.>) 0 THEN
            -- pg_sleep waits on the latch: a cancel or a terminate ends it at once.
            PERFORM pg_catalog.pg_sleep(wait_ms OPERATOR(pg_catalog./) 1000.0);
            COMMIT;
        END IF;
    END LOOP;
    -- A failed job was recorded (and committed) above; now report it, with its
    -- own SQLSTATE (a user's RAISE ... USING ERRCODE included).
    SELECT * INTO failure FROM migrate.backfill_report(job);
    IF failure.sqlstate IS NOT NULL THEN
        PERFORM migrate.reraise(failure.sqlstate, failure.message, failure.detail, failure.hint);
    END IF;
END
$$;

-- 0.2.0 adds the health throttles' arguments: a new signature.
DROP PROCEDURE migrate_backfill(regclass, text, text, text, integer, integer, integer, integer, integer, integer, integer);
CREATE PROCEDURE migrate_backfill(
    table_name regclass,
    set_expression text,
    where_condition text DEFAULT NULL,
    job_name text DEFAULT NULL,
    batch_size integer DEFAULT 1000,
    pause_ms integer DEFAULT 0,
    target_batch_ms integer DEFAULT NULL,
    max_replication_lag_ms integer DEFAULT NULL,
    lock_timeout_ms integer DEFAULT 1000,
    max_retries integer DEFAULT 10,
    notice_interval_ms integer DEFAULT 10000,
    max_wal_rate bigint DEFAULT NULL,
    max_slot_lag bigint DEFAULT NULL,
    pause_during_autovacuum boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
BEGIN
    PERFORM migrate.backfill_check_context('migrate_backfill');
    -- Every option by name, NULLs included: backfill_prepare checks them all.
    -- The caller's search_path goes with the job: its expressions run under it.
    job := migrate.backfill_prepare(table_name::pg_catalog.oid, set_expression, where_condition, job_name,
                                    pg_catalog.jsonb_build_object(
                                        'batch_size', batch_size,
                                        'pause_ms', pause_ms,
                                        'target_batch_ms', target_batch_ms,
                                        'max_replication_lag_ms', max_replication_lag_ms,
                                        'lock_timeout_ms', lock_timeout_ms,
                                        'max_retries', max_retries,
                                        'notice_interval_ms', notice_interval_ms,
                                        'max_wal_rate', max_wal_rate,
                                        'max_slot_lag', max_slot_lag,
                                        'pause_during_autovacuum', pause_during_autovacuum),
                                    pg_catalog.current_setting('search_path'));
    COMMIT;
    CALL migrate.backfill_run(job);
END
$$;

CREATE OR REPLACE PROCEDURE migrate_backfill_resume(job_name text)
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
BEGIN
    PERFORM migrate.backfill_check_context('migrate_backfill_resume');
    job := migrate.backfill_resume_prepare(job_name);
    -- A background job was queued: its worker starts once this commits (and
    -- backfill_run below then only says so).
    PERFORM migrate.backfill_launch_queued();
    COMMIT;
    CALL migrate.backfill_run(job);
END
$$;

CREATE OR REPLACE PROCEDURE migrate_set_not_null(table_name regclass, column_name name, lock_timeout_ms integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
    check_name pg_catalog.name;
    step pg_catalog.text;
BEGIN
    PERFORM migrate.backfill_check_context('migrate_set_not_null');
    check_name := migrate.not_null_check_name(table_name::pg_catalog.oid, column_name);
    IF check_name IS NULL THEN
        RETURN;  -- already NOT NULL (a NOTICE said so)
    END IF;
    FOREACH step IN ARRAY ARRAY['add', 'validate', 'set'] LOOP
        PERFORM migrate.set_not_null_step(table_name::pg_catalog.oid, column_name, check_name, step, lock_timeout_ms);
        COMMIT;
    END LOOP;
END
$$;



-- Issue 9, guard_log message: the append-only trigger names the table it fired on.
CREATE OR REPLACE FUNCTION migrate.events_are_append_only() RETURNS trigger
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

-- The guard's audit log cannot be truncated either.
CREATE TRIGGER guard_log_no_truncate BEFORE TRUNCATE ON migrate.guard_log
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.events_are_append_only();

-- Issue 10, data loss by cascade: an sql_drop event trigger judges the tables
-- and columns a command dropped without naming them (DROP SCHEMA/TYPE/DOMAIN/
-- FUNCTION/EXTENSION ... CASCADE, DROP OWNED). Before the descriptions below,
-- which describe its function.
CREATE FUNCTION migrate.guard_sql_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_guard_sql_drop';

-- Every command that can drop a table or a column it does not name. Not ALTER
-- TABLE (its drops are its own columns, judged before it runs) and not DROP
-- INDEX: ordinary DDL pays no call.
CREATE EVENT TRIGGER migrate_guard_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED', 'DROP TYPE', 'DROP DOMAIN', 'DROP FUNCTION',
                 'DROP PROCEDURE', 'DROP ROUTINE', 'DROP AGGREGATE', 'DROP OPERATOR', 'DROP CAST',
                 'DROP COLLATION', 'DROP EXTENSION', 'DROP VIEW', 'DROP MATERIALIZED VIEW', 'DROP FOREIGN TABLE',
                 'DROP SEQUENCE', 'DROP LANGUAGE', 'DROP ACCESS METHOD', 'DROP TEXT SEARCH CONFIGURATION',
                 'DROP TEXT SEARCH DICTIONARY', 'DROP TEXT SEARCH PARSER', 'DROP TEXT SEARCH TEMPLATE',
                 'DROP CONVERSION', 'DROP OPERATOR CLASS', 'DROP OPERATOR FAMILY', 'DROP TRANSFORM',
                 'DROP SERVER', 'DROP FOREIGN DATA WRAPPER', 'ALTER TYPE', 'ALTER DOMAIN')
    EXECUTE FUNCTION migrate.guard_sql_drop();

-- Issue 10, guard forms (long locks): ddl_command_start also sees ALTER INDEX
-- (SET TABLESPACE), ALTER MATERIALIZED VIEW (SET TABLESPACE), REFRESH
-- MATERIALIZED VIEW and ALTER DOMAIN (ADD CONSTRAINT, SET NOT NULL, VALIDATE). An event trigger's tags cannot be altered: drop and
-- recreate it, with its comment.
DROP EVENT TRIGGER migrate_guard_start;
CREATE EVENT TRIGGER migrate_guard_start ON ddl_command_start
    WHEN TAG IN ('CREATE INDEX', 'DROP INDEX', 'ALTER TABLE', 'DROP TABLE', 'CREATE TABLE', 'ALTER TYPE',
                 'ALTER INDEX', 'ALTER MATERIALIZED VIEW', 'REFRESH MATERIALIZED VIEW', 'ALTER DOMAIN')
    EXECUTE FUNCTION migrate.guard_ddl_start();

-- ==== Issue 10: check mode agrees with live mode (h/checkmode) ====
-- migrate_review() gains a detail column (the DETAIL a live refusal carries):
-- a new result type, so a new C symbol (the 0.1.0 one refuses, superseded.rs).
-- Its COMMENT is set again by the descriptions below.
DROP FUNCTION "migrate_review"(text);
CREATE  FUNCTION "migrate_review"(
	"target" TEXT DEFAULT 'head' /* & str */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"statement" INT,  /* i32 */
	"rule" TEXT,  /* String */
	"level" TEXT,  /* String */
	"sqlstate" TEXT,  /* String */
	"message" TEXT,  /* String */
	"detail" TEXT,  /* String */
	"hint" TEXT  /* String */
)
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'review_pending_wrapper';

-- ==== Issue 12: drift, DDL run outside any revision (h/drift) ====
-- (The audit log's action 'absorb' is in the events CHECK at the top.)

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

CREATE FUNCTION migrate.drift_ddl_start() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_drift_ddl_start';
CREATE FUNCTION migrate.drift_sql_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_drift_sql_drop';
CREATE FUNCTION migrate.drift_ddl_end() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'migrate_drift_ddl_end';

-- Every command: drift is whatever DDL runs outside a revision. ALTER TABLE is
-- also seen before it runs, for the old types of the columns it changes.
CREATE EVENT TRIGGER migrate_drift_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION migrate.drift_ddl_start();
CREATE EVENT TRIGGER migrate_drift_drop ON sql_drop
    EXECUTE FUNCTION migrate.drift_sql_drop();
CREATE EVENT TRIGGER migrate_drift_end ON ddl_command_end
    EXECUTE FUNCTION migrate.drift_ddl_end();

CREATE FUNCTION migrate_drift(include_absorbed boolean DEFAULT false) RETURNS SETOF migrate.drift
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM migrate.drift d
     WHERE include_absorbed OR d.absorbed_at IS NULL
     ORDER BY d.drift_id
$$;

CREATE  FUNCTION "migrate_drift_absorb"(
	"drift_ids" bigint[], /* :: std :: option :: Option < Vec < Option < i64 > > > */
	"reason" TEXT /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_drift_absorb_wrapper';

CREATE  FUNCTION "migrate_revision_from_drift"(
	"message" TEXT, /* Option < & str > */
	"head" TEXT DEFAULT 'head', /* Option < & str > */
	"branch_label" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"file_name" TEXT,  /* String */
	"source" TEXT  /* String */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_revision_from_drift_wrapper';

-- migrate_verify() reports unabsorbed drift, one row per command, with who and
-- when: a new result type, so a new C symbol (the 0.1.0 one refuses,
-- superseded.rs). Its COMMENT is set again by the descriptions below.
DROP FUNCTION "migrate_verify"();
CREATE  FUNCTION "migrate_verify"() RETURNS TABLE (
	"revision" TEXT,  /* Option < String > */
	"problem" TEXT,  /* String */
	"applied_checksum" TEXT,  /* Option < String > */
	"defined_checksum" TEXT,  /* Option < String > */
	"applied_at" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"drift_id" bigint,  /* Option < i64 > */
	"performed_by" TEXT,  /* Option < String > */
	"occurred_at" timestamp with time zone  /* Option < TimestampWithTimeZone > */
)
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_with_drift_wrapper';

-- ==== Issue 13: autogenerate and check (h/autogen) ====
-- migrate_check compares the live schema with the desired DDL; migrate_autogenerate
-- writes and loads the revisions. Their COMMENTs are set by the descriptions below.
CREATE  FUNCTION "migrate_check"(
	"desired" TEXT, /* Option < & str > */
	"schema" TEXT DEFAULT 'public', /* Option < & str > */
	"strict" bool DEFAULT false /* Option < bool > */
) RETURNS TABLE (
	"object" TEXT,  /* String */
	"difference" TEXT  /* String */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_check_wrapper';

CREATE  FUNCTION "migrate_autogenerate"(
	"message" TEXT, /* Option < & str > */
	"desired" TEXT, /* Option < & str > */
	"schema" TEXT DEFAULT 'public' /* Option < & str > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"transactional" bool,  /* bool */
	"source" TEXT  /* String */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_autogenerate_wrapper';

-- Issue 15, background backfills: migrate_backfill_start runs the same job in
-- a background worker; a job can be queued (pg_migrate.max_backfill_workers),
-- and records where it runs, the login role its worker connects as, the server
-- start its runner belongs to, when it was queued and what it waits for. The
-- status view shows where each job runs and what it waits for, and a job
-- whose session or worker is gone as stalled; every status change is sent
-- with NOTIFY pg_migrate_backfill.
DROP VIEW migrate_backfill_status;
ALTER TABLE migrate.backfills DROP CONSTRAINT backfills_status_check;
ALTER TABLE migrate.backfills ADD CONSTRAINT backfills_status_check
    CHECK (status IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled'));  -- sql-lint: allow(resolved at ALTER EXTENSION, pg_catalog searched first)
ALTER TABLE migrate.backfills
    ADD COLUMN runs_in text NOT NULL DEFAULT 'foreground'
        CHECK (runs_in IN ('foreground', 'background')),  -- sql-lint: allow(resolved at ALTER EXTENSION, pg_catalog searched first)
    ADD COLUMN session_role oid,
    ADD COLUMN runner_epoch timestamptz,
    ADD COLUMN queued_at timestamptz,
    ADD COLUMN waiting_for text,
    ADD COLUMN wal_waits bigint NOT NULL DEFAULT 0,
    ADD COLUMN slot_waits bigint NOT NULL DEFAULT 0,
    ADD COLUMN vacuum_waits bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN migrate.backfills.runs_in IS 'foreground (inside CALL migrate_backfill) or background (a worker started by migrate_backfill_start)';
COMMENT ON COLUMN migrate.backfills.session_role IS 'Oid of the login role of the session that started a background job: its worker connects as this role';
COMMENT ON COLUMN migrate.backfills.runner_epoch IS 'pg_postmaster_start_time() when run_by_pid took the job: a pid of an earlier server life is not the runner';
COMMENT ON COLUMN migrate.backfills.queued_at IS 'When a background job joined the queue: queued jobs start in this order';
COMMENT ON COLUMN migrate.backfills.waiting_for IS 'What the job waits for now, if anything (queue, worker slot, replication lag, WAL rate, slot lag, vacuum)';

CREATE  FUNCTION migrate."backfill_start"(
	"table" oid, /* Option < pg_sys :: Oid > */
	"set_expression" TEXT, /* Option < & str > */
	"where_condition" TEXT, /* Option < & str > */
	"job_name" TEXT, /* Option < & str > */
	"options" jsonb, /* Option < JsonB > */
	"search_path" TEXT /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'start_job_wrapper';
CREATE  FUNCTION migrate."backfill_launch_queued"() RETURNS void
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'backfill_launch_queued_wrapper';
CREATE  FUNCTION migrate."backfill_stalled_reason"(
	"runs_in" TEXT, /* Option < & str > */
	"pid" INT /* Option < i32 > */
) RETURNS TEXT /* String */
STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'backfill_stalled_reason_wrapper';

-- Whether the process that runs a job is the one recorded: a worker shows by
-- its application_name, and a pid from before the last server start is nobody.
CREATE FUNCTION migrate.backfill_runner_alive(runs_in text, pid integer, epoch timestamptz)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pid IS NOT NULL
       AND COALESCE(epoch OPERATOR(pg_catalog.=) pg_catalog.pg_postmaster_start_time(), true)
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                    WHERE a.pid OPERATOR(pg_catalog.=) $2
                      AND (runs_in OPERATOR(pg_catalog.<>) 'background'
                           OR a.application_name OPERATOR(pg_catalog.=) 'pg_migrate backfill'))
$$;

CREATE VIEW migrate_backfill_status AS
SELECT b.job_name,
       (SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class c
         WHERE c.oid OPERATOR(pg_catalog.=) b.table_oid) AS table_name,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'running' AND NOT l.alive THEN 'stalled' ELSE b.status END AS status,
       b.rows_done,
       b.rows_scanned,
       b.estimated_total,
       pg_catalog.round(100.0 OPERATOR(pg_catalog.*) b.rows_scanned OPERATOR(pg_catalog./)
                        CASE WHEN b.estimated_total OPERATOR(pg_catalog.<>) 0 THEN b.estimated_total END, 1) AS percent,
       b.batch_size,
       b.batches,
       b.retries,
       b.lag_waits,
       r.rate AS keys_per_second,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'running' AND l.alive AND r.rate OPERATOR(pg_catalog.>) 0
                 AND b.estimated_total OPERATOR(pg_catalog.>) b.rows_scanned
            THEN pg_catalog.make_interval(secs => pg_catalog.round((b.estimated_total OPERATOR(pg_catalog.-) b.rows_scanned)
                                                                  OPERATOR(pg_catalog./) r.rate))
       END AS eta,
       b.started_at,
       b.updated_at,
       b.finished_at,
       b.last_error,
       b.options,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'queued' THEN 'queued'
            WHEN b.status OPERATOR(pg_catalog.<>) 'running' THEN NULL
            WHEN NOT l.alive THEN 'stalled'
            WHEN b.runs_in OPERATOR(pg_catalog.=) 'background' THEN 'background worker'
            ELSE 'foreground'
       END AS runs_in,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'running' AND l.alive THEN b.run_by_pid END AS pid,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'running' AND l.alive AND w.lock THEN 'lock'
            WHEN b.status OPERATOR(pg_catalog.=) 'running' AND l.alive THEN b.waiting_for
            WHEN b.status OPERATOR(pg_catalog.=) 'queued' THEN b.waiting_for
       END AS waiting_for,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'running' AND NOT l.alive
            THEN migrate.backfill_stalled_reason(b.runs_in, b.run_by_pid)
       END AS stalled_reason,
       b.wal_waits,
       b.slot_waits,
       b.vacuum_waits
  FROM migrate.backfills b,
       LATERAL (SELECT migrate.backfill_runner_alive(b.runs_in, b.run_by_pid, b.runner_epoch) AS alive) l,
       LATERAL (SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks k
                                WHERE k.pid OPERATOR(pg_catalog.=) b.run_by_pid AND NOT k.granted) AS lock) w,
       LATERAL (SELECT EXTRACT(epoch FROM b.updated_at OPERATOR(pg_catalog.-) b.resumed_at) AS seconds) s,
       LATERAL (SELECT pg_catalog.round((b.rows_scanned OPERATOR(pg_catalog.-) b.scanned_at_resume) OPERATOR(pg_catalog./)
                                        CASE WHEN s.seconds OPERATOR(pg_catalog.<>) 0 THEN s.seconds END) AS rate) r;
COMMENT ON VIEW migrate_backfill_status IS 'Progress, rate and ETA of batched backfills, where each runs and what it waits for';
GRANT SELECT ON migrate_backfill_status TO PUBLIC;

-- Every change of a job's status is sent on the channel pg_migrate_backfill
-- (LISTEN pg_migrate_backfill), as a json object, when its transaction commits.
CREATE FUNCTION migrate.backfill_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR OLD.status OPERATOR(pg_catalog.<>) NEW.status THEN
        PERFORM pg_catalog.pg_notify('pg_migrate_backfill', pg_catalog.json_build_object(
            'job_name', NEW.job_name, 'status', NEW.status, 'runs_in', NEW.runs_in,
            'rows_done', NEW.rows_done, 'last_error', NEW.last_error)::pg_catalog.text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER backfills_notify AFTER INSERT OR UPDATE ON migrate.backfills
    FOR EACH ROW EXECUTE FUNCTION migrate.backfill_notify();
COMMENT ON TRIGGER backfills_notify ON migrate.backfills IS 'NOTIFY pg_migrate_backfill on every change of a job''s status';

-- Whoever writes a job's row may name only roles it could act as itself: a
-- background worker connects as session_role, and every batch runs as run_as.
-- Without this, write access to migrate.backfills would let a worker connect
-- as a role its writer is not (a superuser, say).
CREATE FUNCTION migrate.backfill_check_roles() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR NEW.run_as OPERATOR(pg_catalog.<>) OLD.run_as)
       AND NOT pg_catalog.pg_has_role(NEW.run_as, 'MEMBER') THEN
        RAISE EXCEPTION 'a backfill job may run only as a role you are a member of'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('run_as of job %s names role %s.', NEW.job_name, NEW.run_as),
                  HINT = 'Start the job as that role: SET ROLE, then migrate_backfill or migrate_backfill_start.';
    END IF;
    IF NEW.session_role IS NOT NULL
       AND (TG_OP OPERATOR(pg_catalog.=) 'INSERT' OR OLD.session_role IS NULL
            OR NEW.session_role OPERATOR(pg_catalog.<>) OLD.session_role)
       AND NEW.session_role OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                     WHERE r.rolname OPERATOR(pg_catalog.=) session_user)
       AND NOT pg_catalog.pg_has_role(NEW.session_role, 'MEMBER') THEN
        RAISE EXCEPTION 'a background backfill may connect only as a role you are a member of'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('session_role of job %s names role %s.', NEW.job_name, NEW.session_role),
                  HINT = 'Start or resume the job from a session of that role.';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER backfills_check_roles BEFORE INSERT OR UPDATE ON migrate.backfills
    FOR EACH ROW EXECUTE FUNCTION migrate.backfill_check_roles();
COMMENT ON TRIGGER backfills_check_roles ON migrate.backfills IS 'A job''s row names only roles its writer is a member of (run_as, session_role)';

-- The same job as migrate_backfill's, run by a background worker: returns the
-- job name at once; the job goes on after the client disconnects.
CREATE FUNCTION migrate_backfill_start(
    table_name regclass,
    set_expression text,
    where_condition text DEFAULT NULL,
    job_name text DEFAULT NULL,
    batch_size integer DEFAULT 1000,
    pause_ms integer DEFAULT 0,
    target_batch_ms integer DEFAULT NULL,
    max_replication_lag_ms integer DEFAULT NULL,
    lock_timeout_ms integer DEFAULT 1000,
    max_retries integer DEFAULT 10,
    notice_interval_ms integer DEFAULT 10000,
    max_wal_rate bigint DEFAULT NULL,
    max_slot_lag bigint DEFAULT NULL,
    pause_during_autovacuum boolean DEFAULT false)
RETURNS text
LANGUAGE sql VOLATILE
AS $$
    -- The caller's search_path goes with the job, as in migrate_backfill.
    SELECT migrate.backfill_start(table_name::pg_catalog.oid, set_expression, where_condition, job_name,
                                  pg_catalog.jsonb_build_object(
                                      'batch_size', batch_size,
                                      'pause_ms', pause_ms,
                                      'target_batch_ms', target_batch_ms,
                                      'max_replication_lag_ms', max_replication_lag_ms,
                                      'lock_timeout_ms', lock_timeout_ms,
                                      'max_retries', max_retries,
                                      'notice_interval_ms', notice_interval_ms,
                                      'max_wal_rate', max_wal_rate,
                                      'max_slot_lag', max_slot_lag,
                                      'pause_during_autovacuum', pause_during_autovacuum),
                                  pg_catalog.current_setting('search_path'))
$$;
-- ==== Issue 11: scale (h/scale) ====
-- Indexes for lookups by key, and the maintained applied heads (src/schema.sql),
-- filled from the rows already there.
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
GRANT SELECT ON migrate.applied_heads TO PUBLIC;
-- Fill it from the rows already there: a no-op UPDATE of every applied row makes
-- its trigger recompute them all (the same code that keeps it from now on).
UPDATE migrate.applied SET revision_id = revision_id;
-- ==== Issue 14: coming from Alembic (h/alembic) ====
-- migrate_adopt_alembic() stamps what an Alembic version table says is applied,
-- records an 'adopt' event, and can keep that table at the applied heads (a
-- trigger on migrate.applied). src/sql_api/alembic.sql and alembic.rs.
-- (The audit log's action 'adopt' is in the events CHECK at the top.)

CREATE FUNCTION migrate."adopt_alembic"(
	"version_table" oid, /* core::option::Option<pgrx_pg_sys::submodules::oids::Oid> */
	"keep_in_sync" bool /* core::option::Option<bool> */
) RETURNS TABLE (
	"revision" TEXT,  /* alloc::string::String */
	"direction" TEXT,  /* alloc::string::String */
	"message" TEXT,  /* alloc::string::String */
	"duration" interval  /* core::option::Option<pgrx::datum::interval::Interval> */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'adopt_alembic_wrapper';

-- Alembic version tables that pg_migrate keeps up to date (keep_in_sync).
CREATE TABLE migrate.alembic_sync (
    version_table text PRIMARY KEY,
    since         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by        text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE migrate.alembic_sync IS 'Alembic version tables pg_migrate keeps up to date (migrate_adopt_alembic(keep_in_sync => true))';
COMMENT ON COLUMN migrate.alembic_sync.version_table IS 'The version table, schema-qualified as regclass prints it';
GRANT SELECT ON migrate.alembic_sync TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.alembic_sync', '');

-- After every change of the applied state (upgrade, downgrade, stamp, a plan's
-- step): each version table in migrate.alembic_sync gets the applied heads, as
-- Alembic would have written them (revisions that no other applied revision
-- names as parent or dependency). Runs as the role that changed the state.
CREATE FUNCTION migrate.sync_alembic_versions() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    target pg_catalog.text;
    resolved pg_catalog.regclass;
BEGIN
    FOR target IN SELECT s.version_table FROM migrate.alembic_sync s ORDER BY 1 LOOP
        resolved := pg_catalog.to_regclass(target);
        IF resolved IS NULL THEN
            RAISE EXCEPTION 'the Alembic version table % that pg_migrate keeps in sync does not exist', target
                USING ERRCODE = 'undefined_table',
                      DETAIL = 'migrate_adopt_alembic(keep_in_sync => true) asked pg_migrate to write the applied heads there after every change.',
                      HINT = pg_catalog.format('Create it again, or stop keeping it in sync: DELETE FROM migrate.alembic_sync WHERE version_table = %L;', target);  -- sql-lint: allow(a HINT for the user to read, never run by pg_migrate)
        END IF;
        EXECUTE pg_catalog.format('DELETE FROM %s', resolved);
        EXECUTE pg_catalog.format(
            'INSERT INTO %s (version_num)
             SELECT a.revision_id FROM migrate.applied a
             EXCEPT
             SELECT p.id FROM migrate.applied b
               JOIN migrate.revisions r ON r.revision_id OPERATOR(pg_catalog.=) b.revision_id
              CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.array_cat(r.down_revisions, r.depends_on)) AS p(id)',
            resolved);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER applied_alembic_sync AFTER INSERT OR DELETE ON migrate.applied
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.sync_alembic_versions();
COMMENT ON TRIGGER applied_alembic_sync ON migrate.applied IS 'Keeps the Alembic version tables in migrate.alembic_sync at the applied heads';

-- The version table is resolved with the caller's search_path, when called.
CREATE FUNCTION migrate_adopt_alembic(
    version_table regclass DEFAULT 'alembic_version'::pg_catalog.text::pg_catalog.regclass,
    keep_in_sync boolean DEFAULT false)
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM migrate.adopt_alembic(version_table::pg_catalog.oid, keep_in_sync)
$$;

-- Issue 8, descriptions: every function, procedure and trigger has a COMMENT
-- (src/comments.sql, the same text as a fresh install runs last).
-- Issue 12, writing revisions from psql: migrate_revision() writes and loads a
-- new revision on a head; migrate_merge() accepts 'heads' and '<label>@head' and
-- returns the file like migrate_revision (0.1.0's returned the id only, so it is
-- dropped and made again: its old C symbol refuses until this update);
-- migrate_unload() takes a loaded revision back out; migrate_history(range) and
-- migrate_history_verbose(range) read Alembic's -r ranges. (migrate_sql keeps
-- its signature: a target with a colon is now a range.)
DROP FUNCTION "migrate_merge"(text[], text);
-- pg_migrate::sql_api::ranges::migrate_history
CREATE  FUNCTION "migrate_history"(
	"range" TEXT /* Option < & str > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"parents" TEXT[],  /* Vec < String > */
	"message" TEXT,  /* String */
	"branch_labels" TEXT[],  /* Vec < String > */
	"depends_on" TEXT[],  /* Vec < String > */
	"is_head" bool,  /* bool */
	"is_current" bool,  /* bool */
	"applied_at" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"applied_by" TEXT  /* Option < String > */
)
STABLE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_history_range_wrapper';

-- pg_migrate::sql_api::ranges::migrate_history_verbose
CREATE  FUNCTION "migrate_history_verbose"(
	"range" TEXT DEFAULT ':' /* Option < & str > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"parents" TEXT[],  /* Vec < String > */
	"message" TEXT,  /* String */
	"branch_labels" TEXT[],  /* Vec < String > */
	"depends_on" TEXT[],  /* Vec < String > */
	"is_head" bool,  /* bool */
	"is_current" bool,  /* bool */
	"applied_at" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"applied_by" TEXT,  /* Option < String > */
	"create_date" TEXT,  /* Option < String > */
	"file_name" TEXT,  /* Option < String > */
	"checksum" TEXT  /* String */
)
STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_history_verbose_wrapper';

-- pg_migrate::sql_api::authoring::migrate_merge
CREATE  FUNCTION "migrate_merge"(
	"revisions" TEXT DEFAULT 'heads', /* Option < & str > */
	"message" TEXT DEFAULT 'merge heads', /* Option < & str > */
	"branch_label" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"file_name" TEXT,  /* String */
	"source" TEXT  /* String */
)
VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_merge_named_wrapper';

-- pg_migrate::sql_api::authoring::migrate_merge
CREATE  FUNCTION "migrate_merge"(
	"revisions" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"message" TEXT DEFAULT 'merge heads', /* Option < & str > */
	"branch_label" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"file_name" TEXT,  /* String */
	"source" TEXT  /* String */
)
VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_merge_revisions_wrapper';

-- pg_migrate::sql_api::authoring::migrate_revision
CREATE  FUNCTION "migrate_revision"(
	"message" TEXT, /* Option < & str > */
	"upgrade" TEXT DEFAULT NULL, /* Option < & str > */
	"downgrade" TEXT DEFAULT NULL, /* Option < & str > */
	"head" TEXT DEFAULT 'head', /* Option < & str > */
	"branch_label" TEXT DEFAULT NULL, /* Option < & str > */
	"depends_on" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < String > > > */
	"transactional" bool DEFAULT true, /* Option < bool > */
	"splice" bool DEFAULT false, /* Option < bool > */
	"allow" TEXT[] DEFAULT NULL /* :: std :: option :: Option < Vec < Option < String > > > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"file_name" TEXT,  /* String */
	"source" TEXT  /* String */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_revision_wrapper';

-- pg_migrate::sql_api::authoring::migrate_unload
CREATE  FUNCTION "migrate_unload"(
	"revision" TEXT /* Option < & str > */
) RETURNS TABLE (
	"revision" TEXT,  /* String */
	"file_name" TEXT,  /* Option < String > */
	"source" TEXT  /* String */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_unload_wrapper';

-- What every function and procedure is for, so that \df+ migrate_* and
-- \df+ migrate.* describe themselves in psql. (Tables, views and triggers are
-- described where they are created.)
--
-- Functions are found by name, so a description holds for every signature of
-- that name, and a changed argument list needs no edit here. A name listed
-- here that no longer exists is an error; an object left without a comment
-- fails tests/e2e/test_catalog.py. sql/pg_migrate--0.1.0--0.2.0.sql runs the
-- same block.
DO $describe$
DECLARE
    home regnamespace := (SELECT e.extnamespace FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_migrate');
    item pg_catalog.record;
    fn pg_catalog.record;
    described integer;
BEGIN
    FOR item IN SELECT * FROM (VALUES
        -- Moving the applied state.
        ('migrate_upgrade', 'Apply every revision needed to reach target, in one transaction. Non-transactional revisions need migrate_plan().'),
        ('migrate_downgrade', 'Undo applied revisions down to target (a revision, -N, label@base, base), in one transaction.'),
        ('migrate_stamp', 'Set the applied state to target without running any SQL (alembic stamp); purge first forgets every applied revision.'),
        ('migrate_adopt_alembic', 'Take over a database Alembic migrated: stamp the revisions its version table lists and their ancestors, running nothing; keep_in_sync keeps that table up to date.'),
        ('migrate_plan', 'The statements that move the database to target, for psql to run one by one: SELECT * FROM migrate_plan(''head'') \gexec'),
        ('migrate_sql', 'The offline script that moves the database to target (Alembic --sql), or over a range from:to made from the graph alone, to review or run later with psql -v ON_ERROR_STOP=1 -f.'),
        ('migrate_test_roundtrip', 'Upgrade, downgrade and upgrade again every pending and applied revision inside one transaction that is rolled back; one row per step.'),
        -- Loading.
        ('migrate_load', 'Register one migration file''s text (not applied). Returns its revision id.'),
        ('migrate_load_dir', 'Register every *.sql migration file of a directory on the database server (not applied).'),
        ('migrate_merge', 'Write and load a revision that merges heads (''heads'', <label>@head or revisions), as alembic merge does. Returns its id, file name and text.'),
        ('migrate_revision', 'Write and load (not apply) a new revision on a head, as alembic revision -m does. Returns its id, file name and text, to save.'),
        ('migrate_unload', 'Take back out a loaded revision that is not applied and that nothing revises or depends on. Returns what it removed.'),
        -- Reading.
        ('migrate_current', 'The applied heads: the revisions the database is at.'),
        ('migrate_history', 'Every loaded revision in upgrade order, with its parents, labels and whether it is applied; with a range (lower:upper, -3:, current:), as alembic history -r.'),
        ('migrate_history_verbose', 'migrate_history(range) with each revision''s Create Date, file name and checksum, as alembic history --verbose.'),
        ('migrate_heads', 'The heads of the revision graph, applied or not.'),
        ('migrate_branches', 'Branch points: revisions with more than one child.'),
        ('migrate_show', 'Every detail of one revision (a unique id prefix is enough), its SQL included. Best read with \x.'),
        ('migrate_verify', 'Problems with the applied state: changed checksums, applied revisions that are not loaded or whose parents are not applied, and DDL run outside any revision that nothing absorbed (one row per command, with who and when).'),
        -- Drift: DDL run outside any revision.
        ('migrate_drift', 'The DDL run outside any pg_migrate revision (migrate.drift), in order; include_absorbed shows absorbed entries too.'),
        ('migrate_drift_absorb', 'Mark drift entries absorbed by hand, with a reason (recorded in migrate.events). Returns how many were marked.'),
        ('migrate_revision_from_drift', 'Turn the unabsorbed drift into a new revision on top of the head (upgrade: the statements; downgrade: their inverse), recorded as applied here.'),
        ('migrate.drift_ddl_start', 'Event trigger function (ddl_command_start, ALTER TABLE): notes the types of columns an ALTER COLUMN TYPE outside a revision changes.'),
        ('migrate.drift_sql_drop', 'Event trigger function (sql_drop): notes what a command outside a revision dropped, for its drift row.'),
        ('migrate.drift_ddl_end', 'Event trigger function (ddl_command_end): records each DDL command run outside a revision in migrate.drift.'),
        ('migrate.drift_is_append_only', 'Trigger function: migrate.drift rows are never changed or removed, only absorbed once.'),
        -- The guard.
        ('migrate_guard_check', 'What the DDL guard would say about a statement or script, without running it: rule, level, SQLSTATE, message, detail, hint.'),
        ('migrate_review', 'What the DDL guard would say about the revisions an upgrade to target would apply, before running them.'),
        -- Autogenerate.
        ('migrate_check', 'Compare the live schema with the desired DDL: one row (object, difference) per difference, none when equal; strict raises 42P15 instead (for CI).'),
        ('migrate_autogenerate', 'Write and load (not apply) the revisions that take the live schema to the desired DDL and back, in their safe forms, reviewed by the guard.'),
        ('migrate.guard_ddl_start', 'Event trigger function (ddl_command_start): checks each DDL statement against the guard''s rules.'),
        ('migrate.guard_table_rewrite', 'Event trigger function (table_rewrite): refuses a rewrite of a large table that other sessions use.'),
        ('migrate.guard_sql_drop', 'Event trigger function (sql_drop): refuses a command that dropped, by cascade or without naming them, tables with rows or columns with data.'),
        -- Backfills.
        ('migrate_backfill', 'Batched UPDATE table SET set_expression WHERE where_condition, committing after every batch; resumable, throttled.'),
        ('migrate_backfill_start', 'The same batched backfill as migrate_backfill, run by a background worker: returns the job name at once; the job goes on without the client.'),
        ('migrate_backfill_resume', 'Continue a paused, failed or interrupted backfill after its last committed batch (a background job in the background).'),
        ('migrate_backfill_pause', 'Ask a running backfill to stop at its next batch boundary; resume it with migrate_backfill_resume.'),
        ('migrate_backfill_cancel', 'Stop a backfill for good at its next batch boundary.'),
        ('migrate_set_not_null', 'SET NOT NULL without a long ACCESS EXCLUSIVE scan: a NOT VALID check, validated, then SET NOT NULL using it.'),
        -- Internal: called by the plan, the offline script and the procedures above.
        ('migrate.lock', 'Internal (first statement of a plan or script): take the migration lock for this session.'),
        ('migrate.unlock', 'Internal (last statement of a plan or script): release the session''s migration lock; a step in progress ends.'),
        ('migrate.apply_step', 'Internal (one plan row): apply exactly one transactional revision, after checking the state the plan expected.'),
        ('migrate.run_step', 'Internal: the work of migrate.apply_step(), which restores SQLSTATEs that pgrx cannot carry.'),
        ('migrate.begin_step', 'Internal (plan and script): before a revision''s statements run at top level, check the state; its Allow lines cover its own statements until end_step.'),
        ('migrate.end_step', 'Internal (plan and script): after a revision''s statements, record it unless one of them failed.'),
        ('migrate.run_upgrade', 'Internal: the work of migrate_upgrade().'),
        ('migrate.run_downgrade', 'Internal: the work of migrate_downgrade().'),
        ('migrate.carried_sqlstate', 'Internal: the real SQLSTATE of an error that came back through Rust as XX000.'),
        ('migrate.reraise', 'Internal: raise an error again with its real SQLSTATE, message, detail and hint.'),
        ('migrate.keep_applied_heads', 'Trigger function: recomputes migrate.applied_heads for the rows a statement changed and their parents.'),
        ('migrate.adopt_alembic', 'Internal: the work of migrate_adopt_alembic().'),
        ('migrate.sync_alembic_versions', 'Trigger function: writes the applied heads into every Alembic version table listed in migrate.alembic_sync.'),
        ('migrate.events_are_append_only', 'Trigger function: refuses UPDATE, DELETE and TRUNCATE on the audit logs.'),
        ('migrate.backfill_check_context', 'Internal: refuses a backfill procedure called where it cannot commit (inside BEGIN, or from a function).'),
        ('migrate.backfill_prepare', 'Internal: checks a backfill''s arguments and statements, then creates (or continues) its job.'),
        ('migrate.backfill_resume_prepare', 'Internal: marks a job running again for migrate_backfill_resume.'),
        ('migrate.backfill_run', 'Internal: the batch loop of migrate_backfill and migrate_backfill_resume, committing after every batch.'),
        ('migrate.backfill_batch', 'Internal: one batch of a job running in this session, as the job''s role; returns the wait before the next one, or -1.'),
        ('migrate.backfill_start', 'Internal: the work of migrate_backfill_start: every check of migrate_backfill, then the job is queued and given a worker.'),
        ('migrate.backfill_launch_queued', 'Internal: give the oldest queued background jobs of this database a worker each, up to pg_migrate.max_backfill_workers.'),
        ('migrate.backfill_stalled_reason', 'Internal: why a job marked running shows as stalled in migrate_backfill_status.'),
        ('migrate.backfill_runner_alive', 'Internal: whether the session or worker recorded as running a job is still alive.'),
        ('migrate.backfill_notify', 'Trigger function: NOTIFY pg_migrate_backfill with the job on every change of its status.'),
        ('migrate.backfill_check_roles', 'Trigger function: refuses a job row naming a role (run_as, session_role) its writer is not a member of.'),
        ('migrate.backfill_report', 'Internal: the recorded error of a failed job, for backfill_run to raise with its SQLSTATE.'),
        ('migrate.not_null_check_name', 'Internal: the name of the temporary CHECK migrate_set_not_null uses, or NULL if the column is already NOT NULL.'),
        ('migrate.set_not_null_step', 'Internal: one step of CALL migrate_set_not_null (add, validate, set), under its own lock_timeout; refused anywhere else.')
    ) AS d(name, description) LOOP
        described := 0;
        FOR fn IN
            SELECT p.oid::pg_catalog.regprocedure AS signature, p.prokind
              FROM pg_catalog.pg_proc p
             WHERE CASE WHEN pg_catalog.strpos(item.name, '.') OPERATOR(pg_catalog.>) 0
                        THEN p.pronamespace OPERATOR(pg_catalog.=) 'migrate'::pg_catalog.regnamespace
                             AND p.proname OPERATOR(pg_catalog.=) pg_catalog.split_part(item.name, '.', 2)
                        ELSE p.pronamespace OPERATOR(pg_catalog.=) home
                             AND p.proname OPERATOR(pg_catalog.=) item.name
                   END
        LOOP
            EXECUTE pg_catalog.format('COMMENT ON %s %s IS %L',
                                      CASE WHEN fn.prokind OPERATOR(pg_catalog.=) 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                                      fn.signature, item.description);
            described := described OPERATOR(pg_catalog.+) 1;
        END LOOP;
        IF described OPERATOR(pg_catalog.=) 0 THEN
            RAISE EXCEPTION 'pg_migrate: no function % to describe', item.name;
        END IF;
    END LOOP;
END
$describe$;

COMMENT ON EVENT TRIGGER migrate_guard_start IS 'pg_migrate''s DDL guard: checks dangerous DDL before it runs';
COMMENT ON EVENT TRIGGER migrate_guard_rewrite IS 'pg_migrate''s DDL guard: checks table rewrites before they start';
COMMENT ON EVENT TRIGGER migrate_guard_drop IS 'pg_migrate''s DDL guard: checks what a command dropped by cascade, before it commits';
COMMENT ON TRIGGER events_append_only ON migrate.events IS 'The audit log is append-only: no UPDATE or DELETE';
COMMENT ON TRIGGER events_no_truncate ON migrate.events IS 'The audit log is append-only: no TRUNCATE';
COMMENT ON TRIGGER guard_log_append_only ON migrate.guard_log IS 'The guard''s audit log is append-only: no UPDATE or DELETE';
COMMENT ON TRIGGER guard_log_no_truncate ON migrate.guard_log IS 'The guard''s audit log is append-only: no TRUNCATE';
COMMENT ON EVENT TRIGGER migrate_drift_start IS 'pg_migrate''s drift capture: the column types an ALTER TABLE outside a revision changes, before it runs';
COMMENT ON EVENT TRIGGER migrate_drift_drop IS 'pg_migrate''s drift capture: what a DDL command outside a revision dropped';
COMMENT ON EVENT TRIGGER migrate_drift_end IS 'pg_migrate''s drift capture: records every DDL command run outside a revision in migrate.drift';
COMMENT ON TRIGGER drift_append_only ON migrate.drift IS 'Drift is append-only: no DELETE, and an UPDATE only absorbs a row, once';
COMMENT ON TRIGGER drift_no_truncate ON migrate.drift IS 'Drift is append-only: no TRUNCATE';
COMMENT ON TRIGGER applied_heads_insert ON migrate.applied IS 'Keeps migrate.applied_heads exact after an INSERT';
COMMENT ON TRIGGER applied_heads_update ON migrate.applied IS 'Keeps migrate.applied_heads exact after an UPDATE';
COMMENT ON TRIGGER applied_heads_delete ON migrate.applied IS 'Keeps migrate.applied_heads exact after a DELETE';
COMMENT ON TRIGGER applied_heads_truncate ON migrate.applied IS 'Keeps migrate.applied_heads exact after a TRUNCATE';
COMMENT ON TRIGGER applied_heads_insert ON migrate.revisions IS 'Keeps migrate.applied_heads exact after an INSERT';
COMMENT ON TRIGGER applied_heads_update ON migrate.revisions IS 'Keeps migrate.applied_heads exact after an UPDATE';
COMMENT ON TRIGGER applied_heads_delete ON migrate.revisions IS 'Keeps migrate.applied_heads exact after a DELETE';
COMMENT ON TRIGGER applied_heads_truncate ON migrate.revisions IS 'Keeps migrate.applied_heads exact after a TRUNCATE';

-- Keep this last: the update itself, in the audit log.
INSERT INTO migrate.events (action, detail) VALUES ('update', 'pg_migrate 0.1.0 -> 0.2.0');
