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
    CHECK (action IN ('upgrade', 'downgrade', 'stamp', 'unstamp', 'load', 'reload', 'merge', 'update'));  -- sql-lint: allow(resolved at ALTER EXTENSION, pg_catalog searched first)
COMMENT ON COLUMN migrate.events.action IS 'upgrade, downgrade, stamp, unstamp, load, reload, merge, or update (of the extension itself; detail names the versions)';

-- Issue 9, search_path: the SQL objects that run under the caller's search_path
-- name everything through pg_catalog, operators (OPERATOR(pg_catalog.=)) and
-- PL/pgSQL variable types included, so that look-alikes a database owner plants
-- in public never run. The view is bound at creation: made again, it binds to
-- pg_catalog's operators even where public held a better-matching one.
CREATE OR REPLACE VIEW migrate_backfill_status AS
SELECT b.job_name,
       b.table_name,
       b.status,
       b.rows_done,
       b.rows_scanned,
       b.estimated_total,
       pg_catalog.round((100.0 OPERATOR(pg_catalog.*) b.rows_scanned) OPERATOR(pg_catalog./)
                        CASE WHEN b.estimated_total OPERATOR(pg_catalog.=) 0 THEN NULL ELSE b.estimated_total END,
                        1) AS percent,
       b.batch_size,
       b.batches,
       b.retries,
       b.lag_waits,
       r.rate AS keys_per_second,
       CASE WHEN b.status OPERATOR(pg_catalog.=) 'running' AND r.rate OPERATOR(pg_catalog.>) 0
                 AND b.estimated_total OPERATOR(pg_catalog.>) b.rows_scanned
            THEN pg_catalog.make_interval(secs => pg_catalog.round(
                     (b.estimated_total OPERATOR(pg_catalog.-) b.rows_scanned) OPERATOR(pg_catalog./) r.rate))
       END AS eta,
       b.started_at,
       b.updated_at,
       b.finished_at,
       b.last_error
  FROM migrate.backfills b,
       LATERAL (SELECT extract(epoch FROM b.updated_at OPERATOR(pg_catalog.-) b.resumed_at) AS seconds) s,
       LATERAL (SELECT pg_catalog.round((b.rows_scanned OPERATOR(pg_catalog.-) b.scanned_at_resume)
                                        OPERATOR(pg_catalog./)
                                        CASE WHEN s.seconds OPERATOR(pg_catalog.=) 0 THEN NULL ELSE s.seconds END)
                AS rate) r;

CREATE OR REPLACE PROCEDURE migrate.backfill_run(job bigint)
LANGUAGE plpgsql AS $$
DECLARE
    wait_ms integer;
BEGIN
    LOOP
        wait_ms := migrate.backfill_batch(job);
        COMMIT;
        EXIT WHEN wait_ms OPERATOR(pg_catalog.<) 0;
        IF wait_ms OPERATOR(pg_catalog.>) 0 THEN
            PERFORM pg_catalog.pg_sleep(wait_ms OPERATOR(pg_catalog./) 1000.0);
            COMMIT;
        END IF;
    END LOOP;
    -- A failed job was recorded (and committed) above; now report it.
    PERFORM migrate.backfill_report(job);
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
    job := migrate.backfill_prepare(table_name::pg_catalog.oid, set_expression, where_condition, job_name,
                                    batch_size, pause_ms, target_batch_ms, max_replication_lag_ms,
                                    lock_timeout_ms, max_retries, notice_interval_ms);
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

-- Keep this last: the update itself, in the audit log.
INSERT INTO migrate.events (action, detail) VALUES ('update', 'pg_migrate 0.1.0 -> 0.2.0');
