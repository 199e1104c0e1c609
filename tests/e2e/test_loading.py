"""Loading migration files from the server's disk and from the client's."""

import subprocess

import psycopg
import pytest

from conftest import MIGRATIONS, ROOT, connect, psql, scalar


def test_local_loader_script_needs_only_psql(db):
    script = subprocess.run([str(ROOT / "scripts/migrate-load-local"), str(MIGRATIONS)],
                            capture_output=True, text=True, check=True).stdout
    psql(db, script)
    conn = connect(db)
    assert scalar(conn, "SELECT count(*) FROM migrate.revisions") == 15
    # Byte for byte what is on disk: the same checksums as the server-side loader.
    local = dict(conn.execute("SELECT revision_id, checksum FROM migrate.revisions").fetchall())
    conn.execute("DELETE FROM migrate.revisions")
    conn.execute("SELECT * FROM migrate_load_dir(%s)", (str(MIGRATIONS),))
    server = dict(conn.execute("SELECT revision_id, checksum FROM migrate.revisions").fetchall())
    assert local == server


def test_local_loader_quotes_files_that_hold_its_tag(db, tmp_path):
    """Files holding "$pgm$", or ending in "$pgm", get another tag; a directory
    named *.sql is skipped. The text loads byte for byte."""
    head = "-- {m}\n--\n-- Revision ID: {id}\n-- Revises: {parent}\n\n-- migrate:upgrade\n"
    texts = {
        "a1.sql": head.format(m="plain", id="ta0000000001", parent="") + "CREATE TABLE tag_a (id int);\n",
        "a2.sql": head.format(m="holds $pgm$ and $pgm1$", id="ta0000000002", parent="ta0000000001")
        + "CREATE TABLE tag_b (id int); -- $pgm$ DROP TABLE tag_a; $pgm1$\n",
        "a3.sql": head.format(m="ends in the tag", id="ta0000000003", parent="ta0000000002")
        + "CREATE TABLE tag_c (id int); -- $pgm",
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "dir.sql").mkdir()
    script = subprocess.run([str(ROOT / "scripts/migrate-load-local"), str(tmp_path)],
                            capture_output=True, text=True, check=True).stdout
    assert "SELECT migrate_load($pgm2$" in script and "SELECT migrate_load($pgm1$" in script
    psql(db, script)
    conn = connect(db)
    stored = dict(conn.execute("SELECT source_file, source FROM migrate.revisions").fetchall())
    assert stored == texts


def test_reloading_the_same_directory_changes_nothing(db):
    conn = connect(db)
    conn.execute("SELECT * FROM migrate_load_dir(%s)", (str(MIGRATIONS),))
    statuses = {r[0] for r in conn.execute("SELECT status FROM migrate_load_dir(%s)", (str(MIGRATIONS),))}
    assert statuses == {"unchanged"}
    assert scalar(conn, "SELECT count(*) FROM migrate.events WHERE action = 'load'") == 15


def test_load_dir_needs_server_file_access(db):
    conn = connect(db)
    conn.execute("DROP ROLE IF EXISTS app_deployer")
    conn.execute("CREATE ROLE app_deployer")
    try:
        conn.execute("SET ROLE app_deployer")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute("SELECT * FROM migrate_load_dir(%s)", (str(MIGRATIONS),))
        assert "migrate-load-local" in caught.value.diag.message_hint
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP ROLE app_deployer")
