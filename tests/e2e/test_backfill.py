"""Batched backfills: COMMIT after every batch, resumable after a kill, a cancel
or a server restart, pause/cancel from another session, lock-timeout retries,
adaptive batch size, replication-lag throttling against a real standby, and
refusal of bad input before any row changes."""

import subprocess
import threading
import time

import psycopg
import pytest

from conftest import PORT, ROOT, applied, connect, dsn, load, psql, revision, scalar

ROWS = 200_000


def make_counter_table(conn, rows=ROWS, name="counters"):
    conn.execute(f"CREATE TABLE {name} (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, role text)")
    conn.execute(f"INSERT INTO {name} (id) SELECT g FROM generate_series(1, {rows}) g")
    conn.execute(f"ANALYZE {name}")


def job(conn, name):
    row = conn.execute("SELECT status, rows_done, rows_scanned, batches, retries, lag_waits, batch_size "
                       "FROM migrate.backfills WHERE job_name = %s", (name,)).fetchone()
    return dict(zip(["status", "rows_done", "rows_scanned", "batches", "retries", "lag_waits", "batch_size"], row))


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def start_backfill(db, call, setup=()):
    """Run CALL in a thread on its own connection (after the `setup` statements);
    returns (thread, pid, errors)."""
    conn = connect(db)
    for statement in setup:
        conn.execute(statement)
    pid = scalar(conn, "SELECT pg_backend_pid()")
    errors = []

    def run():
        try:
            conn.execute(call)
        except psycopg.Error as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, pid, errors


SLOW_INCREMENT = "CALL migrate_backfill('counters', 'n = n + 1', job_name => 'inc', batch_size => 2000, pause_ms => 20)"


def assert_each_row_incremented_once(conn):
    assert conn.execute("SELECT count(*), min(n), max(n) FROM counters").fetchone() == (ROWS, 1, 1)


def test_killed_session_resumes_without_double_or_missed_rows(db):
    conn = connect(db)
    make_counter_table(conn)
    thread, pid, errors = start_backfill(db, SLOW_INCREMENT)
    wait_for(lambda: (job(conn, "inc")["rows_done"] or 0) >= 20_000 if scalar(
        conn, "SELECT count(*) FROM migrate.backfills") else False)
    assert scalar(conn, "SELECT pg_terminate_backend(%s)", (pid,))
    thread.join(30)
    assert errors
    state = job(conn, "inc")
    assert state["status"] == "running" and 0 < state["rows_done"] < ROWS
    # Committed batches are exactly what the table shows.
    assert scalar(conn, "SELECT count(*) FROM counters WHERE n = 1") == state["rows_done"]
    conn.execute("CALL migrate_backfill_resume('inc')")
    assert_each_row_incremented_once(conn)
    assert job(conn, "inc")["status"] == "done"


def test_cancelled_statement_resumes_by_calling_again(db):
    conn = connect(db)
    make_counter_table(conn)
    thread, pid, errors = start_backfill(db, SLOW_INCREMENT)
    wait_for(lambda: scalar(conn, "SELECT coalesce(max(rows_done), 0) FROM migrate.backfills") >= 10_000)
    assert scalar(conn, "SELECT pg_cancel_backend(%s)", (pid,))
    thread.join(30)
    assert errors and errors[0].sqlstate == "57014"
    assert job(conn, "inc")["rows_done"] < ROWS
    conn.execute(SLOW_INCREMENT.replace("pause_ms => 20", "pause_ms => 0"))  # same job name: continues
    assert_each_row_incremented_once(conn)


def test_server_restart_then_resume(db):
    conn = connect(db)
    make_counter_table(conn)
    thread, pid, errors = start_backfill(db, SLOW_INCREMENT)
    wait_for(lambda: scalar(conn, "SELECT coalesce(max(rows_done), 0) FROM migrate.backfills") >= 10_000)
    conn.close()
    subprocess.run([str(ROOT / "scripts/cluster.sh"), "restart", "test"], check=True)
    thread.join(30)
    assert errors
    conn = connect(db)
    conn.execute("CALL migrate_backfill_resume('inc')")
    assert_each_row_incremented_once(conn)


