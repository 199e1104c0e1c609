-- Create users table
--
-- Revision ID: 1f4e9a7c2b30
-- Revises:
-- Create Date: 2026-11-02 09:00:00
-- Allow: drop_table the downgrade removes the table this revision creates

-- migrate:upgrade
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY,
    email text NOT NULL,
    full_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_check CHECK (position('@' IN email) > 1)
);

-- migrate:downgrade
DROP TABLE users;
