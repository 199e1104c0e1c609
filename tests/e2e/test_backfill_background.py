"""Background backfills (migrate_backfill_start): the same job as
migrate_backfill, run by a background worker. It goes on after the client
disconnects, survives a killed worker and a server restart (by itself with the
preload, stalled until resumed without), runs with the starter's privileges,
queues behind pg_migrate.max_backfill_workers and behind the server's worker
slots, and sends every state change with NOTIFY."""

import json
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import PORT, ROOT, connect, refused, scalar
from test_backfill import make_counter_table

CLUSTER = str(ROOT / "scripts/cluster.sh")
PRELOAD_PORT = PORT + 20


def status(conn, name):
    row = conn.execute("SELECT status, runs_in, pid, waiting_for, stalled_reason, eta, rows_done, last_error "
                       "FROM migrate_backfill_status WHERE job_name = %s", (name,)).fetchone()
    if row is None:
        return None
    return dict(zip(["status", "runs_in", "pid", "waiting_for", "stalled_reason", "eta", "rows_done", "last_error"], row))


def wait_for(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s")


def wait_for_status(conn, name, wanted, timeout=120.0):
    wait_for(lambda: (status(conn, name) or {}).get("status") == wanted, timeout, f"{name} {wanted}")
    return status(conn, name)


def assert_each_row_incremented_once(conn, rows=200_000, table="counters"):
    assert conn.execute(f"SELECT count(*), min(n), max(n) FROM {table}").fetchone() == (rows, 1, 1)


def start(db, call):
    """Start a job from its own connection and disconnect at once."""
    client = connect(db)
    name = scalar(client, call)
    client.close()
    return name


SLOW_INCREMENT = ("SELECT migrate_backfill_start('counters', 'n = n + 1', job_name => 'bg', "
                  "batch_size => 2000, pause_ms => 20)")


def test_a_started_job_finishes_after_the_client_disconnects_exactly_once(db):
    conn = connect(db)
    make_counter_table(conn)
    assert start(db, SLOW_INCREMENT) == "bg"
    wait_for(lambda: (status(conn, "bg") or {}).get("rows_done", 0) > 0, what="a first batch")
    running = status(conn, "bg")
    assert running["status"] in ("running", "done")
    if running["status"] == "running":
        assert running["runs_in"] == "background worker" and running["pid"] is not None
        assert scalar(conn, "SELECT backend_type FROM pg_stat_activity WHERE pid = %s",
                      (running["pid"],)) == "pg_migrate backfill"
    done = wait_for_status(conn, "bg", "done")
    assert done["runs_in"] is None and done["eta"] is None and done["rows_done"] == 200_000
    assert_each_row_incremented_once(conn)
    # The worker is gone once its job is done.
    wait_for(lambda: scalar(conn, "SELECT count(*) FROM pg_stat_activity "
                                  "WHERE backend_type = 'pg_migrate backfill'") == 0, what="the worker's exit")


def test_a_killed_worker_shows_stalled_and_resumes_in_the_background(db):
    conn = connect(db)
    make_counter_table(conn)
    start(db, SLOW_INCREMENT)
    wait_for(lambda: (status(conn, "bg") or {}).get("rows_done", 0) >= 20_000, what="20,000 rows")
    pid = status(conn, "bg")["pid"]
    assert pid and scalar(conn, "SELECT pg_terminate_backend(%s)", (pid,))
    stalled = wait_for_status(conn, "bg", "stalled", timeout=30)
    assert stalled["runs_in"] == "stalled" and stalled["eta"] is None and stalled["pid"] is None
    assert "background worker" in stalled["stalled_reason"] and "migrate_backfill_resume" in stalled["stalled_reason"]
    # Committed batches are exactly what the table shows; nothing runs any more.
    done_before = stalled["rows_done"]
    assert 0 < done_before < 200_000
    assert scalar(conn, "SELECT count(*) FROM counters WHERE n = 1") == done_before
    time.sleep(0.5)
    assert status(conn, "bg")["rows_done"] == done_before
    assert scalar(conn, "SELECT status FROM migrate.backfills WHERE job_name = 'bg'") == "running"
    # Resume returns at once: the job goes on in a new worker.
    conn.execute("CALL migrate_backfill_resume('bg')")
    assert scalar(conn, "SELECT runs_in FROM migrate.backfills WHERE job_name = 'bg'") == "background"
    wait_for_status(conn, "bg", "done")
    assert_each_row_incremented_once(conn)


def test_pause_cancel_and_resume_from_other_sessions(db):
    conn = connect(db)
    make_counter_table(conn)
    start(db, SLOW_INCREMENT)
    wait_for(lambda: (status(conn, "bg") or {}).get("rows_done", 0) > 0, what="a first batch")
    other = connect(db)
    assert "paused" in scalar(other, "SELECT migrate_backfill_pause('bg')")
    paused = wait_for_status(conn, "bg", "paused", timeout=30)
    wait_for(lambda: scalar(conn, "SELECT count(*) FROM pg_stat_activity "
                                  "WHERE backend_type = 'pg_migrate backfill'") == 0, what="the worker's exit")
    assert scalar(conn, "SELECT count(*) FROM counters WHERE n = 1") == paused["rows_done"] < 200_000
    # Resumed from yet another session (through the start function, which continues the job).
    assert start(db, SLOW_INCREMENT) == "bg"
    wait_for_status(conn, "bg", "done")
    assert_each_row_incremented_once(conn)
    make_counter_table(conn, rows=200_000, name="others")
    start(db, "SELECT migrate_backfill_start('others', 'n = n + 1', job_name => 'gone', batch_size => 1000, pause_ms => 20)")
    wait_for(lambda: (status(conn, "gone") or {}).get("rows_done", 0) > 0, what="a first batch")
    scalar(other, "SELECT migrate_backfill_cancel('gone')")
    cancelled = wait_for_status(conn, "gone", "cancelled", timeout=30)
    assert scalar(conn, "SELECT count(*) FROM others WHERE n = 1") == cancelled["rows_done"] < 200_000
    refused(conn, "CALL migrate_backfill_resume('gone')", "55000")


def test_a_job_started_in_a_transaction_that_rolls_back_never_runs(db):
    conn = connect(db)
    make_counter_table(conn, rows=10_000)
    conn.execute("BEGIN")
    assert scalar(conn, "SELECT migrate_backfill_start('counters', 'n = n + 1', job_name => 'rb')") == "rb"
    time.sleep(0.5)  # the worker waits for this transaction
    conn.execute("ROLLBACK")
    wait_for(lambda: scalar(conn, "SELECT count(*) FROM pg_stat_activity "
                                  "WHERE backend_type = 'pg_migrate backfill'") == 0, what="the worker's exit")
    assert scalar(conn, "SELECT count(*) FROM migrate.backfills") == 0
    assert scalar(conn, "SELECT max(n) FROM counters") == 0


def test_a_restart_without_the_preload_leaves_the_job_stalled_until_resumed(db):
    conn = connect(db)
    make_counter_table(conn)
    start(db, SLOW_INCREMENT)
    wait_for(lambda: (status(conn, "bg") or {}).get("rows_done", 0) >= 10_000, what="10,000 rows")
    conn.close()
    subprocess.run([CLUSTER, "restart", "test"], check=True)
    conn = connect(db)
    stalled = status(conn, "bg")
    assert stalled["status"] == "stalled" and stalled["eta"] is None
    assert "not in shared_preload_libraries" in stalled["stalled_reason"]
    time.sleep(1)
    assert status(conn, "bg") == stalled, "nothing restarts it without the preload"
    assert scalar(conn, "SELECT count(*) FROM counters WHERE n = 1") == stalled["rows_done"]
    conn.execute("CALL migrate_backfill_resume('bg')")
    wait_for_status(conn, "bg", "done")
    assert_each_row_incremented_once(conn)


def test_a_restart_with_the_preload_finishes_the_job_by_itself():
    """Its own cluster, started with shared_preload_libraries = 'pg_migrate'."""
    subprocess.run([CLUSTER, "start", "bgpreload", str(PRELOAD_PORT), "shared_preload_libraries=pg_migrate"],
                   check=True)
    try:
        dsn = f"host=127.0.0.1 port={PRELOAD_PORT} user=postgres dbname=app options='-c lock_timeout=5s'"
        with psycopg.connect(dsn.replace("dbname=app", "dbname=postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE app")
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("CREATE EXTENSION pg_migrate")
        make_counter_table(conn)
        client = psycopg.connect(dsn, autocommit=True)
        client.execute(SLOW_INCREMENT)
        client.close()
        wait_for(lambda: (status(conn, "bg") or {}).get("rows_done", 0) >= 10_000, what="10,000 rows")
        conn.close()
        subprocess.run([CLUSTER, "restart", "bgpreload"], check=True)  # immediate: like a crash
        conn = psycopg.connect(dsn, autocommit=True)
        interrupted = status(conn, "bg")
        assert interrupted["rows_done"] < 200_000
        done = wait_for_status(conn, "bg", "done")
        assert done["rows_done"] == 200_000
        assert_each_row_incremented_once(conn)
        assert scalar(conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_migrate launcher'") == 0
        conn.close()
    finally:
        subprocess.run([CLUSTER, "stop", "bgpreload"], check=False)


def test_a_role_without_update_cannot_start_a_job(db):
    conn = connect(db)
    make_counter_table(conn, rows=1_000)
    reader = f"reader_{db[-6:]}"
    conn.execute(f"CREATE ROLE {reader} LOGIN")
    try:
        conn.execute(f"GRANT SELECT ON counters TO {reader}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE ON migrate.backfills TO {reader}")
        conn.execute(f"GRANT USAGE ON SEQUENCE migrate.backfills_job_id_seq TO {reader}")
        conn.execute(f"GRANT UPDATE (role) ON counters TO {reader}")
        conn.execute(f"SET ROLE {reader}")
        error = refused(conn, "SELECT migrate_backfill_start('counters', 'n = n + 1')", "42501")
        assert "UPDATE of n" in str(error)
        refused(conn, "CALL migrate_backfill('counters', 'n = n + 1')", "42501")
        conn.execute("RESET ROLE")
        assert scalar(conn, "SELECT count(*) FROM migrate.backfills") == 0
        assert scalar(conn, "SELECT max(n) FROM counters") == 0
        # A column it may update: the job runs, as that role, in the background.
        with psycopg.connect(f"host=127.0.0.1 port={PORT} user={reader} dbname={db}", autocommit=True) as own:
            scalar(own, "SELECT migrate_backfill_start('counters', 'role = current_user', job_name => 'ok')")
            wait_for_status(conn, "ok", "done")
            assert dict(conn.execute("SELECT role, count(*) FROM counters GROUP BY role").fetchall()) == {reader: 1_000}
            # Write access to the jobs is no way to a worker connected as someone else.
            for forged in ("session_role = 10", "run_as = 10"):
                refused(own, f"UPDATE migrate.backfills SET {forged}, status = 'queued' WHERE job_name = 'ok'", "42501")
            own.execute("UPDATE migrate.backfills SET session_role = session_role WHERE job_name = 'ok'")
    finally:
        conn.execute("RESET ROLE")
        conn.execute(f"DROP OWNED BY {reader}")
        conn.execute(f"DROP ROLE {reader}")


@pytest.fixture
def max_backfill_workers(db):
    conn = connect(db)

    def set_limit(value):
        conn.execute("LOAD 'pg_migrate'")
        conn.execute(f"ALTER SYSTEM SET pg_migrate.max_backfill_workers = {value}")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
    yield set_limit
    conn.execute("ALTER SYSTEM RESET pg_migrate.max_backfill_workers")
    conn.execute("SELECT pg_reload_conf()")
    conn.close()


def test_the_worker_limit_queues_jobs_in_order(db, max_backfill_workers):
    max_backfill_workers(1)
    conn = connect(db)
    for i in range(3):
        make_counter_table(conn, rows=20_000, name=f"t{i}")
    for i in range(3):
        start(db, f"SELECT migrate_backfill_start('t{i}', 'n = n + 1', job_name => 'q{i}', "
                  "batch_size => 1000, pause_ms => 30)")
    queued = status(conn, "q2")
    assert queued["status"] == "queued" and queued["runs_in"] == "queued"
    assert queued["waiting_for"].startswith("queue:") and "max_backfill_workers = 1" in queued["waiting_for"]
    most_at_once = 0

    def all_done():
        nonlocal most_at_once
        rows = conn.execute("SELECT status, runs_in FROM migrate_backfill_status").fetchall()
        most_at_once = max(most_at_once, sum(1 for _, runs_in in rows if runs_in == "background worker"))
        return all(row[0] == "done" for row in rows)
    wait_for(all_done, what="every queued job done")
    assert most_at_once == 1
    order = [row[0] for row in conn.execute("SELECT job_name FROM migrate.backfills ORDER BY finished_at")]
    assert order == ["q0", "q1", "q2"]
    for i in range(3):
        assert_each_row_incremented_once(conn, rows=20_000, table=f"t{i}")


def test_jobs_without_a_free_worker_slot_wait_and_say_why(db, max_backfill_workers):
    """max_worker_processes (8) is smaller than the jobs allowed: the ones without
    a slot say so, and start as others end; none is lost."""
    max_backfill_workers(20)
    conn = connect(db)
    jobs = 12
    for i in range(jobs):
        make_counter_table(conn, rows=5_000, name=f"s{i}")
    for i in range(jobs):
        start(db, f"SELECT migrate_backfill_start('s{i}', 'n = n + 1', job_name => 's{i}', "
                  "batch_size => 500, pause_ms => 100)")
    reasons = [row[0] for row in conn.execute("SELECT waiting_for FROM migrate_backfill_status "
                                              "WHERE status = 'queued'")]
    assert any(reason and reason.startswith("worker slot:") and "max_worker_processes" in reason
               for reason in reasons), reasons
    wait_for(lambda: scalar(conn, "SELECT count(*) FROM migrate.backfills WHERE status = 'done'") == jobs,
             timeout=180, what="every job done")
    for i in range(jobs):
        assert_each_row_incremented_once(conn, rows=5_000, table=f"s{i}")


def test_state_changes_are_notified(db):
    conn = connect(db)
    make_counter_table(conn, rows=5_000)
    listener = connect(db)
    listener.execute("LISTEN pg_migrate_backfill")
    start(db, "SELECT migrate_backfill_start('counters', 'n = n + 1', job_name => 'told', batch_size => 1000)")
    seen = []
    deadline = time.monotonic() + 60
    for notify in listener.notifies(timeout=60):
        payload = json.loads(notify.payload)
        assert notify.channel == "pg_migrate_backfill"
        if payload["job_name"] == "told":
            seen.append(payload["status"])
        if "done" in seen or time.monotonic() > deadline:
            break
    assert seen == ["queued", "running", "done"], seen
    listener.close()


def counters(conn, name):
    return conn.execute("SELECT lag_waits, wal_waits, slot_waits, vacuum_waits FROM migrate_backfill_status "
                        "WHERE job_name = %s", (name,)).fetchone()


def test_max_wal_rate_holds_batches_while_the_server_writes_faster(db):
    conn = connect(db)
    make_counter_table(conn, rows=30_000)
    # A batch of 1,000 rows writes well over 100 kB of WAL in milliseconds.
    start(db, "SELECT migrate_backfill_start('counters', 'n = n + 1', job_name => 'wal', batch_size => 1000, "
              "max_wal_rate => 2000000)")
    seen = set()

    def done():
        row = status(conn, "wal")
        if row["waiting_for"]:
            seen.add(row["waiting_for"].split(":")[0])
        return row["status"] == "done"
    wait_for(done, what="the throttled job done")
    assert counters(conn, "wal")[1] > 0 and counters(conn, "wal")[0] == 0
    assert "WAL rate" in seen, seen
    assert_each_row_incremented_once(conn, rows=30_000)


def test_max_slot_lag_waits_for_a_logical_slot_that_does_not_advance():
    """Its own cluster with wal_level = logical and a real logical slot (pgoutput)."""
    port = PORT + 25
    subprocess.run([CLUSTER, "start", "bgslot", str(port), "wal_level=logical"], check=True)
    try:
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres options='-c lock_timeout=5s'"
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("CREATE EXTENSION pg_migrate")
        make_counter_table(conn)
        conn.execute("SELECT pg_create_logical_replication_slot('stuck', 'pgoutput')")
        conn.execute("SELECT migrate_backfill_start('counters', 'n = n + 1', job_name => 'slot', "
                     "batch_size => 2000, max_slot_lag => 1000000)")
        wait_for(lambda: counters(conn, "slot")[2] >= 2, what="slot waits")
        held = status(conn, "slot")
        assert held["status"] == "running" and held["waiting_for"].startswith("slot lag: replication slot stuck")
        assert held["rows_done"] < 200_000
        time.sleep(1.5)
        assert status(conn, "slot")["rows_done"] == held["rows_done"], "no batch while the slot lags"
        conn.execute("SELECT pg_drop_replication_slot('stuck')")
        wait_for_status(conn, "slot", "done")
        assert status(conn, "slot")["waiting_for"] is None
        assert_each_row_incremented_once(conn)
        conn.close()
    finally:
        subprocess.run([CLUSTER, "stop", "bgslot"], check=False)


def test_pause_during_autovacuum_waits_while_a_vacuum_works_on_the_table(db):
    conn = connect(db)
    make_counter_table(conn)
    vacuum = connect(db)
    vacuum_pid = scalar(vacuum, "SELECT pg_backend_pid()")
    vacuum.execute("SET vacuum_cost_delay = '100ms'")
    vacuum.execute("SET vacuum_cost_limit = 1")
    errors = []

    def run_vacuum():
        try:
            vacuum.execute("VACUUM (DISABLE_PAGE_SKIPPING) counters")
        except psycopg.Error as error:
            errors.append(error)
    thread = threading.Thread(target=run_vacuum)
    thread.start()
    wait_for(lambda: scalar(conn, "SELECT count(*) FROM pg_stat_progress_vacuum WHERE pid = %s", (vacuum_pid,)) == 1,
             what="the VACUUM running")
    start(db, "SELECT migrate_backfill_start('counters', 'n = n + 1', job_name => 'vac', batch_size => 2000, "
              "pause_during_autovacuum => true)")
    wait_for(lambda: counters(conn, "vac")[3] >= 2, what="vacuum waits")
    held = status(conn, "vac")
    assert held["rows_done"] == 0 and held["waiting_for"].startswith("vacuum:")
    assert scalar(conn, "SELECT pg_cancel_backend(%s)", (vacuum_pid,))
    thread.join(30)
    assert errors and errors[0].sqlstate == "57014"
    wait_for_status(conn, "vac", "done")
    assert_each_row_incremented_once(conn)
    vacuum.close()
