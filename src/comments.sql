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
