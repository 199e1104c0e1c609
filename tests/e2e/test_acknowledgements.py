"""Acknowledgements are scoped to one transaction, give a real reason, and
cannot be borrowed: pg_migrate.allow counts only when SET LOCAL set it in the
statement's transaction, and a revision's "-- Allow:" lines cover only that
revision's own statements, run by the role running the plan, until the step
ends, fails or the plan unlocks."""

import psycopg
import pytest

from conftest import PORT, SESSION_OPTIONS, connect, load, psql, refused, revision, scalar

DROP = "ALTER TABLE users DROP COLUMN code"
REASON = "codes moved to the codes table in v42"


@pytest.fixture
def conn(db):
    c = connect(db)
    c.execute("SET lock_timeout = '5s'")
    c.execute("CREATE TABLE users (id bigint CONSTRAINT users_pkey PRIMARY KEY, age integer, code text, email text)")
    c.execute("INSERT INTO users SELECT g, g % 90, 'c' || g, 'e' || g FROM generate_series(1, 100) g")
    return c  # the CREATE TABLE fired the guard, so the library (and its settings) is loaded


def connect_as(db, role):
    return psycopg.connect(f"host=127.0.0.1 port={PORT} user={role} dbname={db} options='{SESSION_OPTIONS}'",
                           autocommit=True)


def logged(conn):
    return conn.execute("SELECT rule, reason, revision_id, source FROM migrate.guard_log ORDER BY log_id").fetchall()


def test_the_hint_writes_out_the_transaction(conn):
    error = refused(conn, DROP, "MG002")
    assert (f"To do it anyway: BEGIN; SET LOCAL pg_migrate.allow = 'drop_column: <reason>'; {DROP}; COMMIT;"
            in error.diag.message_hint), error.diag.message_hint
    with conn.transaction():  # what the HINT says works, and is audited
        conn.execute(f"SET LOCAL pg_migrate.allow = 'drop_column: {REASON}'")
        conn.execute(DROP)
    assert logged(conn) == [("drop_column", REASON, None, "setting")]


def test_a_session_wide_set_acknowledges_nothing(conn):
    conn.execute(f"SET pg_migrate.allow = 'drop_column: {REASON}'")  # lasts for the session
    error = refused(conn, DROP, "MG002")  # a later transaction
    assert "not by SET LOCAL in this transaction" in error.diag.message_hint
    with pytest.raises(psycopg.Error) as caught:
        with conn.transaction():
            conn.execute(f"SET pg_migrate.allow = 'drop_column: {REASON}'")  # inside the block, still session-wide
            conn.execute(DROP)
    assert caught.value.sqlstate == "MG002"
    with conn.transaction():
        conn.execute(f"SELECT pg_catalog.set_config('pg_migrate.allow', 'drop_column: {REASON}', true)")
        conn.execute(DROP)  # set_config(..., true) is SET LOCAL
    assert logged(conn) == [("drop_column", REASON, None, "setting")]
    conn.execute("ALTER TABLE users ADD COLUMN code text")
    conn.execute("UPDATE users SET code = 'x'")
    refused(conn, DROP, "MG002")  # the SET LOCAL ended with its transaction; the session's value is still void


def test_stored_acknowledgements_are_refused(db, conn):
    conn.execute("DROP ROLE IF EXISTS ack_owner")
    conn.execute("CREATE ROLE ack_owner LOGIN")
    conn.execute("ALTER TABLE users OWNER TO ack_owner")
    for statement in [f"ALTER ROLE ack_owner SET pg_migrate.allow = 'drop_column: {REASON}'",
                      f'ALTER DATABASE "{db}" SET pg_migrate.allow = \'drop_column: {REASON}\'',
                      f"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET pg_migrate.allow = 'drop_column: {REASON}' "
                      "AS 'SELECT 1'"]:
        error = refused(conn, statement, "22023")
        assert "counts only for the transaction that makes it" in str(error)
        assert "BEGIN; SET LOCAL pg_migrate.allow" in error.diag.message_hint

    # A session that has not loaded the library cannot check the value, so it is stored...
    with connect(db) as fresh:
        fresh.execute(f"ALTER ROLE ack_owner SET pg_migrate.allow = 'drop_column: {REASON}'")
    try:
        with connect_as(db, "ack_owner") as app:
            seen = []
            app.add_notice_handler(lambda diag: seen.append(diag.message_primary))
            refused(app, DROP, "MG002")  # ...and ignored in the role's sessions
            assert any("cannot be set in a role's or database's settings" in m for m in seen), seen
    finally:
        conn.execute("ALTER ROLE ack_owner RESET ALL")
    assert logged(conn) == []


def test_placeholder_reasons_are_refused(conn):
    for value in ["drop_column: <reason>", "drop_column: <why this is safe>", "drop_column: todo",
                  "drop_column: n/a", "drop_column: -", "drop_column:   ", "drop_column"]:
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            with conn.transaction():
                conn.execute(f"SET LOCAL pg_migrate.allow = '{value}'")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        load(conn, revision("acac00000009", "SELECT 1;", extra="-- Allow: drop_column <reason>"))


def allow_revision(upgrade, rev_id="acac00000001", transactional=False):
    return revision(rev_id, upgrade, "SELECT 1;", transactional=transactional,
                    extra=f"-- Allow: drop_column {REASON}")


def plan(conn):
    return [row[0] for row in conn.execute("SELECT * FROM migrate_plan('head')")]


