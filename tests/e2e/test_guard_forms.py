"""Issue 10, the long-lock forms: statements that hold a lock conflicting with
reads or writes for a time that grows with the table, which the guard missed.
Each is refused on a table with rows (thresholds lowered for the session), and
let through where it must be: small, temporary, created in this transaction,
the CONCURRENTLY (or NOT VALID, or CHECK-proven) way, and acknowledged.
VACUUM FULL and CLUSTER fire no event trigger: test_guard_preload.py has them."""

import os
import pwd
import shutil

import pytest

from conftest import PORT, connect, refused, scalar

ROWS = 3000  # over pg_migrate.guard_min_rows = 1000


@pytest.fixture
def conn(db):
    c = connect(db)
    c.execute("SET pg_migrate.guard_min_rows = 1000")
    c.execute("SET lock_timeout = '5s'")
    yield c
    c.close()


def big(conn, name="users", rows=ROWS):
    conn.execute(f"CREATE TABLE {name} (id bigint CONSTRAINT {name}_pkey PRIMARY KEY, email text, age integer)")
    conn.execute(f"INSERT INTO {name} SELECT g, 'e' || g, g % 90 FROM generate_series(1, {rows}) g")
    conn.execute(f"ANALYZE {name}")


def acknowledged(conn, rule, reason, sql):
    with conn.transaction():
        conn.execute(f"SET LOCAL pg_migrate.allow = '{rule}: {reason}'")
        conn.execute(sql)
    assert conn.execute("SELECT rule, reason FROM migrate.guard_log ORDER BY log_id DESC LIMIT 1").fetchone() == (rule, reason)


@pytest.fixture
def tablespace(conn):
    """A real tablespace (a directory the server owns), dropped afterwards."""
    path = f"/tmp/pgm_forms_ts_{PORT}_{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    postgres = pwd.getpwnam("postgres")
    os.chown(path, postgres.pw_uid, postgres.pw_gid)
    name = f"forms_ts_{os.getpid()}"
    conn.execute(f"CREATE TABLESPACE {name} LOCATION '{path}'")
    yield name
    conn.execute("SET pg_migrate.guard = off")
    for (relation,) in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace "
            "WHERE t.spcname = %s AND c.relkind IN ('r', 'm')", (name,)).fetchall():
        conn.execute(f"DROP TABLE IF EXISTS {relation} CASCADE")
    conn.execute(f"ALTER INDEX ALL IN TABLESPACE {name} SET TABLESPACE pg_default")
    conn.execute(f"DROP TABLESPACE {name}")
    shutil.rmtree(path, ignore_errors=True)


# --- Index builds hidden in ALTER TABLE --------------------------------------

