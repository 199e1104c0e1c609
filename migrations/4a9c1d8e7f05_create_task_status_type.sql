-- Create task_status enum type
--
-- Revision ID: 4a9c1d8e7f05
-- Revises: b3e07f6a9d12
-- Create Date: 2026-11-03 10:00:00

-- migrate:upgrade
-- The type ships on its own, one revision before the column that uses it.
CREATE TYPE task_status AS ENUM ('todo', 'in_progress', 'done');

-- migrate:downgrade
DROP TYPE task_status;
