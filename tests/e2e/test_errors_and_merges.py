"""Issue 9, part 4: real SQLSTATEs in migrate_test_roundtrip, refused merges, and
the append-only trigger naming its own table."""

from conftest import connect, load, refused, revision, scalar

RAISE_CUSTOM = "DO $$ BEGIN RAISE EXCEPTION 'ledger is not balanced' USING ERRCODE = 'AB123'; END $$;"


def roundtrip_failure(conn):
    rows = conn.execute("SELECT phase, revision, status, detail FROM migrate_test_roundtrip()").fetchall()
    failed = [row for row in rows if row[2] == "failed"]
    assert len(failed) == 1, rows
    return failed[0]


def test_roundtrip_reports_the_real_five_character_sqlstate(db):
    with connect(db) as conn:
        load(conn, revision("dddd00000001", "CREATE TABLE ledger (id int);", "DROP TABLE ledger;"),
             revision("dddd00000002", RAISE_CUSTOM, "SELECT 1;", revises="dddd00000001"))
        phase, rev, _, detail = roundtrip_failure(conn)
        assert (phase, rev) == ("upgrade", "dddd00000002")
        assert "ledger is not balanced" in detail and "(AB123)" in detail, detail
        assert "ERRCODE_" not in detail and "XX000" not in detail, detail
        # A code PostgreSQL knows is shown as its five characters too, not as a Rust name.
        load(conn, revision("dddd00000002", "CREATE TABLE ledger (id int);", "SELECT 1;", revises="dddd00000001"))
        _, _, _, detail = roundtrip_failure(conn)
        assert "(42P07)" in detail and "ERRCODE_" not in detail, detail
        assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 0


def test_roundtrip_honours_statement_timeout(db):
    """A cancel is not a failed revision: it ends the call (it used to become a row)."""
    with connect(db) as conn:
        load(conn, revision("dddd00000003", "SELECT pg_sleep(30);", "SELECT 1;"))
        conn.execute("SET statement_timeout = '200ms'")
        refused(conn, "SELECT * FROM migrate_test_roundtrip()", "57014")


def test_merge_refuses_a_revision_with_its_own_ancestor(db):
    with connect(db) as conn:
        load(conn, revision("dddd00000011", "SELECT 1;"),
             revision("dddd00000012", "SELECT 1;", revises="dddd00000011"),
             revision("dddd00000013", "SELECT 1;", revises="dddd00000011"))
        error = refused(conn, "SELECT revision FROM migrate_merge(ARRAY['dddd00000012', 'dddd00000011'])", "22023")
        assert "ancestor" in error.diag.message_primary, error
        assert scalar(conn, "SELECT count(*) FROM migrate.revisions") == 3


def test_merge_refuses_heads_that_are_already_merged(db):
    with connect(db) as conn:
        load(conn, revision("dddd00000021", "SELECT 1;"),
             revision("dddd00000022", "SELECT 1;", revises="dddd00000021"),
             revision("dddd00000023", "SELECT 1;", revises="dddd00000021"))
        merge = scalar(conn, "SELECT revision FROM migrate_merge(ARRAY['dddd00000022', 'dddd00000023'])")
        error = refused(conn, "SELECT revision FROM migrate_merge(ARRAY['dddd00000022', 'dddd00000023'])", "42710")
        assert "already merged" in error.diag.message_primary and merge in error.diag.message_primary, error
        assert scalar(conn, "SELECT count(*) FROM migrate.revisions") == 4


def test_guard_log_trigger_names_guard_log(db):
    with connect(db) as conn:
        conn.execute("""INSERT INTO migrate.guard_log (performed_by, session_role, rule, sqlstate, message, reason, source)
                        VALUES ('me', 'me', 'truncate', 'MG001', 'test', 'test', 'setting')""")
        error = refused(conn, "DELETE FROM migrate.guard_log", "42501")
        assert error.diag.message_primary == "migrate.guard_log is append-only", error
        assert "guard log" in error.diag.message_detail
        load(conn, revision("dddd00000031", "SELECT 1;"))  # a row in migrate.events
        error = refused(conn, "UPDATE migrate.events SET detail = 'x'", "42501")
        assert error.diag.message_primary == "migrate.events is append-only", error
