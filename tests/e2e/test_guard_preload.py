"""With shared_preload_libraries = 'pg_migrate', the guard also sees TRUNCATE and
REINDEX, which fire no event trigger in PostgreSQL 15. A cluster of its own,
started here with the preload, runs these tests."""

import os
import subprocess

import psycopg
import pytest

from conftest import PORT, ROOT, load, refused, revision

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


# Issue 10: VACUUM FULL and CLUSTER copy the table under ACCESS EXCLUSIVE and
# fire no event trigger; the hook checks them.

def test_vacuum_full_is_refused_plain_vacuum_and_analyze_are_not(conn):
    error = refused(conn, "VACUUM FULL users", "MG020")
    assert "VACUUM FULL rewrites public.users (~3,000 rows" in error.diag.message_primary
    assert "[table_copy]" in error.diag.message_primary
    assert error.diag.message_hint.startswith("VACUUM public.users;")
    # It cannot run in a transaction block: the HINT offers no BEGIN; SET LOCAL.
    assert "cannot run inside a transaction block" in error.diag.message_hint
    assert "BEGIN;" not in error.diag.message_hint
    refused(conn, "VACUUM (FULL, VERBOSE false) users", "MG020")
    refused(conn, "VACUUM FULL", "MG020")  # the whole database: the largest table is named
    conn.execute("VACUUM (FULL false) users")
    conn.execute("VACUUM (FULL 0) users")
    refused(conn, "VACUUM (FULL maybe) users", "42601")  # VACUUM's own error, not a crash in the hook
    conn.execute("VACUUM users")
    conn.execute("VACUUM ANALYZE users")
    conn.execute("ANALYZE users")
    conn.execute("CREATE TABLE small AS SELECT 1 AS id")
    conn.execute("VACUUM FULL small")


def test_vacuum_full_through_the_hints_way_around(conn):
    # The HINT's superuser way: the rule at warning for the session.
    seen = []
    conn.add_notice_handler(lambda diag: seen.append(diag.sqlstate))
    conn.execute("SET pg_migrate.guard_levels = 'table_copy=warning'")
    conn.execute("VACUUM FULL users")
    conn.execute("RESET pg_migrate.guard_levels")
    assert seen == ["MG020"]


def test_cluster_is_refused_and_can_be_acknowledged(conn):
    error = refused(conn, "CLUSTER users USING users_pkey", "MG020")
    assert "CLUSTER rewrites public.users" in error.diag.message_primary
    assert "CLUSTER public.users USING users_pkey" in error.diag.message_hint
    with conn.transaction():
        conn.execute("SET LOCAL pg_migrate.allow = 'table_copy: reordered in the maintenance window'")
        conn.execute("CLUSTER users USING users_pkey")
    assert conn.execute("SELECT rule, reason FROM migrate.guard_log").fetchall() == [
        ("table_copy", "reordered in the maintenance window")]
    # Now users is clustered: a bare CLUSTER would redo it.
    refused(conn, "CLUSTER", "MG020")
    with conn.transaction():
        conn.execute("CREATE TABLE fresh (id int PRIMARY KEY)")
        conn.execute("INSERT INTO fresh SELECT generate_series(1, 5000)")
        conn.execute("CLUSTER fresh USING fresh_pkey")  # created in this transaction


def test_replica_role_does_not_turn_the_guard_off(conn):
    """session_replication_role = replica skips every event trigger; with the
    preload the hook runs their checks instead (once, not twice)."""
    conn.execute("SET session_replication_role = replica")
    refused(conn, "ALTER TABLE users DROP COLUMN email", "MG002")
    refused(conn, "CREATE INDEX users_id_idx ON users (id)", "MG005")
    refused(conn, "DROP TABLE users", "MG003")
    conn.execute("CREATE TABLE empty (id int)")
    conn.execute("CREATE INDEX empty_id_idx ON empty (id)")
    conn.execute("DROP TABLE empty")
    for role in ("replica", "origin"):
        seen = []
        handler = lambda diag, seen=seen: seen.append(diag.sqlstate)  # noqa: E731
        conn.add_notice_handler(handler)
        conn.execute(f"SET session_replication_role = {role}")
        conn.execute("SET pg_migrate.guard = warn")
        conn.execute("CREATE INDEX users_id_idx ON users (id)")
        conn.execute("RESET pg_migrate.guard")
        conn.execute("SET pg_migrate.guard = off")
        conn.execute("DROP INDEX users_id_idx")
        conn.execute("RESET pg_migrate.guard")
        conn.remove_notice_handler(handler)
        assert seen == ["MG005"], role


def preload_psql(dbname, script):
    env = dict(os.environ, PGOPTIONS="-c lock_timeout=5s -c pg_migrate.guard_min_rows=1000")
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PRELOAD_PORT),
                           "-U", "postgres", "-d", dbname], input=script, capture_output=True, text=True,
                          timeout=300, env=env)


def test_vacuum_full_acknowledged_by_a_non_transactional_revision(conn):
    """The way the HINT offers for a statement SET LOCAL cannot reach: a
    "Transactional: false" revision with an Allow line, applied by the plan."""
    plain = revision("ffff00000001", "VACUUM FULL users;", transactional=False)
    failed = preload_psql("preload", f"SELECT migrate_load($rev${plain}$rev$);\n"
                                     "SELECT * FROM migrate_plan('ffff00000001') \\gexec\n")
    assert failed.returncode != 0 and "[table_copy]" in failed.stderr, failed.stderr
    allowed = revision("ffff00000002", "VACUUM FULL users;", transactional=False,
                       extra="-- Allow: table_copy compacting after the purge, maintenance window")
    done = preload_psql("preload", f"SELECT migrate_load($rev${allowed}$rev$);\n"
                                   "SELECT * FROM migrate_plan('ffff00000002') \\gexec\n")
    assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT rule, reason, source, revision_id FROM migrate.guard_log").fetchall() == [
        ("table_copy", "compacting after the purge, maintenance window", "revision", "ffff00000002")]