def test_pause_and_cancel_from_another_session(db):
    conn = connect(db)
    make_counter_table(conn)
    thread, _, errors = start_backfill(db, SLOW_INCREMENT)
    wait_for(lambda: scalar(conn, "SELECT coalesce(max(rows_done), 0) FROM migrate.backfills") > 0)
    assert "paused" in scalar(conn, "SELECT migrate_backfill_pause('inc')")
    thread.join(30)
    assert not errors  # the CALL ends normally at the batch boundary
    paused = job(conn, "inc")
    assert paused["status"] == "paused" and paused["rows_done"] < ROWS
    time.sleep(0.2)
    assert job(conn, "inc")["rows_done"] == paused["rows_done"]  # really stopped

    thread, _, errors = start_backfill(db, "CALL migrate_backfill_resume('inc')")
    wait_for(lambda: job(conn, "inc")["rows_done"] > paused["rows_done"])
    scalar(conn, "SELECT migrate_backfill_cancel('inc')")
    thread.join(30)
    assert job(conn, "inc")["status"] == "cancelled"
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("CALL migrate_backfill_resume('inc')")
    # Whatever was committed was applied exactly once.
    assert scalar(conn, "SELECT count(*) FROM counters WHERE n NOT IN (0, 1)") == 0
    assert scalar(conn, "SELECT count(*) FROM counters WHERE n = 1") == job(conn, "inc")["rows_done"]


def test_lock_timeout_retries_with_backoff(db):
    conn = connect(db)
    make_counter_table(conn, rows=20_000)
    blocker = connect(db, autocommit=False)
    blocker.execute("SELECT * FROM counters WHERE id = 5000 FOR UPDATE")
    thread, _, errors = start_backfill(
        db, "CALL migrate_backfill('counters', 'n = n + 1', job_name => 'r', batch_size => 1000, lock_timeout_ms => 100)")
    time.sleep(1.5)
    blocker.rollback()
    thread.join(60)
    assert not errors
    state = job(conn, "r")
    assert state["status"] == "done" and state["retries"] >= 2
    assert conn.execute("SELECT count(*), min(n), max(n) FROM counters").fetchone() == (20_000, 1, 1)


def test_gives_up_after_max_retries_and_records_why(db):
    conn = connect(db)
    make_counter_table(conn, rows=5_000)
    blocker = connect(db, autocommit=False)
    blocker.execute("SELECT * FROM counters WHERE id = 10 FOR UPDATE")
    with pytest.raises(psycopg.errors.LockNotAvailable) as caught:
        conn.execute("CALL migrate_backfill('counters', 'n = 1', job_name => 'g', lock_timeout_ms => 50, max_retries => 2)")
    blocker.rollback()
    assert "migrate_backfill_resume('g')" in caught.value.diag.message_hint
    state = job(conn, "g")
    assert state["status"] == "failed" and state["retries"] == 2
    conn.execute("CALL migrate_backfill_resume('g')")
    assert job(conn, "g")["status"] == "done"


def test_adaptive_batch_size_and_composite_text_keys(db):
    conn = connect(db)
    conn.execute("CREATE TABLE events (tenant text, id uuid, seen boolean, PRIMARY KEY (tenant, id))")
    conn.execute("INSERT INTO events SELECT 'tenant-' || (g % 13), gen_random_uuid(), NULL "
                 "FROM generate_series(1, 60000) g")
    conn.execute("CALL migrate_backfill('events', 'seen = false', 'seen IS NULL', job_name => 'a', "
                 "batch_size => 100, target_batch_ms => 200)")
    state = job(conn, "a")
    assert state["status"] == "done" and state["rows_done"] == 60_000
    assert state["batch_size"] > 100, "fast batches grow toward the target duration"
    assert scalar(conn, "SELECT count(*) FROM events WHERE seen IS NULL") == 0


def test_status_view_reports_rate(db):
    conn = connect(db)
    make_counter_table(conn, rows=50_000)
    conn.execute("CALL migrate_backfill('counters', $$role = 'member'$$, 'role IS NULL', job_name => 'v')")
    row = conn.execute("SELECT status, percent, keys_per_second, rows_done FROM migrate_backfill_status "
                       "WHERE job_name = 'v'").fetchone()
    assert row[0] == "done" and row[1] == 100 and row[2] > 0 and row[3] == 50_000