def test_a_plan_step_uses_its_allow_lines_for_its_own_statements(db, conn):
    load(conn, allow_revision(f"{DROP};\nCREATE INDEX CONCURRENTLY users_age_idx ON users (age);"))
    psql(db, "SELECT * FROM migrate_plan('head') \\gexec")
    assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 1
    assert logged(conn) == [("drop_column", REASON, "acac00000001", "revision")]


def test_an_offline_script_uses_its_allow_lines(db, conn):
    load(conn, allow_revision(f"{DROP};", transactional=True))
    psql(db, scalar(conn, "SELECT migrate_sql('head')"))
    assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 1
    assert logged(conn) == [("drop_column", REASON, "acac00000001", "revision")]


def test_a_failed_steps_allow_lines_end_with_it(conn):
    # What psql does with ON_ERROR_STOP in an interactive session: \gexec stops
    # at the failed row, end_step never runs, and the session goes on.
    load(conn, allow_revision(f"CREATE INDEX CONCURRENTLY users_nope_idx ON users (no_such_column);\n{DROP};"))
    rows = plan(conn)
    failed = None
    for row in rows:
        try:
            conn.execute(row)
        except psycopg.Error as error:
            failed = error
            break
    assert failed is not None and failed.sqlstate == "42703"
    refused(conn, DROP, "MG002")  # the very statement the Allow line would have covered
    assert logged(conn) == []
    refused(conn, rows[-2], "55000")  # end_step: a statement of the revision failed
    conn.execute("SELECT migrate.unlock()")


def test_a_plan_steps_allow_lines_cover_nothing_else(conn):
    load(conn, allow_revision(f"CREATE INDEX CONCURRENTLY users_age_idx ON users (age);\n{DROP};"))
    lock, begin = plan(conn)[:2]
    conn.execute(lock)
    conn.execute(begin)
    refused(conn, "ALTER TABLE users DROP COLUMN email", "MG002")  # not one of the revision's statements
    conn.execute("SELECT migrate.unlock()")
    refused(conn, DROP, "MG002")  # unlock ended the step
    assert logged(conn) == []


def test_allow_lines_apply_only_to_the_role_running_the_plan(conn):
    conn.execute("DROP ROLE IF EXISTS ack_app")
    conn.execute("CREATE ROLE ack_app")
    conn.execute("ALTER TABLE users OWNER TO ack_app")
    load(conn, allow_revision(f"{DROP};\nALTER TABLE users DROP COLUMN email;"))
    rows = plan(conn)
    conn.execute(rows[0])
    conn.execute(rows[1])  # begin_step, as postgres
    conn.execute(DROP)  # the role that began the step
    conn.execute("SET ROLE ack_app")
    refused(conn, "ALTER TABLE users DROP COLUMN email", "MG002")  # the next statement of the step, as another role
    conn.execute("RESET ROLE")
    assert logged(conn) == [("drop_column", REASON, "acac00000001", "revision")]
    conn.execute("SELECT migrate.unlock()")


def test_other_roles_cannot_begin_a_step(db, conn):
    conn.execute("DROP ROLE IF EXISTS ack_other")
    conn.execute("CREATE ROLE ack_other LOGIN")
    conn.execute("GRANT ALL ON users TO ack_other")
    load(conn, allow_revision(f"{DROP};\nCREATE INDEX CONCURRENTLY users_age_idx ON users (age);"))
    rows = plan(conn)
    with connect_as(db, "ack_other") as other:
        for row in rows[:2] + rows[-2:]:  # lock, begin_step, end_step, unlock
            refused(other, row, "42501")
        conn.execute("GRANT EXECUTE ON FUNCTION migrate.begin_step(text, text, text) TO ack_other")
        error = refused(other, rows[1], "42501")  # checked inside as well
        assert "only a role that may record revisions" in str(error)
        refused(other, "SELECT * FROM migrate_upgrade('head')", "42501")
        refused(other, DROP, "MG002")
    assert logged(conn) == []


def test_a_role_granted_what_docs_functions_md_lists_can_run_a_plan(db, conn):
    conn.execute("DROP ROLE IF EXISTS ack_deployer")
    conn.execute("CREATE ROLE ack_deployer")
    for grant in ["INSERT, UPDATE, DELETE ON migrate.applied", "INSERT ON migrate.events",
                  "INSERT, UPDATE ON migrate.revisions", "ALL ON users", "CREATE ON SCHEMA public",
                  "EXECUTE ON FUNCTION migrate.lock(), migrate.unlock(), migrate.begin_step(text, text, text), "
                  "migrate.end_step(text, text, text, text), migrate.apply_step(text, text, text, text), "
                  "migrate.run_step(text, text, text, text)"]:
        conn.execute(f"GRANT {grant} TO ack_deployer")
    conn.execute("ALTER TABLE users OWNER TO ack_deployer")
    load(conn, allow_revision(f"{DROP};\nCREATE INDEX CONCURRENTLY users_age_idx ON users (age);"),
         revision("acac00000002", "CREATE TABLE notes (id bigint CONSTRAINT notes_pkey PRIMARY KEY);",
                  "DROP TABLE notes;", revises="acac00000001"))
    psql(db, "SET ROLE ack_deployer;\nSELECT * FROM migrate_plan('head') \\gexec")
    assert conn.execute("SELECT revision_id, applied_by FROM migrate.applied ORDER BY 1").fetchall() == [
        ("acac00000001", "ack_deployer"), ("acac00000002", "ack_deployer")]
    assert logged(conn) == [("drop_column", REASON, "acac00000001", "revision")]
