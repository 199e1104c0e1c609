"""Non-transactional revisions through the psql plan: CREATE INDEX CONCURRENTLY
really runs at top level, and a failed concurrent build (INVALID index) is
handled on the rerun."""

from conftest import applied, connect, load, psql, revision, scalar

BASE = revision("aaaa00000001", """
    CREATE TABLE accounts (id bigint CONSTRAINT accounts_pkey PRIMARY KEY, email text NOT NULL);
    INSERT INTO accounts SELECT g, 'user' || (g % 50) || '@example.com' FROM generate_series(1, 200) g;
""", "DROP TABLE accounts;", extra="-- Allow: drop_table test data only")

UNIQUE_CIC = revision("aaaa00000002", """
    CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_key ON accounts (email);
""", "DROP INDEX CONCURRENTLY IF EXISTS accounts_email_key;", revises="aaaa00000001", transactional=False)


def index_valid(conn, name):
    row = conn.execute("""SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                          WHERE c.relname = %s""", (name,)).fetchone()
    return None if row is None else row[0]


def test_upgrade_refuses_non_transactional_with_the_way_out(db):
    conn = connect(db)
    load(conn, BASE, UNIQUE_CIC)
    try:
        conn.execute("SELECT * FROM migrate_upgrade('head')")
        raise AssertionError("expected a refusal")
    except Exception as error:  # psycopg.errors.ActiveSqlTransaction
        assert error.sqlstate == "25001"
        assert "Transactional: false" in str(error)
        assert "migrate_plan('head') \\gexec" in error.diag.message_hint
    assert applied(conn) == set()  # nothing, not even the transactional first revision


def test_plan_builds_index_concurrently_and_reruns_after_invalid_index(db):
    conn = connect(db)
    load(conn, BASE, UNIQUE_CIC)

    # Duplicate emails: the concurrent unique build fails and leaves an INVALID index.
    first = psql(db, "SELECT * FROM migrate_plan('head') \\gexec\n", check=False)
    assert first.returncode != 0
    assert "could not create unique index" in first.stderr
    assert applied(conn) == {"aaaa00000001"}
    assert index_valid(conn, "accounts_email_key") is False

    # The new plan drops the invalid index before building it again.
    conn.execute("DELETE FROM accounts WHERE id > 50")
    plan = [r[0] for r in conn.execute("SELECT * FROM migrate_plan('head')")]
    assert any(s.strip().endswith('DROP INDEX CONCURRENTLY IF EXISTS public.accounts_email_key') for s in plan), plan
    psql(db, "SELECT * FROM migrate_plan('head') \\gexec\n")
    assert applied(conn) == {"aaaa00000001", "aaaa00000002"}
    assert index_valid(conn, "accounts_email_key") is True
    assert scalar(conn, "SELECT method FROM migrate.applied WHERE revision_id = 'aaaa00000002'") == "plan"

    # Downgrade through the plan too: DROP INDEX CONCURRENTLY at top level.
    psql(db, "SELECT * FROM migrate_plan('aaaa00000001', 'downgrade') \\gexec\n")
    assert applied(conn) == {"aaaa00000001"}
    assert index_valid(conn, "accounts_email_key") is None


