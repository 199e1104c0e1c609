"""Data lost by cascade (issue 10): a command that drops tables with rows or
columns with data without naming them in DROP TABLE / ALTER TABLE ... DROP
COLUMN is refused by cascade_drop_table (MG012) or cascade_drop_column (MG013),
from the sql_drop event, and nothing is dropped. Each form: SQL in, finding
out, rows still there. Then what is let through: empty tables, temporary ones,
tables created in the same transaction, RESTRICT (which fails on its own),
defaults, indexes, views; and the acknowledged forms, audited."""

import psycopg
import pytest

from conftest import connect, load, psql, refused, revision, scalar, unique_name

ROWS = 2000
REASON = "archived to the warehouse in ticket 812"


@pytest.fixture
def conn(db):
    c = connect(db)
    c.execute("SET lock_timeout = '5s'")
    # The data-loss rules need rows, not size; the other rules' thresholds are
    # lowered so the tables here count as large for them too.
    c.execute("SET pg_migrate.guard_min_rows = 1000")
    c.execute("SET pg_migrate.guard_min_size = '64kB'")
    return c


def fill(conn, table, values="g", rows=ROWS):
    conn.execute(f"INSERT INTO {table} SELECT g, {values} FROM generate_series(1, {rows}) g")
    conn.execute(f"ANALYZE {table}")


def count(conn, sql):
    return scalar(conn, sql)


def logged(conn):
    return conn.execute("SELECT rule, sqlstate, reason, source FROM migrate.guard_log ORDER BY log_id").fetchall()


# --- what is refused ----------------------------------------------------------

def test_drop_schema_cascade_with_a_table_that_has_rows(conn):
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.orders (id bigint PRIMARY KEY, total numeric)")
    fill(conn, "app.orders")
    conn.execute("CREATE TABLE app.empty (id bigint)")
    error = refused(conn, "DROP SCHEMA app CASCADE", "MG012")
    assert "DROP SCHEMA drops table app.orders (~2,000 rows" in error.diag.message_primary, error.diag.message_primary
    assert error.diag.message_primary.endswith("[cascade_drop_table]")
    assert "app.orders (~2,000 rows" in error.diag.message_detail and "app.empty" not in error.diag.message_detail
    assert "RESTRICT" in error.diag.message_hint and "pg_dump -t app.orders" in error.diag.message_hint
    assert ("BEGIN; SET LOCAL pg_migrate.allow = 'cascade_drop_table: <reason>'; DROP SCHEMA app CASCADE; COMMIT;"
            in error.diag.message_hint), error.diag.message_hint
    assert count(conn, "SELECT count(*) FROM app.orders") == ROWS


def test_drop_schema_cascade_with_a_partitioned_table(conn):
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.events (id bigint, at date) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
    conn.execute(f"INSERT INTO app.events SELECT g, '2026-03-01' FROM generate_series(1, {ROWS}) g")
    error = refused(conn, "DROP SCHEMA app CASCADE", "MG012")
    assert "app.events_2026" in error.diag.message_primary, error.diag.message_primary
    assert count(conn, "SELECT count(*) FROM app.events") == ROWS


def test_drop_type_cascade_drops_a_column_with_data(conn):
    conn.execute("CREATE TYPE mood AS ENUM ('happy', 'sad')")
    conn.execute("CREATE TABLE people (id bigint PRIMARY KEY, mood mood)")
    fill(conn, "people", "'happy'")
    error = refused(conn, "DROP TYPE mood CASCADE", "MG013")
    assert "DROP TYPE drops column mood of public.people (~2,000 rows" in error.diag.message_primary
    assert error.diag.message_primary.endswith("[cascade_drop_column]")
    assert "ALTER TABLE public.people ALTER COLUMN mood TYPE" in error.diag.message_hint
    assert count(conn, "SELECT count(mood) FROM people") == ROWS


def test_drop_domain_cascade_drops_a_column_with_data(conn):
    conn.execute("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)")
    conn.execute("CREATE TABLE stock (id bigint PRIMARY KEY, quantity positive)")
    fill(conn, "stock")
    error = refused(conn, "DROP DOMAIN positive CASCADE", "MG013")
    assert "column quantity of public.stock" in error.diag.message_primary
    assert count(conn, "SELECT count(quantity) FROM stock") == ROWS


