"""Drift (issue 12): DDL run outside any revision is recorded in migrate.drift,
reported by migrate_verify(), absorbed by hand or turned into a revision that
another database applies and downgrades.

The DDL comes from another role in another session, over TCP with its own
application_name, as a 3 a.m. psql hotfix would.
"""

import psycopg
import pytest

from conftest import PORT, SESSION_OPTIONS, connect, dsn, psql, refused, revision, scalar, load

ROLE = "drift_dba"


def connect_as(db, role, application_name="hotfix"):
    return psycopg.connect(
        f"host=127.0.0.1 port={PORT} user={role} dbname={db} application_name={application_name} "
        f"options='{SESSION_OPTIONS}'",
        autocommit=True,
    )


@pytest.fixture
def admin(db):
    c = connect(db)
    c.execute(f"DROP ROLE IF EXISTS {ROLE}")
    c.execute(f"CREATE ROLE {ROLE} LOGIN")
    c.execute(f"GRANT CREATE ON SCHEMA public TO {ROLE}")
    # The GRANT is drift too: the tests start from none.
    c.execute("SELECT migrate_drift_absorb(pg_catalog.array_agg(drift_id), 'test set-up') FROM migrate.drift")
    yield c
    c.execute(f"REASSIGN OWNED BY {ROLE} TO postgres")
    c.execute(f"DROP OWNED BY {ROLE}")
    c.close()
    with connect("postgres") as other:
        other.execute(f"DROP ROLE IF EXISTS {ROLE}")


def drift(conn, include_absorbed=False):
    return conn.execute(
        "SELECT drift_id, performed_by, session_role, application_name, pg_catalog.host(client_addr), command_tag, "
        "object_type, object_identity, statement, in_query, unrecorded_before "
        "FROM migrate_drift(%s)", (include_absorbed,)).fetchall()


def statements(conn):
    return [row[8] for row in drift(conn)]


def test_ddl_by_another_role_is_recorded_with_who_and_where(db, admin):
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)")
        hotfix.execute("ALTER TABLE orders ADD COLUMN note text")
        hotfix.execute("DROP TABLE orders")
        xid = scalar(hotfix, "SELECT pg_catalog.pg_current_xact_id()::text")
    rows = drift(admin)
    assert [(r[1], r[2], r[3], r[4], r[5], r[7], r[8]) for r in rows] == [
        (ROLE, ROLE, "hotfix", "127.0.0.1", "CREATE TABLE", "public.orders",
         "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)"),
        (ROLE, ROLE, "hotfix", "127.0.0.1", "ALTER TABLE", "public.orders", "ALTER TABLE orders ADD COLUMN note text"),
        (ROLE, ROLE, "hotfix", "127.0.0.1", "DROP TABLE", "public.orders", "DROP TABLE orders"),
    ]
    # Each command ran in its own transaction, before the last one checked here.
    xids = [int(x) for (x,) in admin.execute("SELECT xid::text FROM migrate_drift()")]
    assert len(set(xids)) == 3 and max(xids) < int(xid)


def test_the_ddl_role_cannot_forge_change_or_remove_drift(db, admin):
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute("CREATE TABLE t (id int)")
        refused(hotfix, "INSERT INTO migrate.drift (performed_by, command_tag) VALUES ('someone', 'CREATE TABLE')", "42501")
        refused(hotfix, "UPDATE migrate.drift SET performed_by = 'someone'", "42501")
        refused(hotfix, "DELETE FROM migrate.drift", "42501")
        refused(hotfix, "SELECT migrate_drift_absorb(ARRAY[1::bigint], 'hiding it')", "42501")
    # Even the owner only ever absorbs a row, once.
    error = refused(admin, "UPDATE migrate.drift SET statement = 'CREATE TABLE u (id int)'", "42501")
    assert "append-only" in str(error)
    refused(admin, "DELETE FROM migrate.drift", "42501")
    refused(admin, "TRUNCATE migrate.drift", "42501")
    assert statements(admin) == ["CREATE TABLE t (id int)"]


