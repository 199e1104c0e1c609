"""The DDL guard against a real server: every rule fires where it should and
stays quiet where it must (small tables, tables created in this transaction,
CONCURRENTLY, NOT VALID, USING INDEX, binary-coercible types), in enforce and
warn mode, with acknowledgements, the audit log and settings security."""

import threading
import time

import psycopg
import pytest

from conftest import connect, load, refused, revision, scalar

ROWS = 3000  # "large" below means over pg_migrate.guard_min_rows, set to 1000 here


@pytest.fixture
def conn(db):
    c = connect(db)
    c.execute("SET pg_migrate.guard_min_rows = 1000")
    c.execute("SET lock_timeout = '5s'")
    return c


def big(conn, name="users", rows=ROWS):
    conn.execute(f"CREATE TABLE {name} (id bigint CONSTRAINT {name}_pkey PRIMARY KEY, name text, email text, "
                 f"age integer, code varchar(20))")
    conn.execute(f"INSERT INTO {name} SELECT g, 'n' || g, 'e' || g, g % 90, 'c' || g FROM generate_series(1, {rows}) g")
    conn.execute(f"ANALYZE {name}")


def notices(conn, sql):
    seen = []
    conn.add_notice_handler(lambda diag: seen.append((diag.sqlstate, diag.message_primary)))
    conn.execute(sql)
    return seen


def test_blocking_index(conn):
    big(conn)
    error = refused(conn, "CREATE INDEX users_email_idx ON users (email)", "MG005")
    assert "CREATE INDEX on public.users (~3,000 rows" in str(error)
    assert error.diag.message_hint.startswith("CREATE INDEX CONCURRENTLY users_email_idx ON users (email);")
    assert "Transactional: false" in error.diag.message_hint
    conn.execute("CREATE INDEX CONCURRENTLY users_email_idx ON users (email)")
    refused(conn, "DROP INDEX users_email_idx", "MG005")
    conn.execute("DROP INDEX CONCURRENTLY users_email_idx")
    error = refused(conn, "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)", "MG005")
    assert "USING INDEX users_email_key" in error.diag.message_hint
    conn.execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
    conn.execute("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key")


def test_quiet_for_small_tables_and_tables_created_in_this_transaction(conn):
    big(conn, "small", rows=10)
    conn.execute("CREATE INDEX small_email_idx ON small (email)")
    with conn.transaction():
        conn.execute("CREATE TABLE fresh (id bigint CONSTRAINT fresh_pkey PRIMARY KEY, v text)")
        conn.execute("INSERT INTO fresh SELECT g, 'v' FROM generate_series(1, 50000) g")
        conn.execute("ANALYZE fresh")
        conn.execute("CREATE INDEX fresh_v_idx ON fresh (v)")
        conn.execute("ALTER TABLE fresh ALTER COLUMN id TYPE text")
        conn.execute("ALTER TABLE fresh DROP COLUMN v")


