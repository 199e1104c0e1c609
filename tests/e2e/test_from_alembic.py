"""Coming from Alembic: a realistic Alembic project (tests/e2e/alembic_project),
run with real Alembic against scratch databases, converted with
scripts/migrate-from-alembic, applied with pg_migrate's psql plan, and compared
(pg_dump --schema-only, the version tables aside) with what Alembic itself
builds. A third database is taken halfway by Alembic, adopted with
migrate_adopt_alembic(keep_in_sync => true), finished by pg_migrate and handed
back to Alembic.
"""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from conftest import PORT, ROOT, SESSION_OPTIONS, connect, psql, refused, scalar, unique_name

PROJECT = ROOT / "tests/e2e/alembic_project"
CONVERTER = ROOT / "scripts/migrate-from-alembic"
ALEMBIC = Path(sys.executable).parent / "alembic"
ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PGOPTIONS=SESSION_OPTIONS)

DATA_MIGRATION = "a0bdcee01a10"
PASS_DOWNGRADE = "3e4c5d6f7a03"
CONCURRENT_INDEX = "4f5d6e7a8b04"
BILLING_HEAD = "6b7f8a9cad06"


def run_converter(out_dir):
    return subprocess.run([sys.executable, str(CONVERTER), "-c", str(PROJECT / "alembic.ini"), str(out_dir)],
                          capture_output=True, text=True, env=ENV, timeout=300)


