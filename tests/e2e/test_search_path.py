"""A database owner cannot take over pg_migrate's own queries through search_path.

Since PostgreSQL 15 the database owner owns schema public. Here a NOSUPERUSER owner
plants, before the extension is even created, functions and operators in public that
would be picked over pg_catalog's: every overload of every function pg_migrate's SQL
uses (same signature, which wins when the caller's path puts public first) and, for
functions and operators alike, variants taking a type that converts implicitly to the
built-in's (an exact match, which wins under the default path: public.*(bigint, interval)
over pg_catalog.*(double precision, interval)). Each planted object, when run, warns,
records itself and tries ALTER ROLE owner SUPERUSER.

Then a superuser runs every command, the psql plan, the offline script, a migration-lock
wait, the guard on DDL while another session holds a lock, and backfills, once under the
default path and once under search_path = public, pg_catalog. Nothing planted may run.
Planted before CREATE EXTENSION, the objects also meet the extension's own SQL
objects as they are created (a view is bound to operators once, at creation).
The user's own revision SQL runs under the caller's path by design, so the revisions here
use no operator or function at all, and name their types through pg_catalog.
"""

import os
import subprocess
import tempfile
import threading
import time

import psycopg
import pytest

from conftest import PORT, dsn, revision, unique_name

# The names pg_migrate's SQL calls (src/**), and a few it might.
FUNCTIONS = """
    format left right unnest now count sum max min round make_interval pg_sleep clock_timestamp
    statement_timestamp current_database current_setting set_config pg_backend_pid
    pg_current_xact_id txid_current pg_advisory_xact_lock pg_try_advisory_xact_lock
    pg_advisory_lock pg_try_advisory_lock pg_advisory_unlock pg_get_constraintdef
    pg_get_serial_sequence quote_ident quote_literal to_regclass format_type
    pg_relation_size pg_partition_tree pg_has_role pg_event_trigger_table_rewrite_oid
    pg_event_trigger_table_rewrite_reason replace gen_random_uuid length lower upper
    string_agg array_agg array_length cardinality concat date_part int8 int4 text
    pg_last_wal_replay_lsn pg_current_wal_lsn pg_wal_lsn_diff pg_is_in_recovery
    pg_blocking_pids age substr position strpos split_part array_to_string to_char
""".split()

# Types the planted variants are built from (and converted from).
TYPES = ["smallint", "integer", "bigint", "numeric", "real", "double precision", "text",
         "character varying", "character", "name", "boolean", "oid", "interval",
         "timestamp with time zone", "timestamp without time zone", "date", '"char"', "xid8", "pg_lsn",
         "regclass", "jsonb", "text[]", "bigint[]", "integer[]", "name[]", "oid[]", "character varying[]"]