def test_add_column_unique_or_primary_key_builds_an_index(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users ADD COLUMN handle text UNIQUE", "MG005")
    assert "ADD COLUMN handle ... UNIQUE on public.users (~3,000 rows" in error.diag.message_primary
    assert "ACCESS EXCLUSIVE" in error.diag.message_detail
    hint = error.diag.message_hint.splitlines()
    assert hint[:3] == ["ALTER TABLE public.users ADD COLUMN handle text;",
                        "CREATE UNIQUE INDEX CONCURRENTLY users_handle_key ON public.users (handle);",
                        "ALTER TABLE public.users ADD CONSTRAINT users_handle_key UNIQUE USING INDEX users_handle_key;"]
    assert scalar(conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'handle'") == 0
    # The safe way, as the HINT writes it, passes.
    conn.execute("ALTER TABLE users ADD COLUMN handle text")
    conn.execute("CREATE UNIQUE INDEX CONCURRENTLY users_handle_key ON public.users (handle)")
    conn.execute("ALTER TABLE public.users ADD CONSTRAINT users_handle_key UNIQUE USING INDEX users_handle_key")

    conn.execute("CREATE TABLE nokey (v text)")
    conn.execute("INSERT INTO nokey SELECT 'v' || g FROM generate_series(1, 3000) g")
    conn.execute("ANALYZE nokey")
    error = refused(conn, "ALTER TABLE nokey ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "MG005")
    assert "USING INDEX nokey_pkey" in error.diag.message_hint


def test_add_constraint_exclude_has_only_the_acknowledgement(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users ADD CONSTRAINT users_id_excl EXCLUDE USING btree (id WITH =)", "MG005")
    assert "ADD EXCLUDE on public.users" in error.diag.message_primary
    assert "no non-blocking way" in error.diag.message_hint
    assert "SET LOCAL pg_migrate.allow = 'blocking_index: <reason>'" in error.diag.message_hint
    acknowledged(conn, "blocking_index", "maintenance window 42, reads stopped",
                 "ALTER TABLE users ADD CONSTRAINT users_id_excl EXCLUDE USING btree (id WITH =)")
    assert scalar(conn, "SELECT count(*) FROM pg_constraint WHERE conname = 'users_id_excl'") == 1


def test_add_column_with_an_inline_check_validates_every_row(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users ADD COLUMN qty integer CHECK (qty > 0)", "MG009")
    assert error.diag.message_hint.startswith(
        "ALTER TABLE public.users ADD COLUMN qty integer;\n"
        "ALTER TABLE public.users ADD CONSTRAINT users_qty_check CHECK (...) NOT VALID;")
    conn.execute("ALTER TABLE users ADD COLUMN qty integer")
    conn.execute("ALTER TABLE users ADD CONSTRAINT users_qty_check CHECK (qty > 0) NOT VALID")
    conn.execute("ALTER TABLE users VALIDATE CONSTRAINT users_qty_check")  # SHARE UPDATE EXCLUSIVE: let through


def test_primary_key_using_index_on_a_nullable_column_scans(conn):
    conn.execute("CREATE TABLE nokey (id bigint, v text)")
    conn.execute("INSERT INTO nokey SELECT g, 'v' || g FROM generate_series(1, 3000) g")
    conn.execute("ANALYZE nokey")
    error = refused(conn, "ALTER TABLE nokey ADD CONSTRAINT nokey_pkey PRIMARY KEY (id)", "MG005")
    assert error.diag.message_hint.splitlines()[:3] == [
        "CALL migrate_set_not_null('public.nokey', 'id');",
        "CREATE UNIQUE INDEX CONCURRENTLY nokey_pkey ON public.nokey (id);",
        "ALTER TABLE public.nokey ADD CONSTRAINT nokey_pkey PRIMARY KEY USING INDEX nokey_pkey;"]
    conn.execute("CREATE UNIQUE INDEX CONCURRENTLY nokey_pkey ON nokey (id)")
    error = refused(conn, "ALTER TABLE nokey ADD CONSTRAINT nokey_pkey PRIMARY KEY USING INDEX nokey_pkey", "MG008")
    assert "ADD PRIMARY KEY makes public.nokey.id NOT NULL" in error.diag.message_primary
    assert error.diag.message_hint.startswith("CALL migrate_set_not_null('public.nokey', 'id');")
    conn.execute("CALL migrate_set_not_null('public.nokey', 'id')")
    conn.execute("ALTER TABLE nokey ADD CONSTRAINT nokey_pkey PRIMARY KEY USING INDEX nokey_pkey")


def test_add_column_with_inline_references_validates_every_row(conn):
    big(conn)
    big(conn, "orders")
    error = refused(conn, "ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE", "MG009")
    assert "ADD COLUMN user_id ... REFERENCES on public.orders" in error.diag.message_primary
    assert "ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES ... NOT VALID;" in error.diag.message_hint


def test_create_index_on_a_partitioned_table_goes_through_its_partitions(conn):
    conn.execute("CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at)")
    for year in (2025, 2026):
        conn.execute(f"CREATE TABLE events_{year} PARTITION OF events FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')")
        conn.execute(f"INSERT INTO events SELECT g, date '{year}-01-01' + g % 300 FROM generate_series(1, 3000) g")
        conn.execute(f"ANALYZE events_{year}")
    error = refused(conn, "CREATE INDEX events_at_idx ON events (at)", "MG005")
    assert "CONCURRENTLY is not allowed on a partitioned table" in error.diag.message_detail
    steps = [line for line in error.diag.message_hint.splitlines() if line.startswith(("CREATE", "ALTER INDEX"))]
    assert len(steps) == 5, steps
    for step in steps:  # the HINT's way works as written, and blocks nothing
        conn.execute(step)
    assert scalar(conn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_at_idx'::regclass") is True
    error = refused(conn, "DROP INDEX events_at_idx", "MG005")
    assert error.diag.message_hint.startswith("PostgreSQL cannot drop a partitioned index CONCURRENTLY")
    refused(conn, "DROP INDEX CONCURRENTLY events_at_idx", "0A000")  # as the HINT says


def test_index_forms_pass_on_small_temporary_and_new_tables(conn):
    big(conn, "small", rows=10)
    conn.execute("ALTER TABLE small ADD COLUMN handle text UNIQUE")
    conn.execute("ALTER TABLE small ADD CONSTRAINT small_id_excl EXCLUDE USING btree (id WITH =)")
    conn.execute("CREATE TEMP TABLE scratch AS SELECT g AS id FROM generate_series(1, 5000) g")
    conn.execute("ANALYZE scratch")
    conn.execute("ALTER TABLE scratch ADD COLUMN handle text UNIQUE")
    with conn.transaction():
        conn.execute("CREATE TABLE fresh (id bigint)")
        conn.execute("INSERT INTO fresh SELECT generate_series(1, 5000)")
        conn.execute("ALTER TABLE fresh ADD COLUMN handle text UNIQUE, ADD CONSTRAINT fresh_excl EXCLUDE USING btree (id WITH =)")


# --- Copies and rewrites under ACCESS EXCLUSIVE ------------------------------

def test_set_tablespace_of_a_table_and_a_materialized_view(conn, tablespace):
    big(conn)
    error = refused(conn, f"ALTER TABLE users SET TABLESPACE {tablespace}", "MG020")
    assert "SET TABLESPACE copies public.users (~3,000 rows" in error.diag.message_primary
    assert "[table_copy]" in error.diag.message_primary
    assert f"ALTER TABLE public.users SET TABLESPACE {tablespace};" in error.diag.message_hint
    conn.execute("CREATE MATERIALIZED VIEW totals AS SELECT id, email FROM users")
    conn.execute("ANALYZE totals")
    refused(conn, f"ALTER MATERIALIZED VIEW totals SET TABLESPACE {tablespace}", "MG020")
    acknowledged(conn, "table_copy", "moved during the maintenance window",
                 f"ALTER TABLE users SET TABLESPACE {tablespace}")
    assert scalar(conn, "SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace "
                        "WHERE c.oid = 'users'::regclass") == tablespace
    big(conn, "small", rows=10)
    conn.execute(f"ALTER TABLE small SET TABLESPACE {tablespace}")


def test_alter_index_set_tablespace_writes_the_concurrent_rebuild(conn, tablespace):
    big(conn)
    conn.execute("CREATE INDEX CONCURRENTLY users_email_idx ON users (email)")
    error = refused(conn, f"ALTER INDEX users_email_idx SET TABLESPACE {tablespace}", "MG020")
    assert "ALTER INDEX public.users_email_idx SET TABLESPACE" in error.diag.message_primary
    hint = error.diag.message_hint.splitlines()
    assert hint[:3] == [
        f"CREATE INDEX CONCURRENTLY users_email_idx_new ON public.users USING btree (email) TABLESPACE {tablespace};",
        "DROP INDEX CONCURRENTLY public.users_email_idx;",
        "ALTER INDEX public.users_email_idx_new RENAME TO users_email_idx;"]
    for statement in hint[:3]:
        conn.execute(statement)
    assert scalar(conn, "SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace "
                        "WHERE c.relname = 'users_email_idx'") == tablespace


def test_all_in_tablespace_names_the_largest(conn, tablespace):
    big(conn)
    big(conn, "small", rows=10)
    error = refused(conn, f"ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE {tablespace}", "MG020")
    assert "the largest being public.users" in error.diag.message_primary
    assert scalar(conn, "SELECT count(*) FROM pg_class WHERE reltablespace <> 0 AND relname IN ('users', 'small')") == 0


def test_refresh_materialized_view_without_concurrently(conn):
    big(conn)
    conn.execute("CREATE MATERIALIZED VIEW totals AS SELECT id, email FROM users")
    conn.execute("ANALYZE totals")
    error = refused(conn, "REFRESH MATERIALIZED VIEW totals", "MG021")
    assert "REFRESH MATERIALIZED VIEW public.totals (~3,000 rows" in error.diag.message_primary
    assert error.diag.message_hint.startswith("CREATE UNIQUE INDEX CONCURRENTLY totals_key ON public.totals (")
    conn.execute("CREATE UNIQUE INDEX CONCURRENTLY totals_key ON totals (id)")
    error = refused(conn, "REFRESH MATERIALIZED VIEW totals", "MG021")
    assert error.diag.message_hint.startswith("REFRESH MATERIALIZED VIEW CONCURRENTLY public.totals;")
    conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY totals")
    conn.execute("REFRESH MATERIALIZED VIEW totals WITH NO DATA")  # empties it: nothing long
    conn.execute("REFRESH MATERIALIZED VIEW totals")  # not populated: nobody can read it anyway
    acknowledged(conn, "refresh_materialized_view", "nightly job, readers are paused",
                 "REFRESH MATERIALIZED VIEW totals")
    conn.execute("CREATE MATERIALIZED VIEW few AS SELECT 1 AS one")
    conn.execute("REFRESH MATERIALIZED VIEW few")


def test_attach_partition_scans_unless_a_check_proves_the_bound(conn):
    conn.execute("CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE events_2026 (id bigint, at date NOT NULL)")
    conn.execute("INSERT INTO events_2026 SELECT g, date '2026-01-01' + g % 300 FROM generate_series(1, 3000) g")
    conn.execute("ANALYZE events_2026")
    attach = "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    error = refused(conn, attach, "MG022")
    assert "ATTACH PARTITION scans public.events_2026 (~3,000 rows" in error.diag.message_primary
    assert "ALTER TABLE public.events_2026 ADD CONSTRAINT events_2026_bound CHECK" in error.diag.message_hint
    conn.execute("ALTER TABLE events_2026 ADD CONSTRAINT events_2026_bound "
                 "CHECK (at >= '2026-01-01' AND at < '2027-01-01') NOT VALID")
    conn.execute("ALTER TABLE events_2026 VALIDATE CONSTRAINT events_2026_bound")
    conn.execute(attach)
    conn.execute("ALTER TABLE events_2026 DROP CONSTRAINT events_2026_bound")
    # DETACH takes ACCESS EXCLUSIVE on the parent, but only for catalog work: let through.
    conn.execute("ALTER TABLE events DETACH PARTITION events_2026")


def test_a_new_partition_scans_a_large_default_partition(conn):
    conn.execute("CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE events_other PARTITION OF events DEFAULT")
    conn.execute("INSERT INTO events SELECT g, date '2020-01-01' + g % 300 FROM generate_series(1, 3000) g")
    conn.execute("ANALYZE events_other")
    create = "CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')"
    error = refused(conn, create, "MG022")
    assert "scans the default partition public.events_other (~3,000 rows" in error.diag.message_primary
    assert error.diag.message_hint.startswith("ALTER TABLE public.events_other ADD CONSTRAINT events_other_excludes_new CHECK (NOT (")
    conn.execute("CREATE TABLE events_2028 (id bigint, at date NOT NULL)")
    refused(conn, "ALTER TABLE events ATTACH PARTITION events_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01')", "MG022")
    conn.execute("ALTER TABLE events_other ADD CONSTRAINT events_other_excludes_new "
                 "CHECK (NOT (at >= '2027-01-01' AND at < '2029-01-01')) NOT VALID")
    conn.execute("ALTER TABLE events_other VALIDATE CONSTRAINT events_other_excludes_new")
    conn.execute(create)
    conn.execute("ALTER TABLE events ATTACH PARTITION events_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01')")


def test_set_logged_unlogged_and_volatile_defaults_are_rewrites(conn):
    big(conn)
    error = refused(conn, "ALTER TABLE users SET UNLOGGED", "MG007")
    assert "LOGGED and UNLOGGED" in error.diag.message_primary
    refused(conn, "ALTER TABLE users ADD COLUMN r float8 DEFAULT random()", "MG007")
    refused(conn, "ALTER TABLE users ADD COLUMN twice bigint GENERATED ALWAYS AS (id * 2) STORED", "MG007")
    refused(conn, "ALTER TABLE users ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY", "MG007")
    conn.execute("ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now()")  # stable: no rewrite


def test_short_locks_are_let_through(conn):
    big(conn)
    with conn.transaction():
        conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # held as long as the user chooses, not by size
    conn.execute("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")
    conn.execute("CREATE TRIGGER users_noop BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION noop()")
    conn.execute("ALTER TABLE users SET (fillfactor = 90)")


def test_alter_domain_checks_of_stored_values(conn):
    conn.execute("CREATE DOMAIN email AS text")
    conn.execute("CREATE TABLE users (id bigint, email email)")
    conn.execute("INSERT INTO users SELECT g, 'e' || g || '@x' FROM generate_series(1, 3000) g")
    conn.execute("ANALYZE users")
    error = refused(conn, "ALTER DOMAIN email ADD CONSTRAINT email_at CHECK (VALUE LIKE '%@%')", "MG023")
    assert "ALTER DOMAIN email ADD CONSTRAINT scans every email value, in public.users (~3,000 rows" in error.diag.message_primary
    assert "SHARE lock" in error.diag.message_detail
    assert error.diag.message_hint.startswith("ALTER DOMAIN email ADD CONSTRAINT email_at CHECK (...) NOT VALID;")
    conn.execute("ALTER DOMAIN email ADD CONSTRAINT email_at CHECK (VALUE LIKE '%@%') NOT VALID")
    refused(conn, "ALTER DOMAIN email VALIDATE CONSTRAINT email_at", "MG023")
    refused(conn, "ALTER DOMAIN email SET NOT NULL", "MG023")
    acknowledged(conn, "domain_constraint", "quiet hour, writers paused", "ALTER DOMAIN email VALIDATE CONSTRAINT email_at")
    conn.execute("CREATE DOMAIN code AS text")
    conn.execute("CREATE TABLE small (c code)")
    conn.execute("INSERT INTO small VALUES ('a')")
    conn.execute("ALTER DOMAIN code SET NOT NULL")


# --- A table that was never analyzed -----------------------------------------

def test_never_analyzed_table_is_sized_by_its_pages(conn):
    conn.execute("SET pg_migrate.guard_min_rows = 50000")
    conn.execute("SET pg_migrate.guard_min_size = '1GB'")  # only the row count decides
    conn.execute("CREATE TABLE loaded (id bigint, v text) WITH (autovacuum_enabled = off)")
    conn.execute("INSERT INTO loaded SELECT g, 'v' || g FROM generate_series(1, 150000) g")
    assert scalar(conn, "SELECT reltuples FROM pg_class WHERE relname = 'loaded'") == -1
    error = refused(conn, "CREATE INDEX loaded_v_idx ON loaded (v)", "MG005")
    assert "rows estimated from its size" in error.diag.message_primary, error.diag.message_primary
    conn.execute("ANALYZE loaded")
    error = refused(conn, "CREATE INDEX loaded_v_idx ON loaded (v)", "MG005")
    assert "(~150,000 rows, " in error.diag.message_primary
    # An empty table that was never analyzed is still empty.
    conn.execute("CREATE TABLE empty (id bigint)")
    conn.execute("CREATE INDEX empty_id_idx ON empty (id)")


def test_never_analyzed_partitions_count_by_their_pages(conn):
    conn.execute("SET pg_migrate.guard_min_rows = 50000")
    conn.execute("SET pg_migrate.guard_min_size = '1GB'")
    conn.execute("CREATE TABLE parts (id bigint, v text) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (1000000) WITH (autovacuum_enabled = off)")
    conn.execute("INSERT INTO parts SELECT g, 'v' || g FROM generate_series(1, 150000) g")
    error = refused(conn, "ALTER TABLE parts ADD CONSTRAINT parts_v_check CHECK (v IS NOT NULL)", "MG009")
    assert "rows estimated from its size" in error.diag.message_primary, error.diag.message_primary


# --- Without the preload -----------------------------------------------------

def test_without_the_preload_vacuum_full_and_cluster_are_checked_by_guard_check_only(conn):
    big(conn)
    rules = [row[0] for row in conn.execute(
        "SELECT rule FROM migrate_guard_check($$VACUUM FULL users; CLUSTER users USING users_pkey; VACUUM users; ANALYZE users$$)")]
    assert rules == ["table_copy", "table_copy"]
    conn.execute("VACUUM users")
    conn.execute("ANALYZE users")


def test_without_the_preload_replica_role_skips_the_event_triggers(conn):
    """The documented gap: session_replication_role = replica (superuser only)
    turns every event trigger off; only the preloaded hook still checks."""
    big(conn)
    conn.execute("SET session_replication_role = replica")
    conn.execute("CREATE INDEX users_email_idx ON users (email)")
