"""With shared_preload_libraries = 'pg_migrate', the guard also sees TRUNCATE and
REINDEX, which fire no event trigger in PostgreSQL 15. A cluster of its own,
started here with the preload, runs these tests."""

import subprocess

import psycopg
import pytest

from conftest import PORT, ROOT, refused

PRELOAD_PORT = PORT + 20
CLUSTER = str(ROOT / "scripts/cluster.sh")


@pytest.fixture(scope="module")
def cluster():
    subprocess.run([CLUSTER, "start", "preload", str(PRELOAD_PORT), "shared_preload_libraries=pg_migrate"], check=True)
    try:
        yield
    finally:
        subprocess.run([CLUSTER, "stop", "preload"], check=False)


def connect(dbname="postgres"):
    return psycopg.connect(f"host=127.0.0.1 port={PRELOAD_PORT} user=postgres dbname={dbname} "
                           "options='-c lock_timeout=5s'", autocommit=True)


@pytest.fixture
def conn(cluster):
    with connect() as admin:
        admin.execute("DROP DATABASE IF EXISTS preload WITH (FORCE)")
        admin.execute("CREATE DATABASE preload")
    c = connect("preload")
    c.execute("CREATE EXTENSION pg_migrate")
    c.execute("SET pg_migrate.guard_min_rows = 1000")
    c.execute("CREATE TABLE users (id bigint CONSTRAINT users_pkey PRIMARY KEY, email text)")
    c.execute("INSERT INTO users SELECT g, 'e' || g FROM generate_series(1, 3000) g")
    c.execute("CREATE INDEX CONCURRENTLY users_email_idx ON users (email)")
    c.execute("ANALYZE users")
    yield c
    c.close()


def count(conn, sql):
    return conn.execute(sql).fetchone()[0]


def test_truncate_of_a_table_with_rows_is_refused(conn):
    error = refused(conn, "TRUNCATE users", "MG004")
    assert "truncating public.users" in error.diag.message_primary and "[truncate]" in error.diag.message_primary
    assert "SET LOCAL pg_migrate.allow = 'truncate: <reason>'" in error.diag.message_hint
    assert count(conn, "SELECT count(*) FROM users") == 3000
    # Inside a function, too.
    refused(conn, "DO $$ BEGIN TRUNCATE users; END $$", "MG004")
    assert count(conn, "SELECT count(*) FROM users") == 3000


def test_truncate_acknowledged_runs_and_is_audited(conn):
    with conn.transaction():
        conn.execute("SET LOCAL pg_migrate.allow = 'truncate: reloading staging copy'")
        conn.execute("TRUNCATE users")
    assert count(conn, "SELECT count(*) FROM users") == 0
    assert conn.execute("SELECT rule, reason FROM migrate.guard_log").fetchall() == [("truncate", "reloading staging copy")]


def test_truncate_warn_mode_and_new_tables_pass(conn):
    with conn.transaction():
        conn.execute("CREATE TABLE fresh (id int)")
        conn.execute("INSERT INTO fresh SELECT generate_series(1, 10)")
        conn.execute("TRUNCATE fresh")  # created in this transaction: nobody else can see it
    seen = []
    conn.add_notice_handler(lambda diag: seen.append(diag.sqlstate))
    conn.execute("SET pg_migrate.guard = warn")
    conn.execute("TRUNCATE users")
    assert seen == ["MG004"]
    assert count(conn, "SELECT count(*) FROM users") == 0


def test_statement_errors_keep_their_own_sqlstate(conn):
    refused(conn, "TRUNCATE no_such_table", "42P01")
    refused(conn, "REINDEX INDEX no_such_index", "42P01")


def test_reindex_without_concurrently_is_refused(conn):
    error = refused(conn, "REINDEX TABLE users", "MG005")
    assert "CONCURRENTLY" in error.diag.message_hint
    refused(conn, "REINDEX INDEX users_email_idx", "MG005")
    conn.execute("REINDEX INDEX CONCURRENTLY users_email_idx")
    conn.execute("REINDEX TABLE CONCURRENTLY users")


def test_reindex_of_a_schema_or_database_names_its_largest_table(conn):
    error = refused(conn, "REINDEX SCHEMA public", "MG005")
    assert "public.users" in error.diag.message_primary
    assert error.diag.message_hint.startswith("REINDEX SCHEMA CONCURRENTLY public;")
    error = refused(conn, "REINDEX DATABASE preload", "MG005")
    assert error.diag.message_hint.startswith("REINDEX DATABASE CONCURRENTLY preload;")
    conn.execute("REINDEX SCHEMA CONCURRENTLY public")
    conn.execute("CREATE SCHEMA small")
    conn.execute("CREATE TABLE small.t AS SELECT 1 AS id")
    conn.execute("REINDEX SCHEMA small")  # nothing large in it
    conn.execute("REINDEX SYSTEM preload")  # no CONCURRENTLY form exists: not checked


def test_databases_without_the_extension_are_not_guarded(cluster):
    with connect() as admin:
        admin.execute("DROP DATABASE IF EXISTS plain WITH (FORCE)")
        admin.execute("CREATE DATABASE plain")
    with connect("plain") as plain:
        plain.execute("CREATE TABLE t AS SELECT generate_series(1, 5000) AS id")
        plain.execute("TRUNCATE t")
        assert count(plain, "SELECT count(*) FROM t") == 0
