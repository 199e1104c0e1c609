-- Merge billing and notifications branches
--
-- Revision ID: 3b7d0c5e9f82
-- Revises: 0e6d2b8f4a59, e29a6f4c8b13
-- Create Date: 2026-11-18 10:00:00
-- Allow: drop_column the downgrade removes the column this revision adds

-- migrate:upgrade
-- Invoice notifications need both branches, so their preference lands here.
-- A constant default is stored in the catalog and causes no table rewrite.
ALTER TABLE users
    ADD COLUMN notification_prefs jsonb NOT NULL
    DEFAULT '{"task_assigned": true, "invoice_issued": true}';

-- migrate:downgrade
ALTER TABLE users DROP COLUMN notification_prefs;
