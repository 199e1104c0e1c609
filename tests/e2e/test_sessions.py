"""Several sessions at once, and a backend killed halfway through an upgrade."""

import threading
import time

import psycopg
import pytest

from conftest import applied, connect, load, revision, scalar

CHAIN = [
    revision("bbbb00000001", "CREATE TABLE t1 (id int);", "DROP TABLE t1;"),
    revision("bbbb00000002", "CREATE TABLE t2 (id int);", "DROP TABLE t2;", revises="bbbb00000001"),
    revision("bbbb00000003", "CREATE TABLE t3 (id int);", "DROP TABLE t3;", revises="bbbb00000002"),
]


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_second_session_fails_naming_the_holder(db):
    conn = connect(db)
    load(conn, *CHAIN)
    holder = connect(db, autocommit=False)
    holder_pid = scalar(holder, "SELECT pg_backend_pid()")
    holder.execute("SELECT * FROM migrate_upgrade('head')")  # transaction left open

    other = connect(db)
    other.execute("SET lock_timeout = '300ms'")
    with pytest.raises(psycopg.errors.LockNotAvailable) as caught:
        other.execute("SELECT * FROM migrate_upgrade('head')")
    assert f"pid {holder_pid}" in str(caught.value)
    assert "lock_timeout (300ms)" in caught.value.diag.message_detail
    holder.rollback()
    assert applied(conn) == set()


def test_waiting_session_applies_nothing_twice(db):
    conn = connect(db)
    load(conn, *CHAIN)
    holder = connect(db, autocommit=False)
    holder.execute("SELECT * FROM migrate_upgrade('head')")

    results = {}

    def second():
        with connect(db) as other:
            other.execute("SET lock_timeout = '60s'")
            results["rows"] = other.execute("SELECT * FROM migrate_upgrade('head')").fetchall()

    thread = threading.Thread(target=second)
    thread.start()
    wait_for(lambda: scalar(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") == 1)
    holder.commit()
    thread.join(60)
    assert results["rows"] == []
    assert applied(conn) == {"bbbb00000001", "bbbb00000002", "bbbb00000003"}
    per_revision = conn.execute(
        "SELECT revision_id, count(*) FROM migrate.events WHERE action = 'upgrade' GROUP BY 1").fetchall()
    assert sorted(per_revision) == [("bbbb00000001", 1), ("bbbb00000002", 1), ("bbbb00000003", 1)]


def test_killed_backend_leaves_consistent_state(db):
    conn = connect(db)
    slow = revision("bbbb00000002", "CREATE TABLE t2 (id int); SELECT pg_sleep(60);", "DROP TABLE t2;",
                    revises="bbbb00000001")
    load(conn, CHAIN[0], slow, CHAIN[2])

    victim = connect(db)
    victim_pid = scalar(victim, "SELECT pg_backend_pid()")
    errors = []

    def upgrade():
        try:
            victim.execute("SELECT * FROM migrate_upgrade('head')")
        except psycopg.Error as error:
            errors.append(error)

    thread = threading.Thread(target=upgrade)
    thread.start()
    wait_for(lambda: scalar(conn, "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (victim_pid,)) == "PgSleep")
    assert scalar(conn, "SELECT pg_terminate_backend(%s)", (victim_pid,))
    thread.join(30)
    assert errors, "the upgrade should have been cut off"

    # Nothing from the killed call survives: no tables, no bookkeeping, no lock.
    assert applied(conn) == set()
    assert scalar(conn, "SELECT count(*) FROM migrate.events WHERE action = 'upgrade'") == 0
    assert scalar(conn, "SELECT to_regclass('t1')") is None
    wait_for(lambda: scalar(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0)

    # The fixed revision (not applied, so it may be replaced) then goes through.
    load(conn, CHAIN[1])
    rows = conn.execute("SELECT revision FROM migrate_upgrade('head')").fetchall()
    assert [r[0] for r in rows] == ["bbbb00000001", "bbbb00000002", "bbbb00000003"]
    assert conn.execute("SELECT * FROM migrate_verify()").fetchall() == []


def test_lock_table_exhaustion_explains_the_way_out(db):
    """Thousands of revisions in one call can run out of lock slots
    (max_locks_per_transaction); the error says what to do instead."""
    conn = connect(db)
    sources = []
    for i in range(800):
        tables = "\n".join(f"CREATE TABLE lk_{i}_{j} (id int);" for j in range(10))
        sources.append(revision(f"lock{i:05d}", tables, "", revises=f"lock{i - 1:05d}" if i else ""))
    conn.execute("SELECT count(*) FROM (SELECT migrate_load(s) FROM unnest(%s::text[]) s) x", (sources,))
    with pytest.raises(psycopg.errors.OutOfMemory) as caught:
        conn.execute("SELECT count(*) FROM migrate_upgrade('head')")
    assert "out of shared memory" in str(caught.value)
    assert "migrate_plan()" in caught.value.diag.message_hint
    assert applied(conn) == set()