PLANT = r"""
CREATE TABLE public.pgm_hits (sig text, by_role text);
GRANT ALL ON public.pgm_hits TO PUBLIC;
CREATE FUNCTION public.pgm_hit(sig text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE WARNING 'pgm-hijack: % ran as %', sig, current_user;
    INSERT INTO public.pgm_hits VALUES (sig, current_user);
    BEGIN
        EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '__OWNER__');
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
END
$$;

CREATE FUNCTION public.pgm_plant_function(fname text, args text[], result text, retset boolean)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $plant$
DECLARE
    sig text := fname || '(' || array_to_string(args, ', ') || ')';
    body text;
BEGIN
    IF result IN ('void') THEN
        body := 'BEGIN PERFORM public.pgm_hit(' || quote_literal(sig) || '); END';
    ELSIF retset OR result LIKE 'TABLE(%' THEN
        body := 'BEGIN PERFORM public.pgm_hit(' || quote_literal(sig) || '); RETURN; END';
    ELSE
        body := 'BEGIN PERFORM public.pgm_hit(' || quote_literal(sig) || '); RETURN NULL; END';
    END IF;
    EXECUTE 'CREATE FUNCTION public.' || quote_ident(fname) || '(' || array_to_string(args, ', ') || ') RETURNS '
            || result || ' LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS ' || quote_literal(body);
EXCEPTION WHEN OTHERS THEN
    NULL;  -- already planted, or a signature PL/pgSQL cannot take ("any", internal)
END
$plant$;

CREATE FUNCTION public.pgm_plant_operator(op text, l text, r text, result text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $plant$
DECLARE
    fname text := 'pgm_op_' || md5(op || coalesce(l, '') || '|' || coalesce(r, ''));
BEGIN
    PERFORM public.pgm_plant_function(fname, array_remove(ARRAY[l, r], NULL), result, false);
    EXECUTE 'CREATE OPERATOR public.' || op || ' (FUNCTION = public.' || fname
            || coalesce(', LEFTARG = ' || l, '') || coalesce(', RIGHTARG = ' || r, '') || ')';
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$plant$;

DO $do$
DECLARE
    types regtype[] := ARRAY[__TYPES__]::regtype[];
    f record;
    o record;
    i integer;
    s regtype;
    args text[];
BEGIN
    -- Functions: every overload by its own signature, and each argument replaced by
    -- a type that converts to it implicitly.
    FOR f IN SELECT p.oid, p.proname, p.proargtypes::oid[] AS argtypes, p.proretset,
                    pg_get_function_result(p.oid) AS result,
                    pg_get_function_identity_arguments(p.oid) AS identity
               FROM pg_proc p
              WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(ARRAY[__FUNCTIONS__])
                AND p.prokind IN ('f', 'a', 'w')
    LOOP
        PERFORM public.pgm_plant_function(f.proname, CASE WHEN f.identity = '' THEN '{}'::text[]
                                                         ELSE ARRAY[f.identity] END, f.result, f.proretset);
        FOR i IN 1 .. coalesce(array_length(f.argtypes, 1), 0) LOOP
            FOR s IN SELECT c.castsource::regtype FROM pg_cast c
                      WHERE c.casttarget = f.argtypes[i] AND c.castcontext = 'i'
                        AND c.castsource = ANY(types::oid[])
            LOOP
                SELECT array_agg(CASE WHEN k = i THEN s::text ELSE format_type(f.argtypes[k], NULL) END ORDER BY k)
                  INTO args FROM generate_subscripts(f.argtypes, 1) k;
                PERFORM public.pgm_plant_function(f.proname, args, f.result, f.proretset);
            END LOOP;
        END LOOP;
    END LOOP;
    -- A few polymorphic built-ins by concrete types (an exact match beats anyarray).
    FOR s IN SELECT unnest(types) LOOP
        IF format_type(s, NULL) LIKE '%[]' THEN
            PERFORM public.pgm_plant_function('unnest', ARRAY[s::text], 'SETOF ' || format_type(typelem, NULL), true)
               FROM pg_type WHERE oid = s;
            PERFORM public.pgm_plant_function('array_length', ARRAY[s::text, 'integer'], 'integer', false);
            PERFORM public.pgm_plant_function('cardinality', ARRAY[s::text], 'integer', false);
        ELSE
            PERFORM public.pgm_plant_function('count', ARRAY[s::text], 'bigint', false);
            PERFORM public.pgm_plant_function('max', ARRAY[s::text], s::text, false);
            PERFORM public.pgm_plant_function('min', ARRAY[s::text], s::text, false);
            PERFORM public.pgm_plant_function('format', ARRAY['text', s::text], 'text', false);
            PERFORM public.pgm_plant_function('format', ARRAY['text', s::text, s::text], 'text', false);
            PERFORM public.pgm_plant_function('concat', ARRAY[s::text, s::text], 'text', false);
        END IF;
    END LOOP;
    PERFORM public.pgm_plant_function('format', ARRAY['text'], 'text', false);
    PERFORM public.pgm_plant_function('format', ARRAY['text', 'integer', 'name', 'timestamp without time zone', 'text'], 'text', false);
    PERFORM public.pgm_plant_function('format', ARRAY['text', 'integer', 'text', 'timestamp without time zone', 'text'], 'text', false);
    PERFORM public.pgm_plant_function('format', ARRAY['text', 'name', 'name'], 'text', false);
    PERFORM public.pgm_plant_function('format', ARRAY['text', 'text', 'text', 'text'], 'text', false);
    -- Operators (infix and prefix) among those types, by their own types and with one
    -- side replaced by a type that converts to it implicitly.
    FOR o IN SELECT op.oprname, op.oprleft, op.oprright, format_type(op.oprresult, NULL) AS result
               FROM pg_operator op
              WHERE op.oprnamespace = 'pg_catalog'::regnamespace
                AND (op.oprleft = 0 OR op.oprleft = ANY(types::oid[]) OR op.oprleft = 'anyarray'::regtype
                     OR op.oprleft = 'anycompatiblearray'::regtype)
                AND (op.oprright = ANY(types::oid[]) OR op.oprright = 'anyarray'::regtype
                     OR op.oprright = 'anycompatiblearray'::regtype OR op.oprright = 'anycompatible'::regtype)
    LOOP
        FOR s IN SELECT unnest(ARRAY[o.oprleft::regtype] || ARRAY(
                     SELECT c.castsource::regtype FROM pg_cast c
                      WHERE c.casttarget = o.oprleft AND c.castcontext = 'i' AND c.castsource = ANY(types::oid[])))
        LOOP
            CONTINUE WHEN o.oprleft <> 0 AND s IS NULL;
            IF o.oprleft IN ('anyarray'::regtype, 'anycompatiblearray'::regtype) OR
               o.oprright IN ('anyarray'::regtype, 'anycompatiblearray'::regtype, 'anycompatible'::regtype) THEN
                -- || and friends on concrete arrays: text[] || text, text[] || text[], ...
                PERFORM public.pgm_plant_operator(o.oprname, a::text, b::text,
                            CASE WHEN o.result IN ('boolean') THEN 'boolean' ELSE a::text END)
                   FROM unnest(ARRAY['text[]', 'bigint[]', 'name[]', 'oid[]']::regtype[]) a,
                        LATERAL unnest(ARRAY[a, (SELECT typelem FROM pg_type WHERE oid = a)]::regtype[]) b
                  WHERE format_type(a, NULL) LIKE '%[]';
                EXIT;
            END IF;
            PERFORM public.pgm_plant_operator(o.oprname, CASE WHEN o.oprleft = 0 THEN NULL ELSE s::text END,
                                              o.oprright::regtype::text, o.result);
            PERFORM public.pgm_plant_operator(o.oprname, CASE WHEN o.oprleft = 0 THEN NULL ELSE s::text END,
                                              r::text, o.result)
               FROM pg_cast c, LATERAL (SELECT c.castsource::regtype AS r) x
              WHERE c.casttarget = o.oprright AND c.castcontext = 'i' AND c.castsource = ANY(types::oid[]);
            EXIT WHEN o.oprleft = 0;
        END LOOP;
    END LOOP;
END
$do$;

-- Types by the names of pg_catalog's non-keyword types: under a path with public
-- first, x::text would mean public.text, whose check runs a function.
CREATE FUNCTION public.pgm_check(value anyelement) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.pgm_hit('a cast to the domain ' || pg_typeof(value)::text);
    RETURN true;
END
$$;
DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'int8', 'int4', 'int2', 'oid', 'regclass', 'regtype', 'name',
                             'timestamptz', 'bool', 'float8', 'xid8', 'jsonb', 'date', 'numeric']
    LOOP
        EXECUTE format('CREATE DOMAIN public.%I AS pg_catalog.%I CHECK (public.pgm_check(VALUE))', t, t);
    END LOOP;
END
$do$;
"""

