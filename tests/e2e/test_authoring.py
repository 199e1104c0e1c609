"""Writing revisions from psql (issue 12): the file saved on the DBA's machine in
one psql line, ranges made into offline scripts from the graph alone (no lock, no
applied state) and run on another database."""

import os
import subprocess
import tempfile

import psycopg

from conftest import PORT, ROOT, SESSION_OPTIONS, applied, connect, load, psql, refused, revision, scalar

SAVE_LINE = "\\o :file_name \\qecho -n :source \\o\n"


def psql_in(folder, dbname, script):
    """psql run from `folder`, as a DBA at a terminal in their migrations folder."""
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", "-d", dbname]
    env = dict(os.environ, PGOPTIONS=SESSION_OPTIONS)
    result = subprocess.run(args, input=script, capture_output=True, text=True, timeout=120, env=env, cwd=folder)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def chain(conn):
    load(conn,
         revision("aaaa00000001", "CREATE TABLE a1 (id int);", "DROP TABLE a1;"),
         revision("aaaa00000002", "CREATE TABLE a2 (id int);", "DROP TABLE a2;", revises="aaaa00000001"),
         revision("aaaa00000003", "CREATE TABLE a3 (id int);", "DROP TABLE a3;", revises="aaaa00000002"))


def test_one_psql_line_saves_the_file_exactly(db):
    with connect(db) as conn:
        chain(conn)
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o777)
        # A message and SQL with quotes, a backslash, a colon and psql-looking text.
        psql_in(folder, db, "SELECT file_name, source FROM migrate_revision("
                "'Add O''Brien''s \\ prefs: really', "
                "$$CREATE TABLE prefs (note text DEFAULT E'a\\\\b :x');\n\n-- \\o nothing$$, "
                "$$DROP TABLE prefs;$$) \\gset\n" + SAVE_LINE)
        [name] = os.listdir(folder)
        with open(os.path.join(folder, name)) as f:
            saved = f.read()
    with connect(db) as conn:
        stored = scalar(conn, "SELECT source FROM migrate.revisions WHERE source_file = %s", (name,))
        assert saved == stored
        assert "O'Brien's \\ prefs: really" in saved and "-- \\o nothing" in saved
        events = scalar(conn, "SELECT count(*) FROM migrate.events")
        conn.execute("SELECT migrate_load(%s, %s)", (saved, name))
        assert scalar(conn, "SELECT count(*) FROM migrate.events") == events, "the saved file loads as unchanged"


def test_a_merge_is_saved_the_same_way(db):
    with connect(db) as conn:
        chain(conn)
        load(conn, revision("bbbb00000001", "SELECT 1;", "SELECT 1;", revises="aaaa00000001"))
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o777)
        psql_in(folder, db, "SELECT file_name, source FROM migrate_merge('heads', 'join the lines') \\gset\n" + SAVE_LINE)
        [name] = os.listdir(folder)
        assert name.endswith("_join_the_lines.sql")
        with open(os.path.join(folder, name)) as f:
            saved = f.read()
    assert "-- Revises: aaaa00000003, bbbb00000001\n" in saved
    with connect(db) as conn:
        assert scalar(conn, "SELECT count(*) FROM migrate_heads()") == 1
        assert saved == scalar(conn, "SELECT source FROM migrate.revisions WHERE source_file = %s", (name,))


def test_a_range_script_needs_no_lock_and_serves_another_database(db):
    with connect(db) as conn:
        chain(conn)
        conn.execute("SELECT * FROM migrate_upgrade('head')")
    holder = connect(db)
    try:
        holder.execute("SELECT migrate.lock()")
        with connect(db) as conn:
            conn.execute("SET lock_timeout = '200ms'")
            # The lock is real: an upgrade gives up on it...
            refused(conn, "SELECT * FROM migrate_upgrade('head')", "55P03")
            # ...but a range script is made from the graph alone.
            script = scalar(conn, "SELECT migrate_sql('aaaa00000001:head')")
            down = scalar(conn, "SELECT migrate_sql('head:aaaa00000001', 'downgrade')")
    finally:
        holder.close()
    assert "(2 revisions)" in script and "(2 revisions)" in down

    # A second database, at aaaa00000001, that the first one never sees.
    other = f"{db}_other"
    with psycopg.connect(f"host=127.0.0.1 port={PORT} user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{other}"')
    try:
        with connect(other) as conn:
            conn.execute("CREATE EXTENSION pg_migrate")
            chain(conn)
            conn.execute("SELECT * FROM migrate_upgrade('aaaa00000001')")
        psql(other, script)
        with connect(other) as conn:
            assert applied(conn) == {"aaaa00000001", "aaaa00000002", "aaaa00000003"}
            assert scalar(conn, "SELECT count(*) FROM pg_class WHERE relname IN ('a2', 'a3')") == 2
        psql(other, down)
        with connect(other) as conn:
            assert applied(conn) == {"aaaa00000001"}
        # Run where the state is not what the range assumed, it applies nothing.
        result = psql(other, down, check=False)
        assert result.returncode != 0 and "is not applied" in result.stderr, result.stderr
        with connect(other) as conn:
            assert applied(conn) == {"aaaa00000001"}
    finally:
        with psycopg.connect(f"host=127.0.0.1 port={PORT} user=postgres dbname=postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{other}" WITH (FORCE)')


def test_revisions_written_by_two_sessions_are_two_heads_never_one_id(db):
    with connect(db) as conn:
        chain(conn)
    first, second = connect(db, autocommit=False), connect(db)
    try:
        one = first.execute("SELECT revision FROM migrate_revision('one')").fetchone()[0]
        # The second waits for the first's migration lock, then sees its revision.
        second.execute("SET lock_timeout = '200ms'")
        refused(second, "SELECT * FROM migrate_revision('two')", "55P03")
        first.commit()
        two = second.execute("SELECT source FROM migrate_revision('two')").fetchone()[0]
        assert f"-- Revises: {one}\n" in two
    finally:
        first.close()
        second.close()