@pytest.mark.parametrize("args, sqlstate, words", [
    ("'counters', $$role = 'x'; DROP TABLE counters$$", "42601", "more than one statement"),
    ("'counters', $$role = 'x' WHERE true$$", "42601", "not a single expression"),
    ("'counters', $$role = 'x'$$, $$true; DROP TABLE counters$$", "42601", "more than one statement"),
    ("'counters', $$role = 'x'$$, $$true) OR (true$$", "42601", "syntax error"),
    ("'counters', $$nope = 1$$", "42703", "column \"nope\""),
    ("'counters', $$n = 'many'$$", "22P02", "invalid input syntax"),
    ("'no_such_table', $$n = 1$$", "42P01", "does not exist"),
    ("'nopk', $$a = 1$$", "0A000", "no primary key"),
])
def test_bad_input_is_refused_before_any_change(db, args, sqlstate, words):
    conn = connect(db)
    make_counter_table(conn, rows=1_000)
    conn.execute("CREATE TABLE nopk (a int)")
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(f"CALL migrate_backfill({args})")
    assert caught.value.sqlstate == sqlstate, caught.value
    assert words in str(caught.value)
    assert scalar(conn, "SELECT to_regclass('counters') IS NOT NULL")
    assert scalar(conn, "SELECT count(*) FROM counters WHERE role IS NOT NULL OR n <> 0") == 0
    assert scalar(conn, "SELECT count(*) FROM migrate.backfills") == 0


def test_empty_table_completes_with_zero_rows(db):
    conn = connect(db)
    conn.execute("CREATE TABLE empty (id int PRIMARY KEY, v int)")
    conn.execute("CALL migrate_backfill('empty', 'v = 1', job_name => 'e')")
    assert job(conn, "e")["status"] == "done" and job(conn, "e")["rows_done"] == 0


def test_cannot_commit_inside_a_transaction_or_a_function(db):
    conn = connect(db, autocommit=False)
    make_counter_table(conn, rows=10)
    with pytest.raises(psycopg.errors.ActiveSqlTransaction) as caught:
        conn.execute("CALL migrate_backfill('counters', 'n = 1')")
    assert "autocommit" in caught.value.diag.message_hint
    conn.rollback()
    conn.autocommit = True
    make_counter_table(conn, rows=10)
    conn.execute("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CALL migrate_backfill('counters', 'n = 1'); END $$")
    with pytest.raises(psycopg.errors.InvalidTransactionTermination) as caught:
        conn.execute("SELECT f()")
    assert "CALL migrate_backfill" in caught.value.diag.message_hint


