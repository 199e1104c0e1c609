"""Issue 9, part 5: long calls honour statement_timeout and pg_cancel_backend.

Before, migrate_load and migrate_guard_check recounted line numbers from the
start of the text for every statement and never checked for interrupts, so a
large input ran for minutes past any timeout and ignored cancels. No test here
times anything: each waits generously and asserts how the call ended."""

import threading
import time

import psycopg

from conftest import connect

# Generous: a linear call ends (or is cancelled) in seconds; the old quadratic
# one took minutes on inputs this size.
ENDS_WITHIN_SECONDS = 120
# How long migrate_load has run when the cancels start; the 1,000,000-statement file
# below keeps a linear load busy well past it.
CANCEL_AFTER_SECONDS = 0.5


def long_file(statements, rev_id="eeee00000001"):
    body = "\n".join(f"SELECT {i};" for i in range(statements))
    return f"-- many statements\n-- Revision ID: {rev_id}\n\n-- migrate:upgrade\n{body}\n"


def outcome_of(db, sql, params, setup=None, cancel_from_elsewhere=False):
    """Run `sql` in its own session; (sqlstate or None, finished in time)."""
    result = {}
    conn = connect(db)
    pid = conn.info.backend_pid
    for statement in setup or []:
        conn.execute(statement)

    def run():
        try:
            conn.execute(sql, params)
            result["sqlstate"] = None
        except psycopg.Error as error:
            result["sqlstate"] = error.sqlstate

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    if cancel_from_elsewhere:
        # Cancel once the call is well inside its work (a cancel that lands while the
        # server is still starting the query proves nothing), and again until it ends.
        with connect(db) as other:
            deadline = time.monotonic() + ENDS_WITHIN_SECONDS
            started = None
            while time.monotonic() < deadline and worker.is_alive():
                if started is None:
                    active = other.execute(
                        "SELECT state = 'active' AND query LIKE 'SELECT migrate_load%%' FROM pg_stat_activity WHERE pid = %s",
                        (pid,)).fetchone()
                    if active and active[0]:
                        started = time.monotonic()
                elif time.monotonic() - started > CANCEL_AFTER_SECONDS:
                    other.execute("SELECT pg_cancel_backend(%s)", (pid,))
                    worker.join(0.1)
                    continue
                time.sleep(0.01)
    worker.join(ENDS_WITHIN_SECONDS)
    finished = not worker.is_alive()
    if finished:
        conn.close()
    else:
        with connect(db) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return result.get("sqlstate"), finished


def test_statement_timeout_ends_a_long_migrate_load(db):
    sqlstate, finished = outcome_of(db, "SELECT migrate_load(%s)", (long_file(200_000),),
                                    setup=["SET statement_timeout = '50ms'"])
    assert finished, "migrate_load ran on past its statement_timeout"
    assert sqlstate == "57014", sqlstate
    with connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM migrate.revisions").fetchone()[0] == 0


def test_statement_timeout_ends_a_long_migrate_guard_check(db):
    # Columns added to one table: the guard compares each with those added before
    # it (rename_by_drop), which once copied the whole history per statement.
    script = "\n".join(f"ALTER TABLE widened ADD COLUMN c{i} int;" for i in range(40_000))
    sqlstate, finished = outcome_of(db, "SELECT count(*) FROM migrate_guard_check(%s)", (script,),
                                    setup=["CREATE TABLE widened (id int)", "SET statement_timeout = '50ms'"])
    assert finished, "migrate_guard_check ran on past its statement_timeout"
    assert sqlstate == "57014", sqlstate


def test_pg_cancel_backend_ends_a_long_migrate_load(db):
    sqlstate, finished = outcome_of(db, "SELECT migrate_load(%s)", (long_file(1_000_000),),
                                    cancel_from_elsewhere=True)
    assert finished, "migrate_load ignored pg_cancel_backend"
    assert sqlstate == "57014", sqlstate
