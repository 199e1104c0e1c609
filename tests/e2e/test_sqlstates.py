"""Errors raised inside revisions reach the client with their own SQLSTATE."""

from conftest import connect, load, psql, refused, revision, scalar


def test_errors_inside_revisions_keep_their_own_sqlstate(db):
    """pgrx knows only PostgreSQL's own SQLSTATEs; a user's own code raised inside a
    revision still reaches the client, through upgrade, downgrade and the plan."""
    raise_custom = "DO $$ BEGIN RAISE EXCEPTION 'ledger is not balanced' USING ERRCODE = 'AB123'; END $$;"
    with connect(db) as conn:
        load(conn, revision("ffff00000001", "CREATE TABLE ledger (id int);", "DROP TABLE ledger;"),
             revision("ffff00000002", raise_custom, revises="ffff00000001"))
        error = refused(conn, "SELECT * FROM migrate_upgrade('head')", "AB123")
        assert "ffff00000002" in error.diag.message_primary and "ledger is not balanced" in error.diag.message_primary
        assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 0
        refused(conn, "SELECT * FROM migrate_upgrade('head')", "AB123")  # and again: nothing stale is left
        load(conn, revision("ffff00000002", "SELECT 1;", raise_custom, revises="ffff00000001"))
        conn.execute("SELECT * FROM migrate_upgrade('head')")
        refused(conn, "SELECT * FROM migrate_downgrade('base')", "AB123")
        conn.execute("SELECT * FROM migrate_downgrade('ffff00000002')")
        # Built-in codes pass as they are.
        load(conn, revision("ffff00000003", "INSERT INTO ledger VALUES ('x');", revises="ffff00000002"))
        refused(conn, "SELECT * FROM migrate_upgrade('head')", "22P02")
        load(conn, revision("ffff00000003", raise_custom, revises="ffff00000002"))
    result = psql(db, "\\set VERBOSITY verbose\nSELECT * FROM migrate_plan('head') \\gexec\n", check=False)
    assert result.returncode != 0 and "ERROR:  AB123:" in result.stderr, result.stderr
