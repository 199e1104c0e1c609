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

-- Issue 9, guard_log message: the append-only trigger names the table it fired on.
CREATE OR REPLACE FUNCTION migrate.events_are_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    -- One function guards both logs, so the message names the table it fired on.
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = CASE TG_TABLE_NAME
                  WHEN 'guard_log' THEN 'The guard log keeps every acknowledged dangerous operation; rows are never changed or removed.'
                  ELSE 'The audit log keeps every upgrade, downgrade and stamp; rows are never changed or removed.'
              END;
END
$$;
COMMENT ON FUNCTION migrate.events_are_append_only() IS 'Trigger refusing UPDATE, DELETE and TRUNCATE on migrate.events and migrate.guard_log';

-- Keep this last: the update itself, in the audit log.
INSERT INTO migrate.events (action, detail) VALUES ('update', 'pg_migrate 0.1.0 -> 0.2.0');
