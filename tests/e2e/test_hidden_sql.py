"""Header values cannot smuggle SQL into generated plans and scripts (issue 9, part 6).

A bare carriage return ends a `--` comment for the server's lexer, so a message
"x\\rCREATE TABLE ..." written into the `-- Running upgrade ...` comment of a plan
would run as SQL when psql executes the plan or the offline script."""

import os
import subprocess

import psycopg
import pytest

from conftest import PORT, SESSION_OPTIONS, applied, connect, load, psql, revision, scalar

SMUGGLED = "x\rCREATE TABLE smuggled (id int);"


def load_error(conn, text, file_name):
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT migrate_load(%s, %s)", (text, file_name))
    return caught.value


def test_control_characters_in_the_header_are_refused_with_file_and_line(db):
    with connect(db) as conn:
        text = f"-- {SMUGGLED}\n-- Revision ID: cccc00000001\n\n-- migrate:upgrade\nSELECT 1;\n"
        error = load_error(conn, text, "evil.sql")
        assert error.sqlstate == "22023", error
        assert "evil.sql" in error.diag.message_primary and "line 1" in error.diag.message_primary, error
        for bad in ["\x1b", "\x7f", "\x0b"]:
            text = f"-- message\n-- Revision ID: cccc00000001\n-- Create Date: 2026{bad}\n\n-- migrate:upgrade\nSELECT 1;\n"
            error = load_error(conn, text, "evil.sql")
            assert error.sqlstate == "22023" and "line 3" in error.diag.message_primary, (repr(bad), error)
        assert scalar(conn, "SELECT count(*) FROM migrate.revisions") == 0


def test_crlf_files_still_load_and_run(db):
    with connect(db) as conn:
        text = revision("cccc00000002", "CREATE TABLE crlf (id int);", "DROP TABLE crlf;", message="line endings\tfrom Windows")
        load(conn, text.replace("\n", "\r\n"))
        assert scalar(conn, "SELECT message FROM migrate.revisions") == "line endings\tfrom Windows"
        conn.execute("SELECT * FROM migrate_upgrade('head')")
        assert scalar(conn, "SELECT to_regclass('crlf') IS NOT NULL")


def smuggle_into_stored_messages(conn):
    """What a database loaded before the parser refused control characters may hold."""
    conn.execute("UPDATE migrate.revisions SET message = %s", (SMUGGLED,))


def load_pair(conn):
    load(conn,
         revision("cccc00000003", "CREATE TABLE plain (id int);", "DROP TABLE plain;"),
         revision("cccc00000004", "CREATE INDEX CONCURRENTLY plain_id ON plain (id);",
                  "DROP INDEX CONCURRENTLY plain_id;", revises="cccc00000003", transactional=False))
    smuggle_into_stored_messages(conn)


def test_a_message_cannot_run_sql_through_the_plan(db):
    with connect(db) as conn:
        load_pair(conn)
    result = psql(db, "SELECT * FROM migrate_plan('head') \\gexec\n", check=False)
    with connect(db) as conn:
        assert scalar(conn, "SELECT to_regclass('smuggled') IS NULL"), "the message ran as SQL"
        assert result.returncode == 0, result.stderr
        assert applied(conn) == {"cccc00000003", "cccc00000004"}
    psql(db, "SELECT * FROM migrate_plan('base', 'downgrade') \\gexec\n")
    with connect(db) as conn:
        assert scalar(conn, "SELECT to_regclass('smuggled') IS NULL"), "the message ran as SQL"
        assert applied(conn) == set()


def test_a_message_cannot_run_sql_through_the_offline_script(db):
    with connect(db) as conn:
        load_pair(conn)
        script = scalar(conn, "SELECT migrate_sql('head')")
    result = psql(db, script, check=False)
    with connect(db) as conn:
        assert scalar(conn, "SELECT to_regclass('smuggled') IS NULL"), "the message ran as SQL"
        assert result.returncode == 0, result.stderr
        assert "\r" not in script
        assert applied(conn) == {"cccc00000003", "cccc00000004"}


def test_a_merge_message_with_control_characters_is_made_safe(db):
    with connect(db) as conn:
        load(conn,
             revision("cccc00000005", "SELECT 1;"),
             revision("cccc00000006", "SELECT 1;", revises="cccc00000005"),
             revision("cccc00000007", "SELECT 1;", revises="cccc00000005"))
        merge = scalar(conn, "SELECT revision FROM migrate_merge(ARRAY['cccc00000006', 'cccc00000007'], %s)", (SMUGGLED,))
        message = scalar(conn, "SELECT message FROM migrate.revisions WHERE revision_id = %s", (merge,))
        assert "\r" not in message and "CREATE TABLE smuggled" in message