REVS = {
    "r1": revision("ad0000000001", "CREATE TABLE items (id bigint PRIMARY KEY, v pg_catalog.text);\n"
                                   "INSERT INTO items VALUES (1, 'a'), (2, 'b');", "DROP TABLE items;",
                   extra="-- Allow: drop_table test data only"),
    "r2": revision("ad0000000002", "CREATE INDEX CONCURRENTLY items_v ON items (v);",
                   "DROP INDEX CONCURRENTLY items_v;", revises="ad0000000001", transactional=False),
    "r3": revision("ad0000000003", "ALTER TABLE items ADD COLUMN w pg_catalog.text;", "ALTER TABLE items DROP COLUMN w;",
                   revises="ad0000000002", extra="-- Allow: drop_column test data only"),
}
# Loaded from a directory: a second branch off r1.
R4 = revision("ad0000000004", "CREATE TABLE others (id bigint PRIMARY KEY);", "DROP TABLE others;",
              revises="ad0000000001", extra="-- Allow: drop_table test data only")

PATHS = {"default": '"$user", public', "public_first": "public, pg_catalog"}


def clean(dbname, **kwargs):
    """A session that cannot be hijacked itself: only pg_catalog and pg_temp on its path."""
    kwargs.setdefault("autocommit", True)
    conn = psycopg.connect(dsn(dbname), **kwargs)
    conn.execute("SET search_path = pg_catalog, pg_temp")
    if not kwargs["autocommit"]:
        conn.commit()
    return conn


