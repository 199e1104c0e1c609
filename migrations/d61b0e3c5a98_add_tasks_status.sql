-- Add nullable tasks.status column
--
-- Revision ID: d61b0e3c5a98
-- Revises: 4a9c1d8e7f05
-- Create Date: 2026-11-03 10:10:00
-- Allow: drop_column the downgrade removes the column this revision adds

-- migrate:upgrade
-- Step 1 of 3, nullable and without a table rewrite.  Existing rows stay
-- NULL until the backfill revision, new rows get the default set by the
-- second statement.
ALTER TABLE tasks ADD COLUMN status task_status;
ALTER TABLE tasks ALTER COLUMN status SET DEFAULT 'todo';

-- migrate:downgrade
ALTER TABLE tasks ALTER COLUMN status DROP DEFAULT;
ALTER TABLE tasks DROP COLUMN status;
