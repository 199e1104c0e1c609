-- What `make demo` runs in its database "app" (psql -v migrations=DIR).
-- tests/e2e/test_readme.py runs it as well, then the README's walkthrough on top.
\set ON_ERROR_STOP on
CREATE EXTENSION pg_migrate;

-- Register the example migrations (the server reads the directory).
SELECT count(*) AS loaded FROM migrate_load_dir(:'migrations');

-- The first revisions in one transaction.
SELECT * FROM migrate_upgrade('2e8f7a4b1c63');

-- The rest include revisions marked "Transactional: false" (CREATE INDEX
-- CONCURRENTLY, ALTER TYPE ... ADD VALUE), which must run at top level: the
-- plan is a list of statements that psql runs one by one.
SELECT * FROM migrate_plan('head') \gexec

-- Rows for the guard to protect: from 100,000 rows (estimated) a table is large.
INSERT INTO users (email, display_name)
SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, 200000) g;
INSERT INTO projects (name, owner_id) SELECT 'Project ' || g, g FROM generate_series(1, 1000) g;
INSERT INTO tasks (project_id, title)
SELECT 1 + g % 1000, 'Task ' || g FROM generate_series(1, 20000) g;
ANALYZE users, projects, tasks;
