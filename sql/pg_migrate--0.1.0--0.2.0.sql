-- pg_migrate 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_migrate UPDATE.
--
-- Written by hand: every change to the extension's SQL objects since 0.1.0, in
-- the order it was made. tests/e2e/test_upgrade.py updates a database made by
-- the 0.1.0 build and checks that it ends with exactly the objects of a fresh
-- 0.2.0 install, every row kept. Nothing here may rewrite or drop user state.
\echo Use "ALTER EXTENSION pg_migrate UPDATE" to load this file. \quit

-- The audit log records extension updates.
ALTER TABLE migrate.events DROP CONSTRAINT events_action_check;
ALTER TABLE migrate.events ADD CONSTRAINT events_action_check
    CHECK (action IN ('upgrade', 'downgrade', 'stamp', 'unstamp', 'load', 'reload', 'merge', 'update'));
COMMENT ON COLUMN migrate.events.action IS 'upgrade, downgrade, stamp, unstamp, load, reload, merge, or update (of the extension itself; detail names the versions)';

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
COMMENT ON COLUMN migrate.backfills.options IS 'The job''s options (batch_size, pause_ms, target_batch_ms, max_replication_lag_ms, lock_timeout_ms, max_retries, notice_interval_ms)';
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
AS 'MODULE_PATHNAME', 'backfill_prepare_wrapper';
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
AS 'MODULE_PATHNAME', 'backfill_report_wrapper';
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
    failure record;
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

CREATE OR REPLACE PROCEDURE migrate_backfill(
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
    notice_interval_ms integer DEFAULT 10000)
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
                                        'notice_interval_ms', notice_interval_ms),
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
    COMMIT;
    CALL migrate.backfill_run(job);
END
$$;

CREATE OR REPLACE PROCEDURE migrate_set_not_null(table_name regclass, column_name name, lock_timeout_ms integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
    check_name name;
    step text;
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

COMMENT ON PROCEDURE migrate.backfill_run(bigint) IS 'Internal: the batch loop of migrate_backfill and migrate_backfill_resume, committing after every batch';
COMMENT ON PROCEDURE migrate_backfill_resume(text) IS 'Continue a paused, failed or interrupted backfill after its last committed batch';
COMMENT ON PROCEDURE migrate_set_not_null(regclass, name, integer) IS 'SET NOT NULL through a validated NOT VALID check, without a full-table scan under ACCESS EXCLUSIVE';

COMMENT ON FUNCTION migrate_backfill_pause(text) IS 'Ask a running backfill to stop at its next batch; resume it later';
COMMENT ON FUNCTION migrate_backfill_cancel(text) IS 'Stop a backfill for good at its next batch';
COMMENT ON FUNCTION migrate.backfill_check_context(text) IS 'Internal: refuses a committing procedure inside a transaction block or a function';
COMMENT ON FUNCTION migrate.backfill_prepare(oid, text, text, text, jsonb, text) IS 'Internal: checks a backfill''s arguments and statements, then creates (or continues) its job';
COMMENT ON FUNCTION migrate.backfill_resume_prepare(text) IS 'Internal: marks a job running again for migrate_backfill_resume';
COMMENT ON FUNCTION migrate.backfill_batch(bigint) IS 'Internal: one batch of a job running in this session, as the job''s role';
COMMENT ON FUNCTION migrate.backfill_report(bigint) IS 'Internal: the recorded error of a failed job, for backfill_run to raise with its SQLSTATE';
COMMENT ON FUNCTION migrate.not_null_check_name(oid, text) IS 'Internal: the name of migrate_set_not_null''s check for a column, NULL when it is NOT NULL already';
COMMENT ON FUNCTION migrate.set_not_null_step(oid, text, text, text, integer) IS 'Internal: one step of CALL migrate_set_not_null (add, validate, set); refused anywhere else';


-- Keep this last: the update itself, in the audit log.
INSERT INTO migrate.events (action, detail) VALUES ('update', 'pg_migrate 0.1.0 -> 0.2.0');