def test_drop_function_cascade_drops_a_generated_column(conn):
    conn.execute("CREATE FUNCTION twice(integer) RETURNS integer IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2'")
    conn.execute("CREATE TABLE sizes (id integer PRIMARY KEY, doubled integer GENERATED ALWAYS AS (twice(id)) STORED)")
    conn.execute(f"INSERT INTO sizes SELECT g FROM generate_series(1, {ROWS}) g")
    error = refused(conn, "DROP FUNCTION twice(integer) CASCADE", "MG013")
    assert "DROP FUNCTION drops column doubled of public.sizes" in error.diag.message_primary
    assert count(conn, "SELECT count(doubled) FROM sizes") == ROWS


def test_drop_owned_drops_a_table_with_rows(conn):
    role = f"owner_{unique_name()}"
    conn.execute(f"CREATE ROLE {role}")
    try:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        conn.execute(f"SET ROLE {role}")
        conn.execute("CREATE TABLE owned (id bigint, v text)")
        conn.execute("RESET ROLE")
        fill(conn, "owned", "'x'")
        error = refused(conn, f"DROP OWNED BY {role}", "MG012")
        assert "DROP OWNED drops table public.owned" in error.diag.message_primary
        assert "REASSIGN OWNED BY <role> TO <new owner>" in error.diag.message_hint
        assert count(conn, "SELECT count(*) FROM owned") == ROWS
        with conn.transaction():
            conn.execute(f"SET LOCAL pg_migrate.allow = 'cascade_drop_table: {REASON}'")
            conn.execute(f"DROP OWNED BY {role}")
        assert scalar(conn, "SELECT to_regclass('owned') IS NULL")
    finally:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_drop_extension_cascade_drops_a_column_of_its_type(conn):
    conn.execute("CREATE EXTENSION citext")
    conn.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, email citext)")
    fill(conn, "accounts", "'a' || g")
    error = refused(conn, "DROP EXTENSION citext CASCADE", "MG013")
    assert "DROP EXTENSION drops column email of public.accounts" in error.diag.message_primary
    assert count(conn, "SELECT count(email) FROM accounts") == ROWS


def test_drop_collation_cascade_drops_a_column(conn):
    conn.execute("CREATE COLLATION german (provider = icu, locale = 'de-DE')")
    conn.execute("CREATE TABLE names (id bigint PRIMARY KEY, name text COLLATE german)")
    fill(conn, "names", "'n' || g")
    refused(conn, "DROP COLLATION german CASCADE", "MG013")
    assert count(conn, "SELECT count(name) FROM names") == ROWS


def test_drop_table_cascade_drops_a_column_of_its_row_type(conn):
    conn.execute("CREATE TABLE addresses (street text)")
    conn.execute("CREATE TABLE customers (id bigint PRIMARY KEY, home addresses)")
    fill(conn, "customers", "ROW('main street')::addresses")
    # addresses is empty, so drop_table is quiet; the column of its row type is not.
    error = refused(conn, "DROP TABLE addresses CASCADE", "MG013")
    assert "DROP TABLE drops column home of public.customers" in error.diag.message_primary
    assert count(conn, "SELECT count(home) FROM customers") == ROWS


def test_drop_view_cascade_drops_a_column_of_its_row_type(conn):
    conn.execute("CREATE VIEW pair AS SELECT 1 AS a, 2 AS b")
    conn.execute("CREATE TABLE pairs (id bigint PRIMARY KEY, p pair)")
    fill(conn, "pairs", "ROW(1, 2)::pair")
    refused(conn, "DROP VIEW pair CASCADE", "MG013")
    assert count(conn, "SELECT count(p) FROM pairs") == ROWS


def test_drop_type_cascade_drops_a_typed_table_and_alter_type_its_column(conn):
    conn.execute("CREATE TYPE person AS (name text, age integer)")
    conn.execute("CREATE TABLE persons OF person")
    conn.execute(f"INSERT INTO persons SELECT 'n' || g, g FROM generate_series(1, {ROWS}) g")
    refused(conn, "ALTER TYPE person DROP ATTRIBUTE age CASCADE", "MG013")
    error = refused(conn, "DROP TYPE person CASCADE", "MG012")
    assert "DROP TYPE drops table public.persons" in error.diag.message_primary
    assert count(conn, "SELECT count(age) FROM persons") == ROWS


