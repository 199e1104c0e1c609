-- Create notifications table
--
-- Revision ID: a4f83c1e6b07
-- Revises: 5b0a8d2c9e14
-- Create Date: 2026-11-12 15:00:00
-- Branch Labels: notifications
-- Allow: drop_table the downgrade removes the table this revision creates

-- migrate:upgrade
CREATE TABLE notifications (
    id bigint GENERATED ALWAYS AS IDENTITY,
    user_id bigint NOT NULL,
    task_id bigint,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    read_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_pkey PRIMARY KEY (id),
    CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT notifications_task_id_fkey FOREIGN KEY (task_id)
        REFERENCES tasks (id) ON DELETE CASCADE,
    CONSTRAINT notifications_kind_check CHECK (length(kind) BETWEEN 1 AND 64)
);

CREATE INDEX notifications_user_id_idx ON notifications (user_id);
CREATE INDEX notifications_task_id_idx ON notifications (task_id);

-- migrate:downgrade
DROP INDEX notifications_task_id_idx;
DROP INDEX notifications_user_id_idx;
DROP TABLE notifications;