def alembic(dbname, *args):
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{PORT}/{dbname}"
    result = subprocess.run([str(ALEMBIC), "-c", str(PROJECT / "alembic.ini"), "-x", f"url={url}", *args],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def plain_db():
    """A fresh database without the extension, for Alembic alone."""
    name = f"alembic_{os.getpid()}_{unique_name()}"
    with connect("postgres") as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connect("postgres") as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    return out, run_converter(out)


def schema(dbname):
    """pg_dump --schema-only, without the version table, the extension line
    and what changes from dump to dump (comments, \\restrict keys)."""
    result = subprocess.run(["pg_dump", "--schema-only", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres",
                             "--exclude-table=alembic_version", dbname],
                            capture_output=True, text=True, check=True, timeout=120)
    keep = []
    for line in result.stdout.splitlines():
        if not line.strip() or line.startswith("--") or line.startswith(("\\restrict", "\\unrestrict")):
            continue
        if "EXTENSION" in line and "pg_migrate" in line:
            continue
        keep.append(line)
    return "\n".join(keep)


def versions(dbname):
    with connect(dbname) as conn:
        return sorted(row[0] for row in conn.execute("SELECT version_num FROM alembic_version"))


def load_converted(dbname, out):
    script = subprocess.run([str(ROOT / "scripts/migrate-load-local"), str(out)], capture_output=True,
                            text=True, check=True).stdout
    psql(dbname, script)


def plan(dbname, target, direction="upgrade"):
    return psql(dbname, f"SELECT * FROM migrate_plan('{target}', '{direction}') \\gexec\n")


def test_the_converter_writes_the_graph_and_names_what_it_could_not_convert(converted):
    out, result = converted
    assert result.returncode == 3, result.stdout + result.stderr
    assert DATA_MIGRATION in result.stderr and "reads rows through op.get_bind()" in result.stderr
    files = {path.name.split("_")[0]: path.read_text() for path in out.glob("*.sql")}
    assert len(files) == 10

    backfill = files[DATA_MIGRATION]
    upgrade = backfill.split("-- migrate:upgrade\n")[1].split("-- migrate:downgrade")[0]
    assert upgrade.startswith("-- Review: ")
    assert "SELECT id, email FROM accounts" in upgrade
    # What it could convert is kept: the schema statement after the read.
    assert "CREATE INDEX ix_accounts_display_name ON accounts (display_name);" in upgrade

    assert "-- Transactional: false" in files[PASS_DOWNGRADE]
    assert files[PASS_DOWNGRADE].rstrip().endswith("-- migrate:downgrade")
    assert f"empty downgrade      {PASS_DOWNGRADE}" in result.stdout
    assert "-- Transactional: false" in files[CONCURRENT_INDEX]
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_projects_account_id" in files[CONCURRENT_INDEX]
    assert "-- Transactional: false" not in files["1c2a3e4f5a01"]

    assert "-- Revises: 6b7f8a9cad06, 8d9bacceef08\n" in files["9eacbddf0f09"]
    assert "-- Revises:\n" in files["1c2a3e4f5a01"]
    # depends_on = "billing" is a label in Alembic: the file names the revision.
    assert "-- Depends On: 5a6e7f8b9c05\n" in files["8d9bacceef08"]
    assert "-- Branch Labels: billing\n" in files["5a6e7f8b9c05"]
    assert "-- Create Date: 2026-02-20 10:00:00.000000\n" in files["9eacbddf0f09"]
    # No alembic_version bookkeeping, no BEGIN/COMMIT of Alembic's own.
    for text in files.values():
        assert "alembic_version" not in text and "BEGIN;" not in text and "COMMIT;" not in text


def test_a_second_run_writes_the_same_bytes(converted, tmp_path):
    out, _ = converted
    again = run_converter(tmp_path)
    assert again.returncode == 3
    first = {p.name: p.read_bytes() for p in out.glob("*.sql")}
    second = {p.name: p.read_bytes() for p in tmp_path.glob("*.sql")}
    assert first == second


def test_the_loaded_graph_is_alembics(converted, db):
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    out, _ = converted
    load_converted(db, out)
    scripts = ScriptDirectory.from_config(Config(str(PROJECT / "alembic.ini")))
    expected = {}
    for script in scripts.walk_revisions():
        parents = script.down_revision
        parents = [] if parents is None else [parents] if isinstance(parents, str) else list(parents)
        expected[script.revision] = (parents, sorted(script._orig_branch_labels or ()),
                                     list(script._resolved_dependencies), script.doc)
    with connect(db) as conn:
        rows = conn.execute("SELECT revision, parents, branch_labels, depends_on, message FROM migrate_history()")
        loaded = {r[0]: (list(r[1]), sorted(r[2]), list(r[3]), r[4]) for r in rows}
        assert loaded == expected
        assert [r[0] for r in conn.execute("SELECT revision FROM migrate_heads()")] == [
            h for h in scripts.get_heads()]


def test_the_plan_builds_and_removes_what_alembic_does(converted, db, plain_db):
    out, _ = converted
    load_converted(db, out)
    plan(db, "head")
    alembic(plain_db, "upgrade", "heads")
    built = schema(db)
    assert "CREATE INDEX ix_projects_account_id" in built and "'paused'" in built
    assert built == schema(plain_db)

    plan(db, "base", "downgrade")
    alembic(plain_db, "downgrade", "base")
    assert "CREATE TABLE" not in schema(db)
    assert schema(db) == schema(plain_db)
    with connect(db) as conn:
        assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 0


def test_a_database_alembic_took_halfway_is_adopted_finished_and_handed_back(converted, db, plain_db):
    out, _ = converted
    # Alembic takes the database halfway: up to the billing branch's head.
    alembic(db, "upgrade", BILLING_HEAD)
    alembic(plain_db, "upgrade", BILLING_HEAD)
    with connect(db) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('ada@example.com'), ('grace@example.com')")
        conn.execute("INSERT INTO projects (account_id, name, status) VALUES (1, 'engine', 'paused')")
    load_converted(db, out)

    with connect(db) as conn:
        stamped = [r[0] for r in conn.execute(
            "SELECT revision FROM migrate_adopt_alembic(keep_in_sync => true)")]
        assert stamped == ["1c2a3e4f5a01", "2d3b4c5e6f02", PASS_DOWNGRADE, CONCURRENT_INDEX,
                           "5a6e7f8b9c05", BILLING_HEAD]
        assert scalar(conn, "SELECT count(*) FROM migrate.applied WHERE method = 'stamp' AND duration IS NULL") == 6
        detail = scalar(conn, "SELECT detail FROM migrate.events WHERE action = 'adopt'")
        assert detail == "from public.alembic_version: heads 6b7f8a9cad06; 6 revisions stamped; keep_in_sync on"
        # Adopting again changes nothing.
        assert conn.execute("SELECT * FROM migrate_adopt_alembic(keep_in_sync => true)").fetchall() == []
    assert versions(db) == [BILLING_HEAD]

    # pg_migrate goes on, one target at a time; Alembic does the same on its own
    # database, and the version tables agree after every step (a branch
    # created, a dependency across branches, a merge).
    for target in ["7c8a9bbdce07", "8d9bacceef08", "head"]:
        plan(db, target)
        alembic(plain_db, "upgrade", target if target != "head" else "heads")
        assert versions(db) == versions(plain_db), target
    assert schema(db) == schema(plain_db)
    with connect(db) as conn:
        # The Python data migration did not run under pg_migrate (its Review block says so).
        assert scalar(conn, "SELECT count(*) FROM accounts WHERE display_name = ''") == 2

    # Downgrades and stamps keep it in sync too.
    plan(db, CONCURRENT_INDEX, "downgrade")
    alembic(plain_db, "downgrade", CONCURRENT_INDEX)
    assert versions(db) == versions(plain_db) == [CONCURRENT_INDEX]
    with connect(db) as conn:
        conn.execute("SELECT * FROM migrate_stamp('5a6e7f8b9c05')")
    assert versions(db) == ["5a6e7f8b9c05"]
    with connect(db) as conn:
        conn.execute(f"SELECT * FROM migrate_stamp('{CONCURRENT_INDEX}')")
    assert versions(db) == [CONCURRENT_INDEX]

    # And the team can switch back: Alembic finishes from where pg_migrate left it.
    alembic(db, "upgrade", "heads")
    alembic(plain_db, "upgrade", "heads")
    assert versions(db) == versions(plain_db)
    assert schema(db) == schema(plain_db)

    # Stopping the sync: the version table is left as it is.
    with connect(db) as conn:
        conn.execute("SELECT * FROM migrate_adopt_alembic(keep_in_sync => false)")
        assert scalar(conn, "SELECT count(*) FROM migrate.alembic_sync") == 0


def test_adopting_refuses_what_it_cannot_trust(converted, db):
    out, _ = converted
    with connect(db) as conn:
        refused(conn, "SELECT * FROM migrate_adopt_alembic()", "42P01")
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('feedfacecafe')")
        error = refused(conn, "SELECT * FROM migrate_adopt_alembic()", "42704")
        assert "feedfacecafe" in str(error) and "migrate-from-alembic" in error.diag.message_hint
        conn.execute("CREATE TABLE not_a_version_table (id int)")
        refused(conn, "SELECT * FROM migrate_adopt_alembic('not_a_version_table')", "42703")
        refused(conn, "SELECT * FROM migrate_adopt_alembic(NULL)", "22004")
    load_converted(db, out)
    with connect(db) as conn:
        conn.execute("SELECT * FROM migrate_stamp('7c8a9bbdce07')")
        conn.execute(f"UPDATE alembic_version SET version_num = '{BILLING_HEAD}'")
        error = refused(conn, "SELECT * FROM migrate_adopt_alembic()", "55000")
        assert "7c8a9bbdce07" in str(error)
        assert scalar(conn, "SELECT count(*) FROM migrate.events WHERE action = 'adopt'") == 0

        # A role that may record revisions but not rewrite the version table
        # cannot ask for it to be kept in sync.
        role = f"deployer_{unique_name()}"
        conn.execute(f"CREATE ROLE {role}")
        try:
            conn.execute(f"GRANT INSERT, UPDATE, DELETE ON migrate.applied TO {role}")
            conn.execute(f"GRANT INSERT ON migrate.events TO {role}")
            conn.execute(f"GRANT SELECT ON alembic_version TO {role}")
            conn.execute("SELECT * FROM migrate_stamp('base', purge => true)")
            conn.execute(f"SET ROLE {role}")
            error = refused(conn, "SELECT * FROM migrate_adopt_alembic(keep_in_sync => true)", "42501")
            assert "INSERT and DELETE" in str(error)
            assert len(conn.execute("SELECT * FROM migrate_adopt_alembic()").fetchall()) == 6
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
