-- Batched backfills. The procedures are PL/pgSQL so they can COMMIT after every
-- batch; each batch is one call of the Rust function migrate.backfill_batch().
-- They cannot pin search_path (a procedure with SET cannot commit), so every
-- name inside is schema-qualified.

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

CREATE PROCEDURE migrate_backfill_resume(job_name text)
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