@pytest.fixture(params=["planted_before_extension", "planted_after_extension"])
def owned_db(request):
    """A database owned by a NOSUPERUSER role that plants look-alikes in public, before
    CREATE EXTENSION (so the extension's own objects are created among them) or after."""
    before = request.param == "planted_before_extension"
    owner = f"pgm_owner_{unique_name()}"
    name = f"e2e_sp_{os.getpid()}_{unique_name()}"
    with clean("postgres") as admin:
        admin.execute(f'CREATE ROLE "{owner}" NOSUPERUSER LOGIN')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    with clean(name) as conn:
        if not before:
            conn.execute("CREATE EXTENSION pg_migrate SCHEMA public")
        conn.execute(f'SET ROLE "{owner}"')
        plant = PLANT.replace("__OWNER__", owner) \
            .replace("__TYPES__", ", ".join("'" + t + "'" for t in TYPES)) \
            .replace("__FUNCTIONS__", ", ".join(f"'{f}'" for f in FUNCTIONS))
        conn.execute(plant)
        planted = conn.execute("SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc "
                               "WHERE pronamespace = 'public'::pg_catalog.regnamespace").fetchone()[0]
        ops = conn.execute("SELECT pg_catalog.count(*) FROM pg_catalog.pg_operator "
                           "WHERE oprnamespace = 'public'::pg_catalog.regnamespace").fetchone()[0]
        conn.execute("RESET ROLE")
        if before:
            conn.execute("CREATE EXTENSION pg_migrate SCHEMA public")
        conn.execute("CREATE TABLE public.bf (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO public.bf SELECT g, NULL FROM pg_catalog.generate_series(1, 60) g")
    assert planted > 500 and ops > 500, (planted, ops)
    yield name, owner
    with clean("postgres") as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.execute(f'DROP ROLE "{owner}"')


class Victim:
    """Superuser sessions under a given search_path, collecting every WARNING."""

    def __init__(self, dbname, path):
        self.dbname, self.path, self.warnings = dbname, path, []

    def connect(self, autocommit=True):
        conn = psycopg.connect(dsn(self.dbname), autocommit=autocommit)
        conn.add_notice_handler(lambda diag: self.warnings.append(diag.message_primary))
        conn.execute(f"SET search_path = {self.path}")
        conn.execute("SET pg_migrate.guard_min_rows = 1")
        if not autocommit:
            conn.commit()
        return conn

    def psql(self, script):
        args = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", "-d", self.dbname,
                "-v", "ON_ERROR_STOP=1"]
        env = dict(os.environ, PGOPTIONS="-c lock_timeout=5s")
        result = subprocess.run(args, input=f"SET search_path = {self.path};\n" + script, capture_output=True,
                                text=True, timeout=300, env=env)
        self.warnings.extend(line for line in result.stderr.splitlines() if "pgm-hijack" in line)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def hijacks(self):
        return [w for w in self.warnings if "pgm-hijack" in w]