def test_several_commands_in_one_query_string_get_their_own_text(db, admin):
    with connect_as(db, ROLE) as hotfix:
        # No parameters: psycopg sends the whole string as one simple query.
        hotfix.execute("CREATE TABLE a (id int);  CREATE INDEX a_id_idx ON a (id); INSERT INTO a VALUES (1);\n"
                       "-- then\nALTER TABLE a ADD COLUMN b int ; CREATE TABLE b (id int); CREATE TABLE b2 (id int)")
    assert statements(admin) == [
        "CREATE TABLE a (id int)",
        "CREATE INDEX a_id_idx ON a (id)",
        "ALTER TABLE a ADD COLUMN b int",
        "CREATE TABLE b (id int)",
        "CREATE TABLE b2 (id int)",
    ]


def test_ddl_inside_a_do_block_names_the_query_it_ran_in(db, admin):
    block = "DO $$ BEGIN CREATE TABLE inside (id int); END $$"
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute(block)
    rows = drift(admin)
    assert [(r[5], r[7], r[8], r[9]) for r in rows] == [("CREATE TABLE", "public.inside", None, block)]


def test_temporary_objects_are_not_drift(db, admin):
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute("CREATE TEMP TABLE scratch (id int)")
        hotfix.execute("CREATE INDEX ON scratch (id)")
        hotfix.execute("ALTER TABLE scratch ADD COLUMN b int")
        hotfix.execute("DROP TABLE scratch")
        hotfix.execute("CREATE TABLE kept (id int)")
    assert statements(admin) == ["CREATE TABLE kept (id int)"]


def test_pg_migrates_own_work_is_not_drift(db, admin):
    load(admin,
         revision("d1a000000001", "CREATE TABLE by_function (id int);", "DROP TABLE by_function;"),
         revision("d1a000000002", "CREATE INDEX CONCURRENTLY by_plan_idx ON by_function (id);",
                  "DROP INDEX CONCURRENTLY by_plan_idx;", revises="d1a000000001", transactional=False))
    admin.execute("SELECT * FROM migrate_upgrade('d1a000000001')")
    psql(db, "SELECT * FROM migrate_plan('head') \\gexec\n")
    psql(db, "SELECT * FROM migrate_plan('base', 'downgrade') \\gexec\n")
    assert statements(admin) == []
    # The same statement outside a revision is drift.
    admin.execute("CREATE TABLE by_function (id int)")
    assert statements(admin) == ["CREATE TABLE by_function (id int)"]


def test_a_row_that_cannot_be_written_leaves_the_ddl_and_a_counted_gap(db, admin):
    admin.execute("""
        CREATE FUNCTION public.refuse_drift() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.statement LIKE '%fail_me%' THEN RAISE EXCEPTION 'disk full (simulated)'; END IF;
            RETURN NEW;
        END $$""")
    admin.execute("CREATE TRIGGER refuse BEFORE INSERT ON migrate.drift FOR EACH ROW EXECUTE FUNCTION public.refuse_drift()")
    seen = []
    with connect_as(db, ROLE) as hotfix:
        hotfix.add_notice_handler(lambda diag: seen.append((diag.severity_nonlocalized, diag.message_primary)))
        hotfix.execute("CREATE TABLE fail_me (id int)")  # the DDL goes on
        assert scalar(hotfix, "SELECT count(*) FROM fail_me") == 0
        assert any(s == "WARNING" and "could not record this CREATE TABLE" in m and "disk full" in m for s, m in seen), seen
        hotfix.execute("CREATE TABLE after_the_gap (id int)")
    rows = drift(admin)
    assert [(r[8], r[10]) for r in rows][-1] == ("CREATE TABLE after_the_gap (id int)", 1)
    assert "CREATE TABLE fail_me (id int)" not in [r[8] for r in rows]
    problems = admin.execute("SELECT problem, drift_id, performed_by FROM migrate_verify()").fetchall()
    gap = [p for p in problems if "could not be recorded" in p[0]]
    assert len(gap) == 1 and gap[0][1] == rows[-1][0] and gap[0][2].startswith(ROLE), problems


