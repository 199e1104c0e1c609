"""End-to-end tests against a real scratch cluster (started by scripts/test.sh).

These cover what #[pg_test] cannot: statements psql runs at top level
(CREATE INDEX CONCURRENTLY through \\gexec), several sessions at once, and
backends killed halfway through an upgrade.
"""

import itertools
import os
import subprocess
import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest

PORT = int(os.environ.get("PGM_TEST_PORT", "54331"))
ROOT = Path(os.environ.get("PGM_ROOT", Path(__file__).resolve().parents[2]))
MIGRATIONS = ROOT / "migrations"
_counter = itertools.count()


# The guard refuses ACCESS EXCLUSIVE DDL on tables with rows without a lock_timeout
# (missing_lock_timeout); the tests run their DDL the way it asks.
SESSION_OPTIONS = "-c lock_timeout=5s"


def dsn(dbname):
    return f"host=127.0.0.1 port={PORT} user=postgres dbname={dbname} options='{SESSION_OPTIONS}'"


@pytest.fixture
def db():
    """A fresh database with the extension installed; dropped afterwards."""
    name = f"e2e_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_migrate")
    yield name
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def refused(conn, sql, sqlstate):
    """Run `sql`, which must fail with `sqlstate`; returns the error."""
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(sql)
    assert caught.value.sqlstate == sqlstate, f"{caught.value.sqlstate}: {caught.value}"
    return caught.value


def connect(dbname, **kwargs):
    kwargs.setdefault("autocommit", True)
    return psycopg.connect(dsn(dbname), **kwargs)


def psql(dbname, script, check=True, on_error_stop=True):
    """Run a script through psql, as a DBA would. Returns the CompletedProcess."""
    args = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", "-d", dbname]
    if on_error_stop:
        args += ["-v", "ON_ERROR_STOP=1"]
    env = dict(os.environ, PGOPTIONS=SESSION_OPTIONS)
    result = subprocess.run(args, input=script, capture_output=True, text=True, timeout=300, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"psql failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def revision(rev_id, upgrade, downgrade="", revises="", transactional=True, message=None, extra=""):
    """The text of a migration file."""
    header = [f"-- {message or 'revision ' + rev_id}", "--", f"-- Revision ID: {rev_id}", f"-- Revises: {revises}"]
    if not transactional:
        header.append("-- Transactional: false")
    if extra:
        header.append(extra)
    return "\n".join(header) + "\n\n-- migrate:upgrade\n" + textwrap.dedent(upgrade).strip() + \
        "\n\n-- migrate:downgrade\n" + textwrap.dedent(downgrade).strip() + "\n"


def load(conn, *sources):
    for source in sources:
        conn.execute("SELECT migrate_load(%s)", (source,))


def applied(conn):
    return {row[0] for row in conn.execute("SELECT revision_id FROM migrate.applied")}


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def unique_name():
    return uuid.uuid4().hex[:8]
