-- Create tasks table
--
-- Revision ID: b3e07f6a9d12
-- Revises: 8c2d5b1e0a47
-- Create Date: 2026-11-02 09:20:00
-- Allow: drop_table the downgrade removes the table this revision creates

-- migrate:upgrade
CREATE TABLE tasks (
    id bigint GENERATED ALWAYS AS IDENTITY,
    project_id bigint NOT NULL,
    assignee_id bigint,
    title text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_pkey PRIMARY KEY (id),
    CONSTRAINT tasks_project_id_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT tasks_assignee_id_fkey FOREIGN KEY (assignee_id)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT tasks_title_check CHECK (length(title) BETWEEN 1 AND 500)
);

CREATE INDEX tasks_project_id_idx ON tasks (project_id);
CREATE INDEX tasks_assignee_id_idx ON tasks (assignee_id);

-- migrate:downgrade
DROP INDEX tasks_assignee_id_idx;
DROP INDEX tasks_project_id_idx;
DROP TABLE tasks;
