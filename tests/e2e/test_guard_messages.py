"""Issue 10, "Messages a DBA can act on": the lock_queue HINT ends a holder the
way that works for its state, a lock_timeout names who the DDL waited behind,
a new table's unnamed primary key does not warn, and "To do it anyway" is only
offered when the statement was stopped."""

import threading
import time

import psycopg
import pytest

from conftest import connect, refused, scalar


@pytest.fixture
def conn(db):
    c = connect(db)
    c.execute("SET lock_timeout = '5s'")
    c.execute("CREATE TABLE idle_t (id bigint CONSTRAINT idle_t_pkey PRIMARY KEY)")
    c.execute("CREATE TABLE busy_t (id bigint CONSTRAINT busy_t_pkey PRIMARY KEY)")
    c.execute("INSERT INTO idle_t VALUES (1); INSERT INTO busy_t VALUES (1)")
    return c


def idle_holder(db, table):
    """A session idle in a transaction that read `table` (ACCESS SHARE held)."""
    holder = connect(db, autocommit=False)
    pid = scalar(holder, "SELECT pg_backend_pid()")
    holder.execute(f"SELECT count(*) FROM {table}")
    return holder, pid


def active_holder(db, table, seconds=30):
    """A session running a long query on `table`; returns its pid and thread."""
    holder = connect(db)
    pid = scalar(holder, "SELECT pg_backend_pid()")

    def run():
        try:
            holder.execute(f"SELECT count(*), pg_sleep({seconds}) FROM {table}")
        except psycopg.Error:
            pass  # cancelled by the test, as the HINT says
    thread = threading.Thread(target=run)
    thread.start()
    return pid, thread


def wait_for_state(conn, pid, state):
    for _ in range(200):
        if scalar(conn, "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)) == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never became {state}")


def test_lock_queue_terminates_idle_holders_and_cancels_active_ones(db, conn):
    conn.execute("SET pg_migrate.guard_lock_queue_age = '200ms'")
    idle, idle_pid = idle_holder(db, "idle_t")
    active_pid, thread = active_holder(db, "busy_t")
    wait_for_state(conn, active_pid, "active")
    time.sleep(0.4)

    error = refused(conn, "ALTER TABLE idle_t ADD COLUMN note text", "MG011")
    assert f"SELECT pg_terminate_backend({idle_pid});" in error.diag.message_hint
    assert "pg_cancel_backend" not in error.diag.message_hint
    assert f"pid {idle_pid} (idle in transaction)" in error.diag.message_detail

    error = refused(conn, "ALTER TABLE busy_t ADD COLUMN note text", "MG011")
    assert f"SELECT pg_cancel_backend({active_pid});" in error.diag.message_hint
    assert f"pid {active_pid} (active)" in error.diag.message_detail

    # What each HINT says to run is what ends the hold: afterwards the DDL runs.
    assert scalar(conn, "SELECT pg_cancel_backend(%s)", (active_pid,))
    thread.join(10)
    assert not thread.is_alive()
    conn.execute("ALTER TABLE busy_t ADD COLUMN note text")
    assert scalar(conn, "SELECT pg_cancel_backend(%s)", (idle_pid,))  # does nothing to an idle session
    time.sleep(0.2)
    assert scalar(conn, "SELECT state FROM pg_stat_activity WHERE pid = %s", (idle_pid,)) == "idle in transaction"
    # With a timeout it returns once the backend is gone, so its lock is released too.
    assert scalar(conn, "SELECT pg_terminate_backend(%s, 10000)", (idle_pid,))
    conn.execute("ALTER TABLE idle_t ADD COLUMN note text")
    idle.close()


