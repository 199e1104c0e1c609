"""ALTER EXTENSION pg_migrate UPDATE from the released 0.1.0.

The 0.1.0 build (from its commit in this repository's history, by
scripts/pgtree.sh release) makes a database with real state: the example
migrations loaded and applied through the psql plan, a finished and a paused
backfill, acknowledged guard events. Then the cluster's binaries are swapped for
the current build, as a package upgrade and restart would, and the extension is
updated. Every row must be kept, the paused backfill must finish exactly once,
and the extension's objects must equal a fresh install's.
"""

import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

import conftest
from conftest import MIGRATIONS, PORT, ROOT
from extension_objects import describe, diff

UPGRADE_PORT = PORT + 30
CLUSTER = str(ROOT / "scripts/cluster.sh")
RELEASE = "0.1.0"
SESSION = "-c lock_timeout=5s"


def dsn(dbname):
    return f"host=127.0.0.1 port={UPGRADE_PORT} user=postgres dbname={dbname} options='{SESSION}'"


def connect(dbname):
    return psycopg.connect(dsn(dbname), autocommit=True)


def psql(dbname, script):
    args = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(UPGRADE_PORT), "-U", "postgres",
            "-d", dbname, "-v", "ON_ERROR_STOP=1", "-v", f"migrations={MIGRATIONS}"]
    result = subprocess.run(args, input=script, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PGOPTIONS=SESSION))
    assert result.returncode == 0, f"psql failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def state(conn):
    """Every row of every table in schema migrate, by table, as text."""
    tables = [row[0] for row in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'migrate' AND c.relkind = 'r' ORDER BY 1")]
    result = {}
    for table in tables:
        columns = [row[0] for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", (f"migrate.{table}",))]
        rows = conn.execute(f'SELECT * FROM migrate."{table}" ORDER BY 1').fetchall()
        result[table] = [dict(zip(columns, map(str, row))) for row in rows]
    return result


@pytest.fixture(scope="module")
def bins():
    """(0.1.0's bin directory, the current build's)."""
    old = subprocess.run([str(ROOT / "scripts/pgtree.sh"), "release", RELEASE], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    new = os.environ.get("PG_BIN") or subprocess.run(
        [str(ROOT / "scripts/pgtree.sh"), "bindir", "test"], check=True, capture_output=True, text=True).stdout.strip()
    return old, new


@pytest.fixture(scope="module")
def cluster(bins):
    old, _ = bins
    env = dict(os.environ, PG_BIN=old)
    subprocess.run([CLUSTER, "start", "upgrade", str(UPGRADE_PORT), "shared_preload_libraries=pg_migrate"],
                   check=True, env=env)
    yield
    subprocess.run([CLUSTER, "stop", "upgrade"], check=False)


def make_released_state():
    """A database as a team using 0.1.0 would have it."""
    with connect("postgres") as admin:
        admin.execute("CREATE DATABASE app")
    psql("app", r"""
CREATE EXTENSION pg_migrate;
SELECT count(*) FROM migrate_load_dir(:'migrations');
SELECT * FROM migrate_plan('head') \gexec
CREATE TABLE bf_done (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TABLE bf_paused (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO bf_done (id) SELECT g FROM generate_series(1, 3000) g;
INSERT INTO bf_paused (id) SELECT g FROM generate_series(1, 3000) g;
CALL migrate_backfill('bf_done', 'n = n + 1', job_name => 'finished', batch_size => 500);
CREATE TABLE scratch (id int PRIMARY KEY, legacy text);
INSERT INTO scratch SELECT g, 'x' FROM generate_series(1, 10) g;
BEGIN;
SET LOCAL pg_migrate.allow = 'drop_column: legacy is unused since v3';
ALTER TABLE scratch DROP COLUMN legacy;
COMMIT;
""")
    # A backfill paused from another session halfway through.
    done = threading.Event()
    errors = []

    def run():
        try:
            with connect("app") as conn:
                conn.execute("CALL migrate_backfill('bf_paused', 'n = n + 1', job_name => 'halfway', "
                             "batch_size => 100, pause_ms => 100)")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            done.set()

    worker = threading.Thread(target=run)
    worker.start()
    with connect("app") as conn:
        for _ in range(600):
            rows = conn.execute("SELECT rows_done FROM migrate.backfills WHERE job_name = 'halfway'").fetchone()
            if rows and rows[0] >= 300:
                break
            time.sleep(0.05)
        conn.execute("SELECT migrate_backfill_pause('halfway')")
    worker.join(timeout=120)
    assert done.is_set() and not errors, errors
    with connect("app") as conn:
        status, rows_done = conn.execute(
            "SELECT status, rows_done FROM migrate.backfills WHERE job_name = 'halfway'").fetchone()
        assert status == "paused" and 0 < rows_done < 3000, (status, rows_done)
        assert conn.execute("SELECT count(*) FROM migrate.guard_log").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM migrate.applied").fetchone()[0] == 15


def test_frozen_script_is_what_the_release_installs(bins):
    old, _ = bins
    released = Path(old).parents[3] / "share/postgresql/15/extension" / f"pg_migrate--{RELEASE}.sql"
    frozen = ROOT / "sql" / f"pg_migrate--{RELEASE}.sql"
    # pgrx orders the blocks by a dependency graph; compare them as a set.
    def blocks(path):
        return sorted(path.read_text().split("/* <begin connected objects> */"))

    assert blocks(released) == blocks(frozen), \
        f"{frozen} differs from what the {RELEASE} build generates ({released})"


def test_update_from_release_keeps_every_row_and_matches_a_fresh_install(bins, cluster):
    _, new = bins
    make_released_state()
    with connect("app") as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_migrate'").fetchone()[0] == RELEASE
        before = state(conn)

    # The new package is installed and the server restarted: same data, new binaries.
    subprocess.run([CLUSTER, "switch", "upgrade"], check=True, env=dict(os.environ, PG_BIN=new))
    with connect("app") as conn:
        # Until the update, the 0.1.0 definitions call the new library. Where a
        # signature changed, that is a clear error, never arguments of the wrong type.
        for call in ("SELECT migrate.backfill_prepare('bf_done'::regclass::oid, 'n = n + 1', NULL, 'early', "
                     "1000, 0, NULL, NULL, 1000, 10, 10000)",
                     "SELECT migrate.backfill_report(1)",
                     "SELECT * FROM migrate_review('head')",
                     "CALL migrate_backfill('bf_done', 'n = n + 1', job_name => 'early')"):
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
                conn.execute(call)
            assert caught.value.diag.message_hint == "ALTER EXTENSION pg_migrate UPDATE;", call
        assert conn.execute("SELECT count(*) FROM migrate.backfills WHERE job_name = 'early'").fetchone()[0] == 0
        conn.execute("ALTER EXTENSION pg_migrate UPDATE")
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_migrate'").fetchone()[0]
        assert version != RELEASE
        after = state(conn)
        updated = describe(conn)

    # Every row is kept: the same rows, with the same values in every column both versions have.
    assert set(before) <= set(after), f"tables lost: {set(before) - set(after)}"
    for table, old_rows in before.items():
        new_rows = after[table]
        if table == "events":
            update_events = [r for r in new_rows if r["action"] == "update"]
            assert len(update_events) == 1 and RELEASE in update_events[0]["detail"] and version in update_events[0]["detail"]
            new_rows = [r for r in new_rows if r["action"] != "update"]
        assert len(new_rows) == len(old_rows), f"migrate.{table}: {len(old_rows)} rows before, {len(new_rows)} after"
        for old_row, new_row in zip(old_rows, new_rows):
            common = {k: v for k, v in old_row.items() if k in new_row}
            assert common == {k: new_row[k] for k in common}, f"migrate.{table} row changed:\n{old_row}\n{new_row}"

    # The paused backfill resumes and finishes; every row was updated exactly once.
    with connect("app") as conn:
        conn.execute("CALL migrate_backfill_resume('halfway')")
        assert conn.execute("SELECT status FROM migrate.backfills WHERE job_name = 'halfway'").fetchone()[0] == "done"
        assert conn.execute("SELECT count(*), min(n), max(n) FROM bf_paused").fetchone() == (3000, 1, 1)
        assert conn.execute("SELECT count(*), min(n), max(n) FROM bf_done").fetchone() == (3000, 1, 1)
        # The revision engine still works on the updated state.
        assert conn.execute("SELECT count(*) FROM migrate_verify()").fetchone()[0] == 0
        assert [r[0] for r in conn.execute("SELECT revision FROM migrate_current()")] == ["f05c8a2d7e46"]

    # The same objects as a fresh install of the current version.
    with connect("postgres") as admin:
        admin.execute("CREATE DATABASE fresh")
    with connect("fresh") as conn:
        conn.execute("CREATE EXTENSION pg_migrate")
        fresh = describe(conn)
    assert updated == fresh, "the updated extension differs from a fresh install:\n" + diff(fresh, updated)


def test_release_script_installs_against_the_current_library():
    """CREATE EXTENSION ... VERSION '0.1.0' on the current build, then UPDATE:
    the current library still has every C function the 0.1.0 script names, and
    the result equals a fresh install. Runs on the main test cluster."""
    names = [f"from_release_{os.getpid()}", f"fresh_{os.getpid()}"]
    with conftest.connect("postgres") as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with conftest.connect(names[0]) as conn:
            conn.execute(f"CREATE EXTENSION pg_migrate VERSION '{RELEASE}'")
            conn.execute("ALTER EXTENSION pg_migrate UPDATE")
            updated = describe(conn)
        with conftest.connect(names[1]) as conn:
            conn.execute("CREATE EXTENSION pg_migrate")
            fresh = describe(conn)
        assert updated == fresh, diff(fresh, updated)
    finally:
        with conftest.connect("postgres") as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