def test_failed_statement_is_not_recorded_even_without_on_error_stop(db):
    conn = connect(db)
    load(conn, BASE, UNIQUE_CIC)
    result = psql(db, "SELECT * FROM migrate_plan('head') \\gexec\n", check=False, on_error_stop=False)
    assert "a statement of revision aaaa00000002 failed" in result.stderr
    assert applied(conn) == {"aaaa00000001"}
    # The lock was released at the end of the plan.
    assert scalar(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


def test_plan_is_refused_when_state_moved_underneath(db):
    conn = connect(db)
    load(conn, BASE)
    plan = [r[0] for r in conn.execute("SELECT * FROM migrate_plan('head')")]
    conn.execute("SELECT * FROM migrate_upgrade('head')")
    script = "".join(statement + "\n;\n" for statement in plan)
    result = psql(db, script, check=False)
    assert result.returncode != 0
    assert "revision aaaa00000001 is already applied" in result.stderr
    assert scalar(conn, "SELECT count(*) FROM migrate.events WHERE action = 'upgrade'") == 1


def test_offline_sql_script_runs_in_psql(db):
    conn = connect(db)
    load(conn, BASE, revision("aaaa00000002", """
        DELETE FROM accounts WHERE id > 50;
    """, "", revises="aaaa00000001"), revision("aaaa00000003", """
        CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_key ON accounts (email);
    """, "DROP INDEX CONCURRENTLY IF EXISTS accounts_email_key;", revises="aaaa00000002", transactional=False))
    script = scalar(conn, "SELECT migrate_sql('head')")
    assert script.count("BEGIN;") == 1 and script.count("COMMIT;") == 1
    assert "-- Running upgrade aaaa00000001 -> aaaa00000002" in script
    assert applied(conn) == set()  # generating the script runs nothing
    psql(db, script)
    assert applied(conn) == {"aaaa00000001", "aaaa00000002", "aaaa00000003"}
    assert index_valid(conn, "accounts_email_key") is True
    assert scalar(conn, "SELECT count(*) FROM migrate.applied WHERE method = 'sql'") == 3
    down = scalar(conn, "SELECT migrate_sql('base', 'downgrade')")
    psql(db, down)
    assert applied(conn) == set()
    assert scalar(conn, "SELECT to_regclass('accounts')") is None


def test_each_step_check_refuses_a_moved_state(db):
    """The checks a plan step makes by key: defined, same checksum, parents
    applied, not already applied; downgrade: applied, no applied child."""
    conn = connect(db)
    child = revision("aaaa00000003", "CREATE TABLE child_t (id int);", "DROP TABLE child_t;", revises="aaaa00000001")
    load(conn, BASE, child)
    sums = dict(conn.execute("SELECT revision_id, checksum FROM migrate.revisions"))

    def refusal(sql, *args):
        try:
            conn.execute(sql, args)
        except Exception as error:  # psycopg.errors.ObjectNotInPrerequisiteState
            assert error.sqlstate == "55000", error
            return str(error)
        raise AssertionError(f"expected a refusal: {sql} {args}")

    step = "SELECT * FROM migrate.apply_step(%s, %s, %s)"
    assert "aaaa00000009 is not defined" in refusal(step, "aaaa00000009", "upgrade", "x")
    assert "reloaded with a different text" in refusal(step, "aaaa00000001", "upgrade", "x")
    assert "needs aaaa00000001, which is not applied" in refusal(step, "aaaa00000003", "upgrade", sums["aaaa00000003"])
    assert "aaaa00000001 is not applied" in refusal(step, "aaaa00000001", "downgrade", sums["aaaa00000001"])
    assert "needs aaaa00000001" in refusal("SELECT migrate.begin_step(%s, %s, %s)",
                                           "aaaa00000003", "upgrade", sums["aaaa00000003"])
    conn.execute(step, ("aaaa00000001", "upgrade", sums["aaaa00000001"]))
    conn.execute(step, ("aaaa00000003", "upgrade", sums["aaaa00000003"]))
    assert applied(conn) == {"aaaa00000001", "aaaa00000003"}
    assert "aaaa00000003 is already applied" in refusal(step, "aaaa00000003", "upgrade", sums["aaaa00000003"])
    assert "cannot be downgraded while aaaa00000003 is applied" in refusal(
        step, "aaaa00000001", "downgrade", sums["aaaa00000001"])
    conn.execute(step, ("aaaa00000003", "downgrade", sums["aaaa00000003"]))
    conn.execute(step, ("aaaa00000001", "downgrade", sums["aaaa00000001"]))
    assert applied(conn) == set()
