-- Rename users.full_name to display_name
--
-- Revision ID: 5b0a8d2c9e14
-- Revises: 9d3c6e0f2b71
-- Create Date: 2026-11-05 14:00:00

-- migrate:upgrade
ALTER TABLE users RENAME COLUMN full_name TO display_name;

-- migrate:downgrade
ALTER TABLE users RENAME COLUMN display_name TO full_name;