def test_set_not_null_skips_the_full_scan(db):
    conn = connect(db)
    make_counter_table(conn, rows=10_000)
    conn.execute("UPDATE counters SET role = 'member'")
    notices = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    conn.execute("SET client_min_messages = debug1")
    conn.execute("CALL migrate_set_not_null('counters', 'role')")
    conn.execute("RESET client_min_messages")
    assert any("sufficient to prove that it does not contain nulls" in n for n in notices), notices
    assert scalar(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'counters'::regclass AND attname = 'role'")
    assert scalar(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'counters'::regclass AND contype = 'c'") == 0


def test_set_not_null_refuses_nulls_and_can_be_rerun(db):
    conn = connect(db)
    make_counter_table(conn, rows=1_000)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("CALL migrate_set_not_null('counters', 'role')")
    conn.execute("UPDATE counters SET role = 'x'")
    conn.execute("CALL migrate_set_not_null('counters', 'role')")  # picks up the NOT VALID check left behind
    assert scalar(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'counters'::regclass AND attname = 'role'")


def test_backfill_from_a_non_transactional_revision(db):
    conn = connect(db)
    base = revision("cccc00000001", """
        CREATE TABLE accounts (id bigint PRIMARY KEY, plan text);
        INSERT INTO accounts SELECT g, NULL FROM generate_series(1, 5000) g;
    """, "DROP TABLE accounts;")
    fill = revision("cccc00000002", """
        CALL migrate_backfill('accounts', $$plan = 'free'$$, 'plan IS NULL', job_name => 'accounts_plan', batch_size => 500);
    """, "UPDATE accounts SET plan = NULL;", revises="cccc00000001", transactional=False)
    load(conn, base, fill)
    psql(db, "SELECT * FROM migrate_plan('head') \\gexec\n")
    assert applied(conn) == {"cccc00000001", "cccc00000002"}
    assert scalar(conn, "SELECT count(*) FROM accounts WHERE plan = 'free'") == 5000
    assert job(conn, "accounts_plan")["batches"] == 11  # 10 full batches, then one that finds the end
    # In a transactional revision it could not commit: refused when loaded.
    bad = revision("cccc00000003", "CALL migrate_backfill('accounts', 'plan = NULL');", revises="cccc00000002")
    with pytest.raises(psycopg.errors.ActiveSqlTransaction):
        load(conn, bad)


def test_waits_while_a_standby_lags(db):
    """A real streaming standby (pg_basebackup -R) with replay paused: the backfill
    waits, counting lag waits, and finishes once the standby catches up."""
    cluster = str(ROOT / "scripts/cluster.sh")
    standby_port = PORT + 10
    subprocess.run([cluster, "standby", "standby", "test", str(standby_port)], check=True)
    try:
        conn = connect(db)
        make_counter_table(conn, rows=20_000)
        standby = psycopg.connect(f"host=127.0.0.1 port={standby_port} user=postgres dbname={db}", autocommit=True)
        wait_for(lambda: scalar(conn, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1)
        standby.execute("SELECT pg_wal_replay_pause()")
        conn.execute("CREATE TABLE churn AS SELECT g FROM generate_series(1, 10000) g")  # WAL the standby won't replay
        wait_for(lambda: scalar(conn, "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication") > 0.5)
        thread, pid, errors = start_backfill(
            db, "CALL migrate_backfill('counters', 'n = n + 1', job_name => 'lag', batch_size => 1000, "
                "max_replication_lag_ms => 300)")
        wait_for(lambda: scalar(conn, "SELECT coalesce(max(lag_waits), 0) FROM migrate.backfills") >= 3)
        assert job(conn, "lag")["rows_done"] == 0, "no batch while the standby lags"
        # A cancel during the lag wait ends the CALL; the job resumes later.
        wait_for(lambda: scalar(conn, "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)) == "PgSleep")
        assert scalar(conn, "SELECT pg_cancel_backend(%s)", (pid,))
        thread.join(120)
        assert not thread.is_alive(), "the CALL still waits after a cancel"
        assert errors and errors[0].sqlstate == "57014"
        thread, _, errors = start_backfill(db, "CALL migrate_backfill_resume('lag')")
        standby.execute("SELECT pg_wal_replay_resume()")
        thread.join(120)
        assert not errors
        assert job(conn, "lag")["status"] == "done"
        assert conn.execute("SELECT min(n), max(n) FROM counters").fetchone() == (1, 1)
        standby.close()
    finally:
        subprocess.run([cluster, "stop", "standby"], check=False)


def test_sparse_tables_walk_more_keys_per_batch(db):
    """With a condition that few rows match, each batch walks more keys (reads) so
    that it still updates about batch_size rows: fewer batches, same result."""
    conn = connect(db)
    conn.execute("CREATE TABLE sparse (id bigint PRIMARY KEY, role text)")
    conn.execute("INSERT INTO sparse SELECT g, CASE WHEN g % 20 = 0 THEN NULL ELSE 'admin' END "
                 "FROM generate_series(1, 20000) g")
    conn.execute("CALL migrate_backfill('sparse', $$role = 'member'$$, 'role IS NULL', job_name => 'sparse', "
                 "batch_size => 100)")
    state = job(conn, "sparse")
    assert (state["status"], state["rows_done"], state["rows_scanned"]) == ("done", 1000, 20000)
    assert state["batches"] < 40, state  # 200 at 100 keys each; the window grows to 1,600 keys
    assert state["batch_size"] <= 1600
    counts = dict(conn.execute("SELECT role, count(*) FROM sparse GROUP BY role").fetchall())
    assert counts == {"member": 1000, "admin": 19000}


def test_key_window_drops_back_when_the_table_turns_dense(db):
    """After a sparse stretch the next dense batch updates more than batch_size rows
    once; the window then drops back to batch_size keys at once."""
    conn = connect(db)
    conn.execute("CREATE TABLE mixed (id bigint PRIMARY KEY, role text)")
    conn.execute("INSERT INTO mixed SELECT g, CASE WHEN g > 10000 OR g % 50 = 0 THEN NULL ELSE 'admin' END "
                 "FROM generate_series(1, 20000) g")
    conn.execute("CALL migrate_backfill('mixed', $$role = 'member'$$, 'role IS NULL', job_name => 'mixed', "
                 "batch_size => 100)")
    state = job(conn, "mixed")
    assert (state["status"], state["rows_done"], state["rows_scanned"]) == ("done", 10200, 20000)
    assert state["batch_size"] == 100, state
    assert scalar(conn, "SELECT count(*) FROM mixed WHERE role = 'member'") == 10200


# --- Each selected row updated exactly once, whatever the expressions say ---

def no_change(conn, table="counters"):
    assert scalar(conn, f"SELECT count(*) FROM {table} WHERE n <> 0 OR role IS NOT NULL") == 0
    assert scalar(conn, "SELECT count(*) FROM migrate.backfills") == 0


@pytest.mark.parametrize("args", [
    # A trailing comment would swallow the batch's own keyset bounds.
    "'counters', 'n = n + 1 --'",
    "'counters', 'n = n + 1 -- comment', 'n = 0'",
    "'counters', 'n = n + 1 /* a */ --'",
    # Comments and quotes that never close, a condition that breaks out of its parentheses.
    "'counters', 'n = n + 1 /*'",
    "'counters', $$role = 'x$$",
    "'counters', 'n = 1', 'true) OR (true'",
    "'counters', 'n = 1', 'true --'",
    "'counters', 'n = 1', 'n = 0) --'",
    # Keywords that would change the statement: another relation, another filter, output.
    "'counters', 'n = 1 FROM counters c2'",
    "'counters', 'n = 1 WHERE true'",
    "'counters', 'n = 1 RETURNING id'",
    "'counters', 'n = 1', 'true RETURNING id'",
])
def test_expressions_cannot_change_the_batch_statement(db, args):
    conn = connect(db)
    make_counter_table(conn, rows=3_000)
    with pytest.raises(psycopg.errors.SyntaxError):
        conn.execute(f"CALL migrate_backfill({args}, batch_size => 1000)")
    no_change(conn)


@pytest.mark.parametrize("table, set_list", [
    ("counters", "id = id + 1000000"),
    ("counters", "(id, n) = (id + 1, 0)"),
    ("pairs", "b = b + 1"),
    ("pairs", "(n, a) = (1, a + 1)"),
])
def test_assignments_to_the_key_are_refused(db, table, set_list):
    conn = connect(db)
    conn.execute("SET statement_timeout = '60s'")  # the old code updated such rows forever
    make_counter_table(conn, rows=1_000)
    conn.execute("CREATE TABLE pairs (a int, b int, n int NOT NULL DEFAULT 0, role text, "
                 "CONSTRAINT pairs_pkey PRIMARY KEY (a, b))")
    conn.execute("INSERT INTO pairs SELECT g % 10, g FROM generate_series(1, 1000) g")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        conn.execute(f"CALL migrate_backfill('{table}', $${set_list}$$, batch_size => 100)")
    assert "key column" in caught.value.diag.message_primary
    no_change(conn, table)


def test_expressions_run_under_the_search_path_of_the_role_that_started_the_job(db):
    conn = connect(db)
    make_counter_table(conn, rows=5_000)
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE FUNCTION app.plan_for(bigint) RETURNS text LANGUAGE sql AS $$ SELECT 'plan-' || $1 % 3 $$")
    conn.execute("CREATE FUNCTION public.bump(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 + 1 $$")
    conn.execute("SET search_path = app, public")
    thread, _, errors = start_backfill(db, "CALL migrate_backfill('counters', 'role = plan_for(id), n = bump(n)', "
                                           "job_name => 'path', batch_size => 500, pause_ms => 100)",
                                       setup=["SET search_path = app, public"])
    wait_for(lambda: scalar(conn, "SELECT coalesce(max(rows_done), 0) FROM migrate.backfills") > 0)
    scalar(conn, "SELECT migrate_backfill_pause('path')")
    thread.join(60)
    assert not errors, errors
    # Resumed from a session whose search_path cannot see app.plan_for.
    other = connect(db)
    other.execute("SET search_path = pg_catalog")
    other.execute("CALL public.migrate_backfill_resume('path')")
    assert job(conn, "path")["status"] == "done"
    assert conn.execute("SELECT count(*), min(n), max(n) FROM counters").fetchone() == (5_000, 1, 1)
    assert scalar(conn, "SELECT count(*) FROM counters WHERE role = 'plan-' || id % 3") == 5_000
    assert scalar(conn, "SELECT search_path FROM migrate.backfills") == "app, public"


def test_a_renamed_table_is_followed_and_a_recreated_one_is_refused(db):
    conn = connect(db)
    make_counter_table(conn, rows=20_000)
    thread, _, errors = start_backfill(
        db, "CALL migrate_backfill('counters', 'n = n + 1', job_name => 'ren', batch_size => 1000, pause_ms => 50)")
    wait_for(lambda: scalar(conn, "SELECT coalesce(max(rows_done), 0) FROM migrate.backfills") > 0)
    scalar(conn, "SELECT migrate_backfill_pause('ren')")
    thread.join(60)
    assert not errors and job(conn, "ren")["status"] == "paused"
    conn.execute("ALTER TABLE counters RENAME TO tallies")
    conn.execute("CALL migrate_backfill_resume('ren')")
    assert conn.execute("SELECT count(*), min(n), max(n) FROM tallies").fetchone() == (20_000, 1, 1)
    assert scalar(conn, "SELECT table_name FROM migrate_backfill_status WHERE job_name = 'ren'") == "tallies"

    # Dropped and created again under the same name: another table, not touched.
    thread, _, errors = start_backfill(
        db, "CALL migrate_backfill('tallies', 'n = n + 1', job_name => 'gone', batch_size => 1000, pause_ms => 50)")
    wait_for(lambda: job(conn, "gone")["rows_done"] > 0 if scalar(
        conn, "SELECT count(*) FROM migrate.backfills WHERE job_name = 'gone'") else False)
    scalar(conn, "SELECT migrate_backfill_pause('gone')")
    thread.join(60)
    conn.execute("BEGIN; SET LOCAL pg_migrate.allow = 'drop_table: a test'; DROP TABLE tallies; COMMIT")
    make_counter_table(conn, rows=1_000, name="tallies")
    with pytest.raises(psycopg.errors.UndefinedTable) as caught:
        conn.execute("CALL migrate_backfill_resume('gone')")
    assert "no longer exists" in caught.value.diag.message_primary
    assert "migrate_backfill_cancel('gone')" in caught.value.diag.message_hint
    assert scalar(conn, "SELECT count(*) FROM tallies WHERE n <> 0") == 0


@pytest.mark.parametrize("call, sqlstate", [
    ("CALL migrate_backfill(NULL, 'n = 1')", "22004"),
    ("CALL migrate_backfill('counters', NULL)", "22004"),
    ("CALL migrate_backfill('counters', 'n = 1', batch_size => NULL)", "22004"),
    ("CALL migrate_backfill('counters', 'n = 1', pause_ms => NULL)", "22004"),
    ("CALL migrate_backfill('counters', 'n = 1', lock_timeout_ms => NULL)", "22004"),
    ("CALL migrate_backfill('counters', 'n = 1', max_replication_lag_ms => -1)", "22023"),
    ("CALL migrate_backfill('counters', 'n = 1', batch_size => 0)", "22023"),
    ("CALL migrate_backfill('counters', 'n = 1', target_batch_ms => 0)", "22023"),
    ("CALL migrate_backfill('counters', 'n = 1', job_name => '')", "22023"),
    ("CALL migrate_backfill_resume(NULL)", "22004"),
    ("SELECT migrate_backfill_pause(NULL)", "22004"),
    ("SELECT migrate_backfill_cancel(NULL)", "22004"),
    ("CALL migrate_set_not_null(NULL, 'role')", "22004"),
    ("CALL migrate_set_not_null('counters', 'role', NULL)", "22004"),
    ("SELECT migrate_load(NULL)", "22004"),
])
def test_every_argument_is_checked_up_front(db, call, sqlstate):
    conn = connect(db)
    conn.execute("SET statement_timeout = '30s'")  # resume(NULL) used to loop until then
    make_counter_table(conn, rows=1_000)
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(call)
    assert caught.value.sqlstate == sqlstate, caught.value
    no_change(conn)


def test_a_cancel_ends_a_long_pause_between_batches(db):
    conn = connect(db)
    make_counter_table(conn, rows=5_000)
    thread, pid, errors = start_backfill(
        db, "CALL migrate_backfill('counters', 'n = n + 1', job_name => 'nap', batch_size => 1000, pause_ms => 600000)")
    wait_for(lambda: job(conn, "nap")["rows_done"] > 0 if scalar(
        conn, "SELECT count(*) FROM migrate.backfills") else False)
    wait_for(lambda: scalar(conn, "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)) == "PgSleep")
    assert scalar(conn, "SELECT pg_cancel_backend(%s)", (pid,))
    thread.join(120)
    assert not thread.is_alive(), "the CALL still sleeps after a cancel"
    assert errors and errors[0].sqlstate == "57014"
    assert job(conn, "nap")["rows_done"] == 1000
    conn.execute("SELECT migrate_backfill_cancel('nap')")


def test_a_users_own_sqlstate_from_a_batch_arrives_as_is(db):
    conn = connect(db)
    make_counter_table(conn, rows=3_000)
    conn.execute("""CREATE FUNCTION refuse_big() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id > 1500 THEN
                RAISE EXCEPTION 'row % is frozen', NEW.id USING ERRCODE = 'AB123';
            END IF;
            RETURN NEW;
        END $$""")
    conn.execute("CREATE TRIGGER frozen BEFORE UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION refuse_big()")
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("CALL migrate_backfill('counters', 'n = n + 1', job_name => 'own', batch_size => 500)")
    assert caught.value.sqlstate == "AB123", caught.value
    assert "is frozen" in caught.value.diag.message_primary
    assert "migrate_backfill_resume('own')" in caught.value.diag.message_hint
    row = conn.execute("SELECT status, last_sqlstate, rows_done FROM migrate.backfills").fetchone()
    assert row == ("failed", "AB123", 1500)


def test_pause_and_cancel_of_a_finished_or_unknown_job(db):
    conn = connect(db)
    make_counter_table(conn, rows=100)
    conn.execute("CALL migrate_backfill('counters', 'n = 1', job_name => 'fin')")
    for function in ["migrate_backfill_pause", "migrate_backfill_cancel"]:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
            conn.execute(f"SELECT {function}('fin')")
        assert "is done" in caught.value.diag.message_primary and caught.value.diag.message_hint
        with pytest.raises(psycopg.errors.UndefinedObject) as caught:
            conn.execute(f"SELECT {function}('nosuch')")
        assert "migrate_backfill_status" in caught.value.diag.message_hint
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("CALL migrate_backfill_resume('nosuch')")


def test_set_not_null_of_an_unknown_column(db):
    conn = connect(db)
    make_counter_table(conn, rows=10)
    with pytest.raises(psycopg.errors.UndefinedColumn) as caught:
        conn.execute("CALL migrate_set_not_null('counters', 'nosuch')")
    assert caught.value.diag.message_hint


def owner_role(conn, name):
    conn.execute(f"CREATE ROLE {name} LOGIN")
    conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {name}")
    conn.execute(f"GRANT SELECT, INSERT, UPDATE ON migrate.backfills TO {name}")
    conn.execute(f"GRANT USAGE ON SEQUENCE migrate.backfills_job_id_seq TO {name}")


def test_set_not_null_step_is_no_way_around_set_not_null(db):
    conn = connect(db)
    owner = f"owner_{db[-6:]}"
    owner_role(conn, owner)
    try:
        conn.execute(f"SET ROLE {owner}")
        make_counter_table(conn, rows=1_000)
        conn.execute("ALTER TABLE counters ADD CONSTRAINT keep_me CHECK (n >= 0)")
        conn.execute("UPDATE counters SET role = 'x'")
        # SET NOT NULL without the validated check (a full scan under ACCESS
        # EXCLUSIVE), and dropping an arbitrary constraint: both refused.
        for args in ["'counters'::regclass, 'role', 'counters_role_not_null', 'set', 1000",
                     "'counters'::regclass, 'role', 'keep_me', 'set', 1000",
                     "'counters'::regclass, 'role', 'counters_role_not_null', 'add', 1000"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT migrate.set_not_null_step({args})")
        # Inside a DO block (which may commit, like the procedure): still only
        # the procedure's own steps, with its own check name.
        for args in ["'counters'::regclass, 'role', 'counters_role_not_null', 'set', 1000",
                     "'counters'::regclass, 'role', 'keep_me', 'set', 1000",
                     "'counters'::regclass, 'role', 'keep_me', 'add', 1000"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"DO $$ BEGIN PERFORM migrate.set_not_null_step({args}); END $$")
        assert not scalar(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'counters'::regclass AND attname = 'role'")
        assert scalar(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'counters'::regclass AND contype = 'c'") == 1
        conn.execute("CALL migrate_set_not_null('counters', 'role')")  # the way that is allowed
        assert scalar(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'counters'::regclass AND attname = 'role'")
    finally:
        conn.execute("RESET ROLE")
        conn.execute("BEGIN; SET LOCAL pg_migrate.allow = 'drop_table: a test'; DROP TABLE IF EXISTS counters; COMMIT")
        conn.execute(f"DROP OWNED BY {owner}")
        conn.execute(f"DROP ROLE {owner}")


def test_a_job_runs_as_the_role_that_started_it(db):
    """Batches run as the job's role, whoever resumes it; a role that is not a
    member of it cannot run, pause or cancel it, nor call its batches directly."""
    conn = connect(db)
    suffix = db[-6:]
    owner, stranger = f"owner_{suffix}", f"stranger_{suffix}"
    owner_role(conn, owner)
    owner_role(conn, stranger)  # may write migrate.backfills, but has no right on the table
    try:
        conn.execute(f"SET ROLE {owner}")
        make_counter_table(conn, rows=10_000)
        conn.execute("RESET ROLE")
        thread, _, errors = start_backfill(
            db, "CALL migrate_backfill('counters', 'role = current_user', job_name => 'mine', "
                "batch_size => 500, pause_ms => 50)", setup=[f"SET ROLE {owner}"])
        wait_for(lambda: scalar(conn, "SELECT coalesce(max(rows_done), 0) FROM migrate.backfills") > 0)
        scalar(conn, "SELECT migrate_backfill_pause('mine')")
        thread.join(60)
        assert not errors, errors
        done_before = job(conn, "mine")["rows_done"]
        job_id = scalar(conn, "SELECT job_id FROM migrate.backfills WHERE job_name = 'mine'")

        conn.execute(f"SET ROLE {stranger}")
        for call in ["CALL migrate_backfill_resume('mine')", "SELECT migrate_backfill_cancel('mine')"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(call)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(f"SELECT migrate.backfill_batch({job_id})")
        assert caught.value.sqlstate in ("55000", "42501"), caught.value
        conn.execute("RESET ROLE")
        assert job(conn, "mine")["rows_done"] == done_before

        conn.execute("CALL migrate_backfill_resume('mine')")  # a superuser resumes: still the owner's batches
        assert dict(conn.execute("SELECT role, count(*) FROM counters GROUP BY role").fetchall()) == {owner: 10_000}
    finally:
        conn.execute("RESET ROLE")
        conn.execute("BEGIN; SET LOCAL pg_migrate.allow = 'drop_table: a test'; DROP TABLE IF EXISTS counters; COMMIT")
        for role in (owner, stranger):
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_a_paused_job_of_0_1_0_resumes_after_the_update_and_finishes_exactly_once():
    """A cluster on the 0.1.0 build with a paused backfill; the binaries are
    replaced by this build and the extension updated: the job's options move
    into its options column, and the resumed job updates every row once."""
    release = ROOT / "target/pg/v0.1.0"
    if not (release / ".built-from").exists():
        pytest.skip("no 0.1.0 build: scripts/pgtree.sh release 0.1.0")
    old_bin = subprocess.run([str(ROOT / "scripts/pgtree.sh"), "release", "0.1.0"], check=True,
                             capture_output=True, text=True).stdout.strip()
    new_bin = (ROOT / "target/clusters/test/bin").read_text().strip()
    cluster, port = str(ROOT / "scripts/cluster.sh"), PORT + 20
    env = dict(__import__("os").environ, PG_BIN=old_bin)
    subprocess.run([cluster, "start", "upgrade", str(port)], check=True, env=env)
    try:
        def open_db(dbname="postgres"):
            return psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname={dbname} "
                                   "options='-c lock_timeout=5s'", autocommit=True)
        open_db().execute("CREATE DATABASE up")
        conn = open_db("up")
        conn.execute("CREATE EXTENSION pg_migrate VERSION '0.1.0'")
        make_counter_table(conn, rows=30_000)
        runner = open_db("up")
        errors = []

        def run():
            try:
                runner.execute("CALL migrate_backfill('counters', 'n = n + 1', 'n = 0', job_name => 'old', "
                               "batch_size => 1000, pause_ms => 30, max_retries => 3)")
            except psycopg.Error as error:
                errors.append(error)
        thread = threading.Thread(target=run)
        thread.start()
        wait_for(lambda: scalar(conn, "SELECT coalesce(max(rows_done), 0) FROM migrate.backfills") >= 3000)
        scalar(conn, "SELECT migrate_backfill_pause('old')")
        thread.join(60)
        assert not errors, errors
        before = scalar(conn, "SELECT rows_done FROM migrate.backfills")
        assert 0 < before < 30_000
        conn.close()
        runner.close()

        subprocess.run([cluster, "switch", "upgrade"], check=True, env=dict(env, PG_BIN=new_bin))
        conn = open_db("up")
        conn.execute("ALTER EXTENSION pg_migrate UPDATE TO '0.2.0'")
        row = conn.execute("SELECT status, rows_done, options, search_path, run_as::regrole::text "
                           "FROM migrate.backfills").fetchone()
        assert row[:2] == ("paused", before)
        assert row[2] == {"batch_size": 1000, "pause_ms": 30, "target_batch_ms": None, "max_replication_lag_ms": None,
                          "lock_timeout_ms": 1000, "max_retries": 3, "notice_interval_ms": 10000}
        assert row[3:] == ("pg_catalog, pg_temp", "postgres")
        assert scalar(conn, "SELECT table_name FROM migrate_backfill_status") == "counters"
        conn.execute("CALL migrate_backfill_resume('old')")
        assert scalar(conn, "SELECT status FROM migrate.backfills") == "done"
        assert conn.execute("SELECT count(*), min(n), max(n) FROM counters").fetchone() == (30_000, 1, 1)
        assert scalar(conn, "SELECT rows_done FROM migrate.backfills") == 30_000
        conn.close()
    finally:
        subprocess.run([cluster, "stop", "upgrade"], check=False)
