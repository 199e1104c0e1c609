-- Add blocked value to task_status
--
-- Revision ID: f05c8a2d7e46
-- Revises: 3b7d0c5e9f82
-- Create Date: 2026-11-20 10:00:00
-- Transactional: false

-- migrate:upgrade
-- A new enum value cannot be used in the transaction that adds it, so this
-- revision runs outside one.  IF NOT EXISTS makes a re-run a no-op.
ALTER TYPE task_status ADD VALUE IF NOT EXISTS 'blocked' AFTER 'in_progress';

-- migrate:downgrade
-- PostgreSQL cannot drop an enum value.  Remap the rows, then swap in a type
-- without it.  The type change rewrites tasks under ACCESS EXCLUSIVE.
-- Compare as text: a value added in the same transaction (as in
-- migrate_test_roundtrip) cannot be used as an enum literal before commit.
UPDATE tasks
SET status = CASE
        WHEN started_at IS NOT NULL THEN 'in_progress'
        ELSE 'todo'
    END::task_status
WHERE status::text = 'blocked';
ALTER TABLE tasks ALTER COLUMN status DROP DEFAULT;
ALTER TYPE task_status RENAME TO task_status_old;
CREATE TYPE task_status AS ENUM ('todo', 'in_progress', 'done');
ALTER TABLE tasks ALTER COLUMN status TYPE task_status USING status::text::task_status;
ALTER TABLE tasks ALTER COLUMN status SET DEFAULT 'todo';
DROP TYPE task_status_old;
