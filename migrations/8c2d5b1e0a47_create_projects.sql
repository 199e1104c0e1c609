-- Create projects table
--
-- Revision ID: 8c2d5b1e0a47
-- Revises: 1f4e9a7c2b30
-- Create Date: 2026-11-02 09:10:00
-- Allow: drop_table the downgrade removes the table this revision creates

-- migrate:upgrade
CREATE TABLE projects (
    id bigint GENERATED ALWAYS AS IDENTITY,
    owner_id bigint NOT NULL,
    name text NOT NULL,
    settings jsonb NOT NULL DEFAULT '{}',
    archived_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_pkey PRIMARY KEY (id),
    CONSTRAINT projects_owner_id_fkey FOREIGN KEY (owner_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT projects_name_check CHECK (length(name) BETWEEN 1 AND 200)
);

CREATE INDEX projects_owner_id_idx ON projects (owner_id);

-- migrate:downgrade
DROP INDEX projects_owner_id_idx;
DROP TABLE projects;