def test_rename_by_drop(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users DROP COLUMN name, ADD COLUMN full_name text", "MG001")
    assert error.diag.message_hint.startswith("ALTER TABLE public.users RENAME COLUMN name TO full_name;")
    # Separate statements, either order, acknowledged drop: still a rename.
    with pytest.raises(psycopg.Error) as caught, conn.transaction():
        conn.execute("ALTER TABLE users ADD COLUMN full_name text")
        conn.execute("SET LOCAL pg_migrate.allow = 'drop_column: testing'")
        conn.execute("ALTER TABLE users DROP COLUMN name")
    assert caught.value.sqlstate == "MG001"
    # Another type is not a rename.
    with conn.transaction():
        conn.execute("SET LOCAL pg_migrate.allow = 'drop_column: replaced by age_years'")
        conn.execute("ALTER TABLE users DROP COLUMN age, ADD COLUMN age_years numeric")
    # A table rename done as drop + create.
    big(conn, "customers")
    with pytest.raises(psycopg.Error) as caught, conn.transaction():
        conn.execute("SET LOCAL pg_migrate.allow = 'drop_table: testing'")
        conn.execute("DROP TABLE customers")
        conn.execute("CREATE TABLE clients (id bigint, name text, email text, age integer, code varchar(20))")
    assert caught.value.sqlstate == "MG001"
    assert "ALTER TABLE public.customers RENAME TO clients;" in caught.value.diag.message_hint


def test_drop_column_drop_table_with_rows(conn):
    big(conn)
    refused(conn, "ALTER TABLE users DROP COLUMN code", "MG002")
    refused(conn, "DROP TABLE users", "MG003")
    conn.execute("CREATE TABLE empty (id int, v text)")
    conn.execute("ALTER TABLE empty DROP COLUMN v")
    conn.execute("DROP TABLE empty")


def test_not_null_without_default(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users ADD COLUMN role text NOT NULL", "MG006")
    assert "CALL migrate_backfill('public.users', $$role = <value>$$, 'role IS NULL');" in error.diag.message_hint
    conn.execute("ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'member'")


def test_table_rewrite_uses_the_server_signal(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users ALTER COLUMN age TYPE bigint", "MG007")
    assert "a column changes type" in str(error)
    refused(conn, "ALTER TABLE users ADD COLUMN r float8 DEFAULT random()", "MG007")
    conn.execute("ALTER TABLE users ALTER COLUMN code TYPE text")  # binary-coercible: no rewrite
    conn.execute("ALTER TABLE users ADD COLUMN seen timestamptz DEFAULT now()")  # stable default: no rewrite


def test_set_not_null_needs_a_validated_check(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users ALTER COLUMN email SET NOT NULL", "MG008")
    assert "CALL migrate_set_not_null('public.users', 'email');" in error.diag.message_hint
    conn.execute("ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID")
    conn.execute("ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null")
    conn.execute("ALTER TABLE users ALTER COLUMN email SET NOT NULL")


def test_validating_constraint(conn):
    big(conn)
    big(conn, "orders")
    error = refused(conn, "ALTER TABLE orders ADD CONSTRAINT orders_age_fkey FOREIGN KEY (age) REFERENCES users (id) "
                          "ON DELETE CASCADE", "MG009")
    assert "ON DELETE CASCADE NOT VALID;" in error.diag.message_hint
    assert "VALIDATE CONSTRAINT orders_age_fkey" in error.diag.message_hint
    conn.execute("ALTER TABLE orders ADD CONSTRAINT orders_age_fkey FOREIGN KEY (age) REFERENCES users (id) "
                 "ON DELETE CASCADE NOT VALID")
    refused(conn, "ALTER TABLE orders ADD CONSTRAINT orders_age_check CHECK (age >= 0)", "MG009")
    conn.execute("ALTER TABLE orders ADD CONSTRAINT orders_age_check CHECK (age >= 0) NOT VALID")


def test_missing_lock_timeout(conn):
    big(conn, "small", rows=10)
    conn.execute("SET lock_timeout = 0")
    error = refused(conn, "ALTER TABLE small ADD COLUMN note text", "MG010")
    assert "SET lock_timeout" in error.diag.message_hint
    conn.execute("SET lock_timeout = '2s'")
    conn.execute("ALTER TABLE small ADD COLUMN note text")


def test_lock_queue_names_the_blocking_transaction(db, conn):
    big(conn, "small", rows=10)
    reader = connect(db, autocommit=False)
    reader_pid = scalar(reader, "SELECT pg_backend_pid()")
    reader.execute("SELECT count(*) FROM small")  # holds ACCESS SHARE, transaction left open
    conn.execute("SET pg_migrate.guard_lock_queue_age = '200ms'")
    time.sleep(0.4)
    error = refused(conn, "ALTER TABLE small ADD COLUMN note text", "MG011")
    assert f"pid {reader_pid}" in str(error)
    # The reader is idle in its transaction: only pg_terminate_backend ends it.
    assert f"pg_terminate_backend({reader_pid})" in error.diag.message_hint
    # CREATE INDEX CONCURRENTLY does not conflict with the reader's lock.
    reader.rollback()


def test_warnings_and_advisory_notices(conn):
    conn.execute("CREATE TABLE parent (id bigint CONSTRAINT parent_pkey PRIMARY KEY)")
    seen = notices(conn, "CREATE TABLE child (id bigint CONSTRAINT child_pkey PRIMARY KEY, "
                         "parent_id bigint REFERENCES parent (id), payload json, at timestamp)")
    codes = {code for code, _ in seen}
    assert {"MG101", "MG102"} <= codes and "MG201" not in codes  # advisory rules are off by default
    conn.execute("SET pg_migrate.guard_levels = 'prefer_jsonb=notice, prefer_timestamptz=notice'")
    seen = notices(conn, "CREATE TABLE other (id bigint CONSTRAINT other_pkey PRIMARY KEY, payload json, at timestamp)")
    assert {"MG201", "MG202"} <= {code for code, _ in seen}
    conn.execute("CREATE TYPE mood AS ENUM ('ok')")
    with conn.transaction():
        seen = notices(conn, "ALTER TYPE mood ADD VALUE 'great'")
    assert "MG103" in {code for code, _ in seen}


def test_warn_and_off_modes(conn):
    big(conn)
    conn.execute("SET pg_migrate.guard = 'warn'")
    seen = notices(conn, "CREATE INDEX users_email_idx ON users (email)")
    assert ("MG005" in {code for code, _ in seen}) and scalar(conn, "SELECT to_regclass('users_email_idx') IS NOT NULL")
    conn.execute("SET pg_migrate.guard = 'off'")
    assert notices(conn, "ALTER TABLE users DROP COLUMN code") == []


def test_acknowledged_operations_are_audited(db, conn):
    big(conn)
    conn.execute("DROP ROLE IF EXISTS app_owner")
    conn.execute("CREATE ROLE app_owner LOGIN")
    conn.execute("ALTER TABLE users OWNER TO app_owner")
    app = connect(db)
    app.execute("SET ROLE app_owner")
    app.execute("SET lock_timeout = '2s'")
    app.execute("SELECT count(*) FROM migrate_heads()")  # loads the library, so the settings exist
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SET pg_migrate.guard = 'off'")  # superuser-only
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SET pg_migrate.guard_levels = 'drop_column=off'")
    refused(app, "SET pg_migrate.allow = 'drop_column'; ALTER TABLE users DROP COLUMN code", "22023")
    with app.transaction():
        app.execute("SET LOCAL pg_migrate.allow = 'drop_column: code moved to codes table in v42'")
        app.execute("ALTER TABLE users DROP COLUMN code")
    row = conn.execute("SELECT performed_by, rule, sqlstate, reason, statement, source FROM migrate.guard_log").fetchone()
    assert row == ("app_owner", "drop_column", "MG002", "code moved to codes table in v42",
                   "ALTER TABLE users DROP COLUMN code", "setting")
    refused(app, "DELETE FROM migrate.guard_log", "42501")


def test_revision_allow_header(conn):
    big(conn)
    drop = revision("dddd00000001", "ALTER TABLE users DROP COLUMN code;", "ALTER TABLE users ADD COLUMN code varchar(20);")
    load(conn, drop)
    refused(conn, "SELECT * FROM migrate_upgrade('head')", "MG002")
    assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 0
    allowed = revision("dddd00000001", "ALTER TABLE users DROP COLUMN code;", "ALTER TABLE users ADD COLUMN code varchar(20);",
                       extra="-- Allow: drop_column codes live in the codes table since v42")
    load(conn, allowed)
    conn.execute("SELECT * FROM migrate_upgrade('head')")
    assert conn.execute("SELECT rule, revision_id, source FROM migrate.guard_log").fetchall() == [
        ("drop_column", "dddd00000001", "revision")]
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        load(conn, revision("dddd00000002", "SELECT 1;", extra="-- Allow: drop_column"))


def test_own_ddl_and_other_extensions_pass(conn):
    big(conn)
    conn.execute("UPDATE users SET email = coalesce(email, 'x')")
    conn.execute("CALL migrate_set_not_null('users', 'email')")  # its ALTERs pass the guard
    conn.execute("CREATE EXTENSION pg_trgm")
    conn.execute("DROP EXTENSION pg_trgm")


def test_robust_across_schemas_partitions_temp_tables_and_functions(conn):
    conn.execute('CREATE SCHEMA "Sales"')
    conn.execute('CREATE TABLE "Sales"."Order Lines" (id bigint CONSTRAINT order_lines_pkey PRIMARY KEY, qty int)')
    conn.execute('INSERT INTO "Sales"."Order Lines" SELECT g, 1 FROM generate_series(1, 3000) g')
    conn.execute('ANALYZE "Sales"."Order Lines"')
    error = refused(conn, 'CREATE INDEX order_lines_qty_idx ON "Sales"."Order Lines" (qty)', "MG005")
    assert '"Sales"."Order Lines"' in str(error)
    conn.execute("CREATE TABLE events (id bigint, at date, v text) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
    conn.execute("INSERT INTO events SELECT g, '2026-06-01', 'v' FROM generate_series(1, 3000) g")
    conn.execute("ANALYZE events_2026")
    error = refused(conn, "ALTER TABLE events DROP COLUMN v", "MG002")
    assert "~3,000 rows" in str(error)  # summed over the partitions
    conn.execute("CREATE TEMP TABLE scratch AS SELECT g AS id FROM generate_series(1, 3000) g")
    conn.execute("ANALYZE scratch")
    conn.execute("CREATE INDEX ON scratch (id)")  # nobody else can see it
    big(conn)
    refused(conn, "SELECT 1; CREATE INDEX users_name_idx ON users (name)", "MG005")  # multi-statement string
    refused(conn, "DO $$ BEGIN EXECUTE 'CREATE INDEX users_name_idx ON users (name)'; END $$", "MG005")
    conn.execute("CREATE FUNCTION add_index() RETURNS void LANGUAGE plpgsql AS "
                 "$$ BEGIN CREATE INDEX users_name_idx ON users (name); END $$")
    refused(conn, "SELECT add_index()", "MG005")


def test_guard_check_says_without_running(conn):
    big(conn)
    rows = conn.execute("SELECT statement, rule, level FROM migrate_guard_check($$"
                        "CREATE TABLE t (id bigint CONSTRAINT t_pkey PRIMARY KEY, v text); "
                        "CREATE INDEX t_v_idx ON t (v); "
                        "CREATE INDEX users_email_idx ON users (email); "
                        "ALTER TABLE users DROP COLUMN name, ADD COLUMN full_name text$$)").fetchall()
    assert (3, "blocking_index", "error") in rows
    assert (4, "rename_by_drop", "error") in rows
    assert not any(n == 2 for n, _, _ in rows)  # t is created by the script itself
    assert scalar(conn, "SELECT to_regclass('t')") is None  # nothing ran


def test_settings_before_the_library_is_loaded_cannot_weaken_the_guard(db, conn):
    big(conn)
    conn.execute("DROP ROLE IF EXISTS plain")
    conn.execute("CREATE ROLE plain LOGIN")
    conn.execute("GRANT ALL ON users TO plain")
    conn.execute("ALTER TABLE users OWNER TO plain")
    fresh = psycopg.connect(f"host=127.0.0.1 port={conn.info.port} user=plain dbname={db}", autocommit=True)
    try:
        fresh.execute("SET pg_migrate.guard = 'off'")  # a placeholder: the library is not loaded yet
    except psycopg.Error:
        pass
    fresh.execute("SET lock_timeout = '2s'")
    with pytest.raises(psycopg.Error) as caught:
        fresh.execute("ALTER TABLE users DROP COLUMN code")
    assert caught.value.sqlstate == "MG002"


def test_review_checks_pending_revisions_before_an_upgrade(conn):
    big(conn)
    load(conn,
         revision("eeee00000001", "CREATE TABLE notes (id bigint CONSTRAINT notes_pkey PRIMARY KEY, body text); "
                                  "CREATE INDEX notes_body_idx ON notes (body);", "DROP TABLE notes;"),
         revision("eeee00000002", "ALTER TABLE users DROP COLUMN code; CREATE INDEX users_age_idx ON users (age);",
                  revises="eeee00000001", extra="-- Allow: drop_column codes moved in v42"))
    rows = conn.execute("SELECT revision, statement, rule FROM migrate_review()").fetchall()
    assert rows == [("eeee00000002", 2, "blocking_index")], rows  # notes is new; the drop is acknowledged
    assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 0


def test_truncate_is_checked_before_running(conn):
    big(conn)
    rows = conn.execute("SELECT rule, sqlstate FROM migrate_guard_check('TRUNCATE users')").fetchall()
    assert rows == [("truncate", "MG004")]
