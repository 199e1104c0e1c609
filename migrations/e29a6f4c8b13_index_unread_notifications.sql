-- Index unread notifications per user
--
-- Revision ID: e29a6f4c8b13
-- Revises: 7c5e9b2a0d36
-- Create Date: 2026-11-14 16:00:00
-- Transactional: false

-- migrate:upgrade
-- CONCURRENTLY cannot run inside a transaction block (Transactional false).
-- IF NOT EXISTS makes a re-run a no-op.  A failed concurrent build leaves an
-- INVALID index that IF NOT EXISTS would keep, so drop that one with the
-- downgrade statement before retrying.
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_user_id_unread_idx
    ON notifications (user_id, created_at DESC)
    WHERE read_at IS NULL;

-- migrate:downgrade
DROP INDEX CONCURRENTLY IF EXISTS notifications_user_id_unread_idx;
