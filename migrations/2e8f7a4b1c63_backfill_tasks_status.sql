-- Backfill tasks.status from timestamps
--
-- Revision ID: 2e8f7a4b1c63
-- Revises: d61b0e3c5a98
-- Create Date: 2026-11-03 10:20:00

-- migrate:upgrade
-- Step 2 of 3, a data migration.  Only rows still NULL are touched, so rows
-- written by the application since step 1 keep their value and a re-run is a
-- no-op.
UPDATE tasks
SET status = CASE
        WHEN completed_at IS NOT NULL THEN 'done'
        WHEN started_at IS NOT NULL THEN 'in_progress'
        ELSE 'todo'
    END::task_status
WHERE status IS NULL;

-- migrate:downgrade
-- Reset what the upgrade derived.  Rows whose status equals the derived value
-- go back to NULL (running the upgrade again restores them exactly).
UPDATE tasks
SET status = NULL
WHERE status = CASE
        WHEN completed_at IS NOT NULL THEN 'done'
        WHEN started_at IS NOT NULL THEN 'in_progress'
        ELSE 'todo'
    END::task_status;
