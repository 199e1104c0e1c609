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

-- Issue 9, acknowledgements and internal functions: the bookkeeping of plans and
-- offline scripts is for roles that run migrations, not PUBLIC (the functions
-- that run revisions also check inside that the caller may record them).
REVOKE EXECUTE ON FUNCTION migrate.lock() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.unlock() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.begin_step(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.end_step(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.run_step(text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION migrate.apply_step(text, text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION migrate.lock() IS 'A plan''s first statement: take the migration lock for the session';
COMMENT ON FUNCTION migrate.unlock() IS 'A plan''s last statement: release the session''s migration lock; a step in progress ends';
COMMENT ON FUNCTION migrate.begin_step(text, text, text) IS 'Before a revision''s statements run at top level: check the state; its Allow lines cover its own statements until end_step';
COMMENT ON FUNCTION migrate.end_step(text, text, text, text) IS 'After a revision''s statements ran at top level: record it, unless one of them failed';
COMMENT ON FUNCTION migrate.run_step(text, text, text, text) IS 'Apply one transactional revision of a plan (called by migrate.apply_step)';
COMMENT ON FUNCTION migrate.apply_step(text, text, text, text) IS 'One row of a plan: apply one transactional revision in its own transaction';
COMMENT ON FUNCTION migrate.run_upgrade(text) IS 'The work of migrate_upgrade(), which restores the SQLSTATEs it cannot carry';
COMMENT ON FUNCTION migrate.run_downgrade(text) IS 'The work of migrate_downgrade(), which restores the SQLSTATEs it cannot carry';
COMMENT ON FUNCTION migrate.carried_sqlstate(text) IS 'The real SQLSTATE of an error that came back through Rust as XX000';
COMMENT ON FUNCTION migrate.reraise(text, text, text, text) IS 'Raise an error with the given SQLSTATE, message, detail and hint';

-- Keep this last: the update itself, in the audit log.
INSERT INTO migrate.events (action, detail) VALUES ('update', 'pg_migrate 0.1.0 -> 0.2.0');
