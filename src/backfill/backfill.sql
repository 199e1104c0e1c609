-- Batched backfills. The procedures are PL/pgSQL so they can COMMIT after every
-- batch; each batch is one call of the Rust function migrate.backfill_batch().
-- They cannot pin search_path (a procedure with SET cannot commit), so every
-- name inside is schema-qualified.

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

-- Runs a job's batches, committing after each one, until it is done, paused,
-- cancelled or failed.
CREATE PROCEDURE migrate.backfill_run(job bigint)
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

CREATE PROCEDURE migrate_backfill_resume(job_name text)
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

-- SET NOT NULL without holding ACCESS EXCLUSIVE for a full-table scan:
-- a NOT VALID check, validated in its own transaction (SHARE UPDATE EXCLUSIVE,
-- reads and writes go on), then SET NOT NULL, which uses the validated check
-- instead of scanning, then the check is dropped. Safe to rerun after a failure.
CREATE PROCEDURE migrate_set_not_null(table_name regclass, column_name name, lock_timeout_ms integer DEFAULT 1000)
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