def test_verify_reports_drift_until_it_is_absorbed_by_hand(db, admin):
    assert admin.execute("SELECT * FROM migrate_verify()").fetchall() == []
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute("CREATE TABLE hot (id int)")
        hotfix.execute("CREATE INDEX hot_id_idx ON hot (id)")
    problems = admin.execute(
        "SELECT revision, problem, drift_id, performed_by, occurred_at IS NOT NULL FROM migrate_verify()").fetchall()
    ids = [row[0] for row in drift(admin)]
    assert [(p[0], p[2], p[4]) for p in problems] == [(None, ids[0], True), (None, ids[1], True)]
    assert problems[0][1] == "DDL outside any revision: CREATE TABLE public.hot (CREATE TABLE hot (id int))"
    assert problems[1][3] == f"{ROLE} (hotfix, 127.0.0.1)"

    refused(admin, f"SELECT migrate_drift_absorb(ARRAY[{ids[0]}::bigint], '  ')", "22023")
    refused(admin, f"SELECT migrate_drift_absorb(ARRAY[{ids[0]}, 999999]::bigint[], 'known')", "P0002")
    assert scalar(admin, f"SELECT migrate_drift_absorb(ARRAY[{ids[0]}::bigint], 'kept: made by hand on purpose')") == 1
    refused(admin, f"SELECT migrate_drift_absorb(ARRAY[{ids[0]}::bigint], 'again')", "P0002")  # once only
    assert [row[5] for row in admin.execute("SELECT * FROM migrate_verify()")] == [ids[1]]
    absorbed = admin.execute(
        "SELECT absorbed_by, absorbed_into, absorbed_reason FROM migrate_drift(true) WHERE drift_id = %s",
        (ids[0],)).fetchone()
    assert absorbed == ("postgres", None, "kept: made by hand on purpose")
    event = admin.execute("SELECT action, detail FROM migrate.events ORDER BY event_id DESC LIMIT 1").fetchone()
    assert event == ("absorb", f"drift {ids[0]} absorbed by hand: kept: made by hand on purpose")


BASE = revision("d2b000000001", "CREATE TABLE customers (id int PRIMARY KEY);", "DROP TABLE customers;")


@pytest.fixture
def second_db(db):
    name = f"{db}_elsewhere"
    with connect("postgres") as other:
        other.execute(f'CREATE DATABASE "{name}"')
    with connect(name) as conn:
        conn.execute("CREATE EXTENSION pg_migrate")
    yield name
    with connect("postgres") as other:
        other.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_drift_becomes_a_revision_applied_and_downgraded_elsewhere(db, admin, second_db):
    load(admin, BASE)
    admin.execute("SELECT * FROM migrate_upgrade('head')")
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int); "
                       "CREATE INDEX orders_customer_idx ON orders (customer_id)")
        hotfix.execute("CREATE TEMP TABLE scratch (id int)")
        hotfix.execute("ALTER TABLE orders ADD COLUMN note text")
        hotfix.execute("ALTER TABLE orders ALTER COLUMN note TYPE varchar")
        hotfix.execute("ALTER TABLE orders ADD CONSTRAINT orders_note_check CHECK (note <> '')")
    ids = [row[0] for row in drift(admin)]
    assert len(ids) == 5

    rev, file_name, source = admin.execute(
        "SELECT * FROM migrate_revision_from_drift('hotfix: orders')").fetchone()
    assert file_name == f"{rev}_hotfix_orders.sql"
    assert f"-- Revises: d2b000000001" in source
    upgrade = source[source.index("-- migrate:upgrade"):source.index("-- migrate:downgrade")]
    assert [line for line in upgrade.splitlines() if line and not line.startswith("--")] == [
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int);",
        "CREATE INDEX orders_customer_idx ON orders (customer_id);",
        "ALTER TABLE orders ADD COLUMN note text;",
        "ALTER TABLE orders ALTER COLUMN note TYPE varchar;",
        "ALTER TABLE orders ADD CONSTRAINT orders_note_check CHECK (note <> '');",
    ]
    assert f"-- drift {ids[0]}: CREATE TABLE public.orders by {ROLE} (hotfix, 127.0.0.1) at " in upgrade
    downgrade = source[source.index("-- migrate:downgrade"):].splitlines()[1:]
    assert [line for line in downgrade if line] == [
        "ALTER TABLE orders DROP CONSTRAINT orders_note_check;",
        "ALTER TABLE orders ALTER COLUMN note TYPE text;",
        "ALTER TABLE orders DROP COLUMN note;",
        "DROP INDEX orders_customer_idx;",
        "DROP TABLE orders;",
    ]
    # Here: recorded as applied (nothing ran), the drift absorbed into it.
    assert [row[0] for row in admin.execute("SELECT revision FROM migrate_current()")] == [rev]
    assert scalar(admin, "SELECT method FROM migrate.applied WHERE revision_id = %s", (rev,)) == "stamp"
    assert admin.execute("SELECT * FROM migrate_verify()").fetchall() == []
    assert drift(admin) == []
    assert {row[0] for row in admin.execute("SELECT absorbed_into FROM migrate_drift(true) WHERE drift_id = ANY(%s)",
                                           (ids,))} == {rev}
    assert scalar(admin, "SELECT detail FROM migrate.events WHERE action = 'absorb' ORDER BY event_id DESC LIMIT 1") \
        == f"drift {', '.join(map(str, ids))} absorbed into {rev}"
    refused(admin, "SELECT * FROM migrate_revision_from_drift('again')", "55000")  # nothing left to absorb

    # Elsewhere: the file applies like any revision, and its downgrade undoes it.
    with connect(second_db) as elsewhere:
        load(elsewhere, BASE, source)
        elsewhere.execute("SELECT * FROM migrate_upgrade('head')")
        assert scalar(elsewhere, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                 "WHERE attrelid = 'orders'::regclass AND attname = 'note'") == "character varying"
        assert scalar(elsewhere, "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_customer_idx'") == 1
        assert scalar(elsewhere, "SELECT count(*) FROM pg_constraint WHERE conname = 'orders_note_check'") == 1
        assert drift(elsewhere) == []  # pg_migrate's own work
        elsewhere.execute("SELECT * FROM migrate_downgrade('d2b000000001')")
        assert scalar(elsewhere, "SELECT to_regclass('orders') IS NULL")
        assert scalar(elsewhere, "SELECT to_regclass('customers') IS NOT NULL")
        assert elsewhere.execute("SELECT * FROM migrate_verify()").fetchall() == []