def test_an_inherited_table_dropped_by_cascade_counts_once(conn):
    """DROP TABLE parent CASCADE: drop_table judges the parent with its children
    (their rows summed) before the command; the cascade rule does not ask again."""
    conn.execute("CREATE TABLE parent (id bigint)")
    conn.execute("CREATE TABLE child (note text) INHERITS (parent)")
    fill(conn, "child", "'n'")
    error = refused(conn, "DROP TABLE parent CASCADE", "MG003")
    assert "~2,000 rows" in error.diag.message_primary, error.diag.message_primary
    with conn.transaction():
        conn.execute(f"SET LOCAL pg_migrate.allow = 'drop_table: {REASON}'")
        conn.execute("DROP TABLE parent CASCADE")
    assert [rule for rule, *_ in logged(conn)] == ["drop_table"]


def test_a_partitioned_table_is_drop_tables_with_its_partitions(conn):
    """DROP TABLE of a partitioned table: drop_table counts the rows of its
    partitions; the partitions PostgreSQL drops with it are not asked about again."""
    conn.execute("CREATE TABLE measurements (id bigint, at date) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
    conn.execute(f"INSERT INTO measurements SELECT g, '2026-05-01' FROM generate_series(1, {ROWS}) g")
    conn.execute("ANALYZE measurements_2026")
    error = refused(conn, "DROP TABLE measurements", "MG003")
    assert "dropping public.measurements (~2,000 rows" in error.diag.message_primary, error.diag.message_primary
    assert count(conn, "SELECT count(*) FROM measurements") == ROWS
    with conn.transaction():
        conn.execute(f"SET LOCAL pg_migrate.allow = 'drop_table: {REASON}'")
        conn.execute("DROP TABLE measurements CASCADE")
    assert [rule for rule, *_ in logged(conn)] == ["drop_table"]


# --- what is let through --------------------------------------------------------

def test_empty_tables_and_columns_are_let_through(conn):
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.empty (id bigint)")
    conn.execute("CREATE TYPE mood AS ENUM ('happy')")
    conn.execute("CREATE TABLE moods (id bigint, mood mood)")
    conn.execute("DROP SCHEMA app CASCADE")
    conn.execute("DROP TYPE mood CASCADE")
    assert scalar(conn, "SELECT to_regnamespace('app') IS NULL AND to_regtype('mood') IS NULL")
    assert logged(conn) == []


def test_temporary_tables_are_let_through(conn):
    conn.execute("CREATE TYPE mood AS ENUM ('happy')")
    conn.execute("CREATE TEMP TABLE moods (id bigint, mood mood)")
    fill(conn, "moods", "'happy'")
    conn.execute("DROP TYPE mood CASCADE")
    conn.execute("CREATE FUNCTION twice(integer) RETURNS integer IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2'")
    conn.execute("CREATE TYPE shape AS (w integer)")
    conn.execute("CREATE TEMP TABLE shapes OF shape")
    conn.execute(f"INSERT INTO shapes SELECT g FROM generate_series(1, {ROWS}) g")
    conn.execute("DROP TYPE shape CASCADE")
    assert scalar(conn, "SELECT to_regclass('pg_temp.shapes') IS NULL")


def test_tables_created_in_the_same_transaction_are_let_through(conn):
    with conn.transaction():
        conn.execute("CREATE SCHEMA scratch")
        conn.execute("CREATE TABLE scratch.t (id bigint PRIMARY KEY)")
        conn.execute(f"INSERT INTO scratch.t SELECT g FROM generate_series(1, {ROWS}) g")
        conn.execute("ALTER TABLE scratch.t ADD COLUMN note text")  # a second version of its pg_class row
        conn.execute("CREATE TYPE scratch.kind AS ENUM ('a')")
        conn.execute("CREATE TABLE scratch_kinds (id bigint, kind scratch.kind)")
        conn.execute(f"INSERT INTO scratch_kinds SELECT g, 'a' FROM generate_series(1, {ROWS}) g")
        conn.execute("DROP SCHEMA scratch CASCADE")
    assert scalar(conn, "SELECT to_regnamespace('scratch') IS NULL")
    assert logged(conn) == []


def test_a_table_altered_in_this_transaction_is_still_guarded(conn):
    """The pg_class row's newest version is this transaction's after an ALTER;
    the table is still everyone's."""
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.orders (id bigint PRIMARY KEY)")
    conn.execute(f"INSERT INTO app.orders SELECT g FROM generate_series(1, {ROWS}) g")
    with pytest.raises(psycopg.Error) as caught:
        with conn.transaction():
            conn.execute("ALTER TABLE app.orders ADD COLUMN note text")
            conn.execute("DROP SCHEMA app CASCADE")
    assert caught.value.sqlstate == "MG012"
    assert count(conn, "SELECT count(*) FROM app.orders") == ROWS


def test_restrict_fails_on_its_own(conn):
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.orders (id bigint)")
    conn.execute(f"INSERT INTO app.orders SELECT g FROM generate_series(1, {ROWS}) g")
    conn.execute("CREATE TYPE mood AS ENUM ('happy')")
    conn.execute("CREATE TABLE people (id bigint, mood mood)")
    conn.execute(f"INSERT INTO people SELECT g, 'happy' FROM generate_series(1, {ROWS}) g")
    refused(conn, "DROP SCHEMA app", "2BP01")
    refused(conn, "DROP TYPE mood RESTRICT", "2BP01")
    assert count(conn, "SELECT count(*) FROM app.orders") == ROWS


def test_defaults_indexes_views_and_sequences_are_not_data(conn):
    conn.execute("CREATE FUNCTION seven() RETURNS integer IMMUTABLE LANGUAGE sql AS 'SELECT 7'")
    conn.execute("CREATE SEQUENCE ticket_seq")
    conn.execute("CREATE TABLE tickets (id bigint DEFAULT nextval('ticket_seq'), n integer DEFAULT seven(), label text)")
    conn.execute(f"INSERT INTO tickets (label) SELECT 'l' || g FROM generate_series(1, {ROWS}) g")
    conn.execute("CREATE INDEX CONCURRENTLY tickets_seven_idx ON tickets ((n + seven()))")
    conn.execute("CREATE VIEW seven_tickets AS SELECT * FROM tickets WHERE n = seven()")
    conn.execute("CREATE MATERIALIZED VIEW ticket_labels AS SELECT label FROM tickets")
    conn.execute("DROP FUNCTION seven() CASCADE")  # a default, an index, a view
    conn.execute("DROP SEQUENCE ticket_seq CASCADE")  # a default
    conn.execute("DROP MATERIALIZED VIEW ticket_labels")  # derived data, rebuilt by its query
    assert count(conn, "SELECT count(n) FROM tickets") == ROWS
    conn.execute("CREATE UNIQUE INDEX CONCURRENTLY tickets_label_key ON tickets (label)")
    conn.execute("ALTER TABLE tickets ADD CONSTRAINT tickets_label_key UNIQUE USING INDEX tickets_label_key")
    conn.execute("CREATE TABLE ticket_notes (ticket text REFERENCES tickets (label), note text)")
    conn.execute("ALTER TABLE tickets DROP CONSTRAINT tickets_label_key CASCADE")  # an index and a foreign key
    assert logged(conn) == []


# --- acknowledged, audited, warn mode ---------------------------------------------

def test_acknowledged_cascade_is_allowed_and_audited(conn):
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.orders (id bigint)")
    conn.execute(f"INSERT INTO app.orders SELECT g FROM generate_series(1, {ROWS}) g")
    conn.execute("CREATE TYPE app.mood AS ENUM ('happy')")
    conn.execute("CREATE TABLE people (id bigint, mood app.mood)")
    conn.execute(f"INSERT INTO people SELECT g, 'happy' FROM generate_series(1, {ROWS}) g")
    with pytest.raises(psycopg.Error) as caught:  # acknowledging one finding leaves the other
        with conn.transaction():
            conn.execute(f"SET LOCAL pg_migrate.allow = 'cascade_drop_table: {REASON}'")
            conn.execute("DROP SCHEMA app CASCADE")
    assert caught.value.sqlstate == "MG013"
    assert logged(conn) == []  # the audit row went with the refused transaction
    with conn.transaction():
        conn.execute(f"SET LOCAL pg_migrate.allow = 'cascade_drop_table: {REASON}; cascade_drop_column: {REASON}'")
        conn.execute("DROP SCHEMA app CASCADE")
    assert scalar(conn, "SELECT to_regnamespace('app') IS NULL")
    assert logged(conn) == [("cascade_drop_table", "MG012", REASON, "setting"),
                            ("cascade_drop_column", "MG013", REASON, "setting")]
    assert scalar(conn, "SELECT statement FROM migrate.guard_log ORDER BY log_id LIMIT 1") == "DROP SCHEMA app CASCADE"


def test_a_revision_allow_line_acknowledges(conn):
    conn.execute("CREATE TYPE mood AS ENUM ('happy')")
    conn.execute("CREATE TABLE people (id bigint, mood mood)")
    conn.execute(f"INSERT INTO people SELECT g, 'happy' FROM generate_series(1, {ROWS}) g")
    load(conn, revision("cascade00001", "DROP TYPE mood CASCADE;", "SELECT 1;",
                        extra=f"-- Allow: cascade_drop_column {REASON}"))
    conn.execute("SELECT * FROM migrate_upgrade('head')")
    assert scalar(conn, "SELECT to_regtype('mood') IS NULL")
    assert conn.execute("SELECT rule, reason, revision_id, source FROM migrate.guard_log").fetchall() == [
        ("cascade_drop_column", REASON, "cascade00001", "revision")]


def test_a_plan_step_allow_line_acknowledges(db, conn):
    """A non-transactional revision's statements run one by one from psql's
    \\gexec; its Allow line covers them at the sql_drop event too."""
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.orders (id bigint)")
    conn.execute(f"INSERT INTO app.orders SELECT g FROM generate_series(1, {ROWS}) g")
    load(conn, revision("cascade00003", "DROP SCHEMA app CASCADE;", "SELECT 1;", transactional=False,
                        extra=f"-- Allow: cascade_drop_table {REASON}"))
    psql(db, "SELECT * FROM migrate_plan('head') \\gexec")
    assert scalar(conn, "SELECT to_regnamespace('app') IS NULL")
    assert conn.execute("SELECT rule, reason, revision_id, source FROM migrate.guard_log").fetchall() == [
        ("cascade_drop_table", REASON, "cascade00003", "revision")]


def test_a_revision_without_the_allow_line_is_refused(conn):
    conn.execute("CREATE TYPE mood AS ENUM ('happy')")
    conn.execute("CREATE TABLE people (id bigint, mood mood)")
    conn.execute(f"INSERT INTO people SELECT g, 'happy' FROM generate_series(1, {ROWS}) g")
    load(conn, revision("cascade00002", "DROP TYPE mood CASCADE;", "SELECT 1;"))
    refused(conn, "SELECT * FROM migrate_upgrade('head')", "MG013")
    assert count(conn, "SELECT count(mood) FROM people") == ROWS


def test_warn_mode_and_levels(conn):
    conn.execute("CREATE TYPE mood AS ENUM ('happy')")
    conn.execute("CREATE TABLE people (id bigint, mood mood)")
    conn.execute(f"INSERT INTO people SELECT g, 'happy' FROM generate_series(1, {ROWS}) g")
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.orders (id bigint)")
    conn.execute(f"INSERT INTO app.orders SELECT g FROM generate_series(1, {ROWS}) g")
    seen = []
    conn.add_notice_handler(lambda diag: seen.append(diag.sqlstate))
    conn.execute("SET pg_migrate.guard_levels = 'cascade_drop_table=warning'")
    refused(conn, "DROP TYPE mood CASCADE", "MG013")
    conn.execute("DROP SCHEMA app CASCADE")
    assert "MG012" in seen
    conn.execute("SET pg_migrate.guard = 'warn'")
    conn.execute("DROP TYPE mood CASCADE")
    assert "MG013" in seen


def test_a_table_created_after_a_repeatable_read_snapshot_is_still_guarded(db, conn):
    """The command's snapshot never saw the table, but DROP SCHEMA drops it: its
    size comes from the catalog row the command deleted."""
    conn.execute("CREATE SCHEMA app")
    old = connect(db, autocommit=False)
    old.execute("SET lock_timeout = '5s'")
    old.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    old.execute("SELECT 1")  # the transaction's snapshot
    conn.execute("CREATE TABLE app.late (id bigint)")
    conn.execute(f"INSERT INTO app.late SELECT g FROM generate_series(1, {ROWS}) g")
    conn.execute("ANALYZE app.late")
    with pytest.raises(psycopg.Error) as caught:
        old.execute("DROP SCHEMA app CASCADE")
    assert caught.value.sqlstate == "MG012", caught.value
    assert "app.late (~2,000 rows" in caught.value.diag.message_primary
    old.rollback()
    old.close()
    assert count(conn, "SELECT count(*) FROM app.late") == ROWS