def expect_error(conn, sql, sqlstate):
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(sql)
    assert caught.value.sqlstate == sqlstate, f"{caught.value.sqlstate}: {caught.value}"


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("path", PATHS.keys())
def test_nothing_planted_in_public_runs(owned_db, path):
    dbname, owner = owned_db
    victim = Victim(dbname, PATHS[path])
    check = clean(dbname)
    conn = victim.connect()
    applied = lambda: {r[0] for r in check.execute("SELECT revision_id FROM migrate.applied")}  # noqa: E731

    # Loading, from text and from a directory.
    for source in REVS.values():
        conn.execute("SELECT migrate_load(%s)", (source,))
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        with open(os.path.join(folder, "ad0000000004_others.sql"), "w") as f:
            f.write(R4)
        os.chmod(os.path.join(folder, "ad0000000004_others.sql"), 0o644)
        conn.execute("SELECT * FROM migrate_load_dir(%s)", (folder,)).fetchall()
    merged = conn.execute("SELECT revision FROM migrate_merge(ARRAY['ad0000000003', 'ad0000000004'])").fetchone()[0]
    # Writing a revision, and taking it back out.
    written = conn.execute("SELECT revision FROM migrate_revision('written here', 'SELECT 1;')").fetchone()[0]
    conn.execute("SELECT * FROM migrate_unload(%s)", (written,)).fetchall()

    # Reading.
    for sql in ["SELECT * FROM migrate_heads()", "SELECT * FROM migrate_branches()",
                "SELECT * FROM migrate_history()", "SELECT * FROM migrate_current()",
                "SELECT * FROM migrate_history('ad0000000001:')", "SELECT * FROM migrate_history_verbose(':ad0000000002')",
                "SELECT migrate_sql('ad0000000001:head')", "SELECT migrate_sql('head:base', 'downgrade')",
                "SELECT * FROM migrate_show('ad0000000001')", "SELECT * FROM migrate_verify()",
                "SELECT * FROM migrate_review('head')", "SELECT * FROM migrate_plan('head')",
                "SELECT * FROM migrate_guard_check('ALTER TABLE bf ADD COLUMN z pg_catalog.text NOT NULL; DROP TABLE bf')",
                "SELECT * FROM migrate_test_roundtrip()"]:
        conn.execute(sql).fetchall()

    # The offline script, up to r1, run by psql.
    script = conn.execute("SELECT migrate_sql('ad0000000001')").fetchone()[0]
    victim.psql(script)
    assert applied() == {"ad0000000001"}
    # The psql plan to head (CREATE INDEX CONCURRENTLY at top level), and back down.
    victim.psql("SELECT * FROM migrate_plan('head') \\gexec\n")
    assert applied() == {"ad0000000001", "ad0000000002", "ad0000000003", "ad0000000004", merged}
    victim.psql("SELECT * FROM migrate_plan('ad0000000001', 'downgrade') \\gexec\n")
    assert applied() == {"ad0000000001"}
    # Functions: downgrade, upgrade, stamp.
    conn.execute("SELECT * FROM migrate_downgrade('base')").fetchall()
    assert applied() == set()
    conn.execute("SELECT * FROM migrate_upgrade('ad0000000001')").fetchall()
    conn.execute("SELECT * FROM migrate_stamp('head')").fetchall()
    conn.execute("SELECT * FROM migrate_stamp('ad0000000001')").fetchall()
    conn.execute("SELECT * FROM migrate_stamp('ad0000000001', purge => true)").fetchall()
    assert applied() == {"ad0000000001"}

    # Waiting for the migration lock another session holds: the holder is named.
    holder = clean(dbname, autocommit=False)
    holder.execute("SELECT * FROM public.migrate_stamp('ad0000000001')").fetchall()
    conn.execute("SET lock_timeout = '300ms'")
    expect_error(conn, "SELECT * FROM migrate_upgrade('head')", "55P03")
    holder.rollback()
    conn.execute("SET lock_timeout = '5s'")

    # The guard on DDL while another session holds a lock on the table (lock_queue).
    reader = clean(dbname, autocommit=False)
    reader.execute("SELECT * FROM public.items").fetchall()
    conn.execute("SET pg_migrate.guard_lock_queue_age = '200ms'")
    time.sleep(0.4)
    expect_error(conn, "ALTER TABLE items ADD COLUMN note pg_catalog.text", "MG011")
    reader.rollback()
    conn.execute("RESET pg_migrate.guard_lock_queue_age")
    conn.execute("ALTER TABLE items ADD COLUMN note pg_catalog.text")

    # Backfills, their status view, SET NOT NULL.
    conn.execute("CALL migrate_backfill('bf', 'v = ''x''', batch_size => 10)")
    conn.execute("SELECT * FROM migrate_backfill_status").fetchall()
    conn.execute("CALL migrate_set_not_null('bf', 'v')")
    assert check.execute("SELECT pg_catalog.count(*) FROM public.bf WHERE v OPERATOR(pg_catalog.=) 'x'") \
        .fetchone()[0] == 60

    # Pause, resume and cancel a running backfill from another session.
    def run_slow(job):
        with victim.connect() as other:
            other.execute(f"CALL migrate_backfill('bf', 'v = ''{job}''', job_name => '{job}', "
                          "batch_size => 5, pause_ms => 100)")

    def batches(job):
        row = check.execute("SELECT batches FROM migrate.backfills WHERE job_name OPERATOR(pg_catalog.=) %s",
                            (job,)).fetchone()
        return row is not None and row[0] > 0

    for job, stop in [("slow", "migrate_backfill_pause"), ("slow2", "migrate_backfill_cancel")]:
        thread = threading.Thread(target=run_slow, args=(job,))
        thread.start()
        wait_for(lambda: batches(job))
        conn.execute(f"SELECT {stop}('{job}')")
        thread.join(60)
    conn.execute("CALL migrate_backfill_resume('slow')")
    conn.execute("SELECT * FROM migrate_backfill_status").fetchall()
    statuses = dict(check.execute("SELECT job_name, status FROM migrate.backfills").fetchall())
    assert statuses["slow"] == "done" and statuses["slow2"] == "cancelled", statuses

    assert victim.hijacks() == []
    assert check.execute("SELECT sig, by_role FROM public.pgm_hits").fetchall() == []
    assert check.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %s",
                         (owner,)).fetchone()[0] is False