def test_a_lock_timeout_names_the_younger_blocker(db, conn):
    # The holders are younger than lock_queue's threshold (60s): no MG011.
    idle, idle_pid = idle_holder(db, "idle_t")
    active_pid, thread = active_holder(db, "busy_t")
    wait_for_state(conn, active_pid, "active")
    conn.execute("SET lock_timeout = '300ms'")

    error = refused(conn, "ALTER TABLE idle_t ADD COLUMN note text", "55P03")
    assert error.diag.message_primary == "canceling statement due to lock timeout"
    detail = error.diag.message_detail
    assert detail.startswith(f"It waited for ACCESS EXCLUSIVE on public.idle_t behind: pid {idle_pid} (idle in transaction, "), detail
    assert "held AccessShareLock on public.idle_t" in detail and "SELECT count(*) FROM idle_t" in detail, detail
    assert error.diag.message_hint == f"Retry when pid {idle_pid} is done, or end it: SELECT pg_terminate_backend({idle_pid});"

    error = refused(conn, "ALTER TABLE busy_t ADD COLUMN note text", "55P03")
    assert f"pid {active_pid} (active, " in error.diag.message_detail
    assert f"SELECT pg_cancel_backend({active_pid});" in error.diag.message_hint

    # A later 55P03 of a statement the guard did not check gets no stale DETAIL.
    conn.execute("BEGIN")
    error = refused(conn, "LOCK TABLE idle_t IN ACCESS EXCLUSIVE MODE NOWAIT", "55P03")
    assert error.diag.message_detail is None and error.diag.message_hint is None
    conn.execute("ROLLBACK")

    scalar(conn, "SELECT pg_cancel_backend(%s)", (active_pid,))
    thread.join(10)
    idle.close()


class Notice:
    """What a notice handler saw (psycopg's Diagnostic is only valid inside it)."""
    def __init__(self, diag):
        self.sqlstate, self.severity = diag.sqlstate, diag.severity_nonlocalized
        self.message_primary, self.message_hint = diag.message_primary, diag.message_hint


def notices(conn, sql):
    seen = []
    handler = lambda diag: seen.append(Notice(diag))  # noqa: E731
    conn.add_notice_handler(handler)
    try:
        conn.execute(sql)
    finally:
        conn.remove_notice_handler(handler)
    return seen


def test_a_new_tables_primary_key_needs_no_name(conn):
    seen = notices(conn, "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)")
    assert [d.sqlstate for d in seen] == []
    seen = notices(conn, "CREATE TABLE items (id bigint PRIMARY KEY, sku text UNIQUE)")
    assert [(d.sqlstate, d.message_primary) for d in seen] == \
        [("MG101", "unique constraint on public.items has no explicit name [unnamed_constraint]")]
    assert scalar(conn, "SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'p'") == "orders_pkey"
    conn.execute("CREATE TABLE later (id bigint NOT NULL)")
    conn.execute("INSERT INTO later VALUES (1)")
    seen = notices(conn, "ALTER TABLE later ADD PRIMARY KEY (id)")
    assert "MG101" in [d.sqlstate for d in seen]


def test_to_do_it_anyway_only_when_stopped(conn):
    drop = "ALTER TABLE idle_t DROP COLUMN id"
    conn.execute("ALTER TABLE idle_t ADD COLUMN extra text")
    error = refused(conn, "ALTER TABLE idle_t DROP COLUMN extra", "MG002")
    assert "To do it anyway: BEGIN; SET LOCAL pg_migrate.allow = 'drop_column: <reason>'" in error.diag.message_hint

    # At warning level the statement runs: no way through to offer.
    conn.execute("SET pg_migrate.guard_levels = 'drop_column=warning'")
    seen = notices(conn, "ALTER TABLE idle_t DROP COLUMN extra")
    warnings = [d for d in seen if d.sqlstate == "MG002"]
    assert len(warnings) == 1 and warnings[0].severity == "WARNING"
    assert warnings[0].message_hint and "To do it anyway" not in warnings[0].message_hint
    assert scalar(conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'idle_t'::regclass AND attname = 'extra'") == 0
    conn.execute("RESET pg_migrate.guard_levels")

    # Nor in warn mode, where errors become warnings.
    conn.execute("SET pg_migrate.guard = warn")
    seen = notices(conn, drop)
    warnings = [d for d in seen if d.sqlstate == "MG002"]
    assert len(warnings) == 1 and "To do it anyway" not in warnings[0].message_hint
    conn.execute("RESET pg_migrate.guard")

    # A rule that warns by default (unnamed_constraint) never offered it either.
    seen = notices(conn, "CREATE INDEX ON busy_t (id)")
    hints = [d.message_hint for d in seen if d.sqlstate == "MG101"]
    assert hints and all("To do it anyway" not in h for h in hints)
