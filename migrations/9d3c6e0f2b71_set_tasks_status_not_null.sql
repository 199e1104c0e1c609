-- Make tasks.status NOT NULL
--
-- Revision ID: 9d3c6e0f2b71
-- Revises: 2e8f7a4b1c63
-- Create Date: 2026-11-03 10:30:00
-- Transactional: false

-- migrate:upgrade
-- Step 3 of 3.  Runs statement by statement, because in one transaction the
-- ACCESS EXCLUSIVE lock taken by ADD CONSTRAINT would be held during the scan.
-- ADD ... NOT VALID takes that lock only briefly and scans nothing.
-- VALIDATE scans under SHARE UPDATE EXCLUSIVE (reads and writes continue).
-- SET NOT NULL then trusts the validated check and skips its own full scan.
ALTER TABLE tasks ADD CONSTRAINT tasks_status_not_null
    CHECK (status IS NOT NULL) NOT VALID;
ALTER TABLE tasks VALIDATE CONSTRAINT tasks_status_not_null;
ALTER TABLE tasks ALTER COLUMN status SET NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT tasks_status_not_null;

-- migrate:downgrade
ALTER TABLE tasks ALTER COLUMN status DROP NOT NULL;