def test_drift_without_an_inverse_gives_no_downgrade_and_says_why(db, admin):
    admin.execute("CREATE TABLE legacy (id int)")
    admin.execute("SELECT migrate_drift_absorb(pg_catalog.array_agg(drift_id), 'set-up') FROM migrate_drift()")
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute("CREATE TABLE audit (id int)")
        hotfix.execute("CREATE INDEX ON audit (id)")
    admin.execute("DROP TABLE legacy")
    source = scalar(admin, "SELECT source FROM migrate_revision_from_drift('hotfix: audit', head => 'base')")
    assert "-- migrate:downgrade" not in source
    assert "-- No downgrade: these changes have no mechanical inverse:" in source
    assert "--   CREATE INDEX public.audit_id_idx: pg_migrate knows no mechanical inverse for it" in source
    assert "--   DROP TABLE public.legacy: pg_migrate knows no mechanical inverse for it" in source
    assert admin.execute("SELECT * FROM migrate_verify()").fetchall() == []


def test_drift_without_its_own_text_is_refused_until_absorbed(db, admin):
    refused(admin, "SELECT * FROM migrate_revision_from_drift('nothing yet')", "55000")
    with connect_as(db, ROLE) as hotfix:
        hotfix.execute("DO $$ BEGIN CREATE TABLE inside (id int); END $$")
        hotfix.execute("CREATE TABLE outside (id int)")
    error = refused(admin, "SELECT * FROM migrate_revision_from_drift('hotfix')", "55000")
    assert "ran inside a function or DO block" in error.diag.message_detail
    assert scalar(admin, "SELECT count(*) FROM migrate.revisions") == 0  # nothing was created
    inside = scalar(admin, "SELECT drift_id FROM migrate_drift() WHERE statement IS NULL")
    admin.execute("SELECT migrate_drift_absorb(ARRAY[%s::bigint], 'written by hand in revision x')", (inside,))
    source = scalar(admin, "SELECT source FROM migrate_revision_from_drift('hotfix', head => 'base')")
    assert "CREATE TABLE outside (id int);" in source and "inside" not in source.split("-- migrate:upgrade")[1]
