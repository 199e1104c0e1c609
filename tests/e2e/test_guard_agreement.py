"""Check mode agrees with live mode: every script of the corpus below is run LIVE
(in a transaction that is rolled back, collecting the guard's refusal and its
warnings and notices) and judged by migrate_guard_check() (in a transaction of
its own, as a revision would be), and both must give the same verdict: the same
set of (rule, level).

Live, a statement stops at its first error and the script with it, and the
table_rewrite event fires only after ddl_command_start let the statement
through; check mode reports every finding of every statement. So the check-mode
findings are projected onto what the live run could have seen (`as_live`)
before comparing: that is the only translation, and it is written out below."""

import psycopg
import pytest

from conftest import connect, dsn

ROWS = 3000  # "big": over pg_migrate.guard_min_rows, set to 1000 here
L = "SET LOCAL lock_timeout = '1s'"

SETUP = f"""
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN plainint AS integer;
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE users (id bigint CONSTRAINT users_pkey PRIMARY KEY, name text, email text, age integer,
                    code varchar(20), price numeric(10,2), at timestamp, score plainint);
INSERT INTO users SELECT g, 'n' || g, 'e' || g, g % 90, 'c' || g, g, now(), 1 FROM generate_series(1, {ROWS}) g;
CREATE TABLE small (LIKE users INCLUDING ALL);
INSERT INTO small SELECT * FROM users WHERE id <= 10;
CREATE TABLE orders (id bigint CONSTRAINT orders_pkey PRIMARY KEY, user_id bigint);
INSERT INTO orders SELECT g, g FROM generate_series(1, {ROWS}) g;
CREATE UNLOGGED TABLE scratch (id bigint CONSTRAINT scratch_pkey PRIMARY KEY, v integer);
INSERT INTO scratch SELECT g, g FROM generate_series(1, {ROWS}) g;
CREATE TABLE parted (id bigint NOT NULL, n integer) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (2000);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (2000) TO (4000);
INSERT INTO parted SELECT g, g FROM generate_series(1, 3999) g;
ANALYZE;
"""

# (name, statements, expected live verdict): the expectation pins the corpus to
# what the rules say, so that agreement on an empty verdict cannot hide a rule
# that fires in neither mode.
E, W, N = "error", "warning", "notice"
CORPUS = [
    # missing_lock_timeout and the script's own lock_timeout
    ("no lock_timeout", ["ALTER TABLE users ADD COLUMN x text"], {("missing_lock_timeout", E)}),
    ("SET LOCAL lock_timeout", [L, "ALTER TABLE users ADD COLUMN x text"], set()),
    ("SET lock_timeout", ["SET lock_timeout = '2s'", "ALTER TABLE users ADD COLUMN x text"], set()),
    ("SET lock_timeout TO number", ["SET LOCAL lock_timeout TO 1500", "ALTER TABLE users ADD COLUMN x text"], set()),
    ("set_config local", ["SELECT set_config('lock_timeout', '3s', true)", "ALTER TABLE users ADD COLUMN x text"], set()),
    ("set_config session", ["SELECT pg_catalog.set_config('lock_timeout', '500', false)",
                            "ALTER TABLE users ADD COLUMN x text"], set()),
    ("SET LOCAL lock_timeout = 0", [L, "SET LOCAL lock_timeout = 0", "ALTER TABLE users ADD COLUMN x text"],
     {("missing_lock_timeout", E)}),
    ("SET lock_timeout = 0 after SET LOCAL", [L, "SET lock_timeout = 0", "ALTER TABLE users ADD COLUMN x text"],
     {("missing_lock_timeout", E)}),
    ("RESET lock_timeout (to the connection's 5s)", ["SET lock_timeout = 0", "RESET lock_timeout",
                                                     "ALTER TABLE users ADD COLUMN x text"], set()),
    ("SET lock_timeout TO DEFAULT", ["SET LOCAL lock_timeout = 0", "SET LOCAL lock_timeout TO DEFAULT",
                                     "ALTER TABLE users ADD COLUMN x text"], set()),
    ("lock_timeout set too late", ["ALTER TABLE users ADD COLUMN x text", L], {("missing_lock_timeout", E)}),
    ("lock_timeout on a small table", ["ALTER TABLE small ADD COLUMN x text"], {("missing_lock_timeout", E)}),
    ("lock_timeout on a table new in the script", ["CREATE TABLE fresh (id bigint CONSTRAINT fresh_pkey PRIMARY KEY)",
                                                   "ALTER TABLE fresh ADD COLUMN x text"], set()),
    ("lock_timeout before a type change", ["ALTER TABLE users ALTER COLUMN age TYPE bigint"],
     {("missing_lock_timeout", E)}),
    # table_rewrite: ALTER COLUMN TYPE
    ("int to bigint", [L, "ALTER TABLE users ALTER COLUMN age TYPE bigint"], {("table_rewrite", E)}),
    ("int to bigint, small table", [L, "ALTER TABLE small ALTER COLUMN age TYPE bigint"], set()),
    ("int to text", [L, "ALTER TABLE users ALTER COLUMN age TYPE text"], {("table_rewrite", E)}),
    ("varchar(20) to varchar(50)", [L, "ALTER TABLE users ALTER COLUMN code TYPE varchar(50)"], set()),
    ("varchar(20) to text", [L, "ALTER TABLE users ALTER COLUMN code TYPE text"], set()),
    ("varchar(20) to varchar(10)", [L, "ALTER TABLE users ALTER COLUMN code TYPE varchar(10)"], {("table_rewrite", E)}),
    ("text to varchar(100)", [L, "ALTER TABLE users ALTER COLUMN name TYPE varchar(100)"], {("table_rewrite", E)}),
    ("text to varchar", [L, "ALTER TABLE users ALTER COLUMN name TYPE varchar"], set()),
    ("numeric(10,2) to numeric(12,2)", [L, "ALTER TABLE users ALTER COLUMN price TYPE numeric(12,2)"], set()),
    ("numeric(10,2) to numeric(10,3)", [L, "ALTER TABLE users ALTER COLUMN price TYPE numeric(10,3)"],
     {("table_rewrite", E)}),
    ("numeric(10,2) to numeric", [L, "ALTER TABLE users ALTER COLUMN price TYPE numeric"], set()),
    ("USING the column itself", [L, "ALTER TABLE users ALTER COLUMN code TYPE text USING code"], set()),
    ("USING a cast of the column", [L, "ALTER TABLE users ALTER COLUMN code TYPE text USING code::text"], set()),
    ("USING an expression", [L, "ALTER TABLE users ALTER COLUMN age TYPE integer USING age + 1"],
     {("table_rewrite", E)}),
    ("USING another column", [L, "ALTER TABLE users ALTER COLUMN code TYPE text USING name"], {("table_rewrite", E)}),
    ("to a domain without constraints", [L, "ALTER TABLE users ALTER COLUMN age TYPE plainint"], set()),
    ("to a domain with a CHECK", [L, "ALTER TABLE users ALTER COLUMN age TYPE posint"], {("table_rewrite", E)}),
    ("collation only", [L, 'ALTER TABLE users ALTER COLUMN name TYPE text COLLATE "C"'], set()),
    ("type change on a partitioned table", [L, "ALTER TABLE parted ALTER COLUMN n TYPE bigint"],
     {("table_rewrite", E)}),
    ("no rewrite on a partitioned table", [L, "ALTER TABLE parted ADD COLUMN note text"], set()),
    ("type change on a table new in the script", ["CREATE TABLE fresh (id integer CONSTRAINT fresh_pkey PRIMARY KEY, v integer)",
                                                  "ALTER TABLE fresh ALTER COLUMN v TYPE bigint"], set()),
    ("two rewriting subcommands", [L, "ALTER TABLE users ALTER COLUMN age TYPE bigint, "
                                      "ADD COLUMN r double precision DEFAULT random()"], {("table_rewrite", E)}),
    # table_rewrite: ADD COLUMN and the others
    ("volatile default", [L, "ALTER TABLE users ADD COLUMN r double precision DEFAULT random()"], {("table_rewrite", E)}),
    ("clock_timestamp default", [L, "ALTER TABLE users ADD COLUMN t timestamptz DEFAULT clock_timestamp()"],
     {("table_rewrite", E)}),
    ("stable default (now())", [L, "ALTER TABLE users ADD COLUMN t timestamptz DEFAULT now()"], set()),
    ("constant default", [L, "ALTER TABLE users ADD COLUMN flag boolean DEFAULT false"], set()),
    ("NOT NULL constant default", [L, "ALTER TABLE users ADD COLUMN flag boolean NOT NULL DEFAULT false"], set()),
    ("serial column", [L, "ALTER TABLE users ADD COLUMN s serial"], {("table_rewrite", E)}),
    ("bigserial column", [L, "ALTER TABLE users ADD COLUMN s bigserial"], {("table_rewrite", E)}),
    ("identity column", [L, "ALTER TABLE users ADD COLUMN s bigint GENERATED ALWAYS AS IDENTITY"], {("table_rewrite", E)}),
    ("stored generated column", [L, "ALTER TABLE users ADD COLUMN a2 integer GENERATED ALWAYS AS (age * 2) STORED"],
     {("table_rewrite", E)}),
    ("column of a domain with a CHECK", [L, "ALTER TABLE users ADD COLUMN p posint"], {("table_rewrite", E)}),
    ("column of a plain domain", [L, "ALTER TABLE users ADD COLUMN p plainint"], set()),
    ("volatile default, partitioned", [L, "ALTER TABLE parted ADD COLUMN r double precision DEFAULT random()"],
     {("table_rewrite", E)}),
    ("volatile default, small table", [L, "ALTER TABLE small ADD COLUMN r double precision DEFAULT random()"], set()),
    ("SET UNLOGGED", [L, "ALTER TABLE users SET UNLOGGED"], {("table_rewrite", E)}),
    ("SET LOGGED on a logged table", [L, "ALTER TABLE users SET LOGGED"], set()),
    ("SET LOGGED on an unlogged table", [L, "ALTER TABLE scratch SET LOGGED"], {("table_rewrite", E)}),
    ("SET ACCESS METHOD to its own", [L, "ALTER TABLE users SET ACCESS METHOD heap"], set()),
    ("table_rewrite acknowledged", ["SET LOCAL pg_migrate.allow = 'table_rewrite: maintenance window'", L,
                                    "ALTER TABLE users ALTER COLUMN age TYPE bigint"], set()),
    # acknowledgements in the script
    ("drop column", [L, "ALTER TABLE users DROP COLUMN email"], {("drop_column", E)}),
    ("drop column, SET LOCAL allow", [L, "SET LOCAL pg_migrate.allow = 'drop_column: unused since v3'",
                                      "ALTER TABLE users DROP COLUMN email"], set()),
    ("drop column, set_config allow", [L, "SELECT set_config('pg_migrate.allow', 'drop_column: unused', true)",
                                       "ALTER TABLE users DROP COLUMN email"], set()),
    ("drop column, session SET allow", [L, "SET pg_migrate.allow = 'drop_column: unused'",
                                        "ALTER TABLE users DROP COLUMN email"], {("drop_column", E)}),
    ("drop column, allow reset", [L, "SET LOCAL pg_migrate.allow = 'drop_column: unused'", "RESET pg_migrate.allow",
                                  "ALTER TABLE users DROP COLUMN email"], {("drop_column", E)}),
    ("allow for another rule", [L, "SET LOCAL pg_migrate.allow = 'drop_table: gone'",
                                "ALTER TABLE users DROP COLUMN email"], {("drop_column", E)}),
    # the other rules
    ("rename by drop", [L, "ALTER TABLE users DROP COLUMN name, ADD COLUMN full_name text"], {("rename_by_drop", E)}),
    ("drop table", [L, "DROP TABLE orders"], {("drop_table", E)}),
    ("drop a table new in the script", ["CREATE TABLE fresh (id bigint CONSTRAINT fresh_pkey PRIMARY KEY)",
                                        "DROP TABLE fresh"], set()),
    ("blocking index", [L, "CREATE INDEX users_email_idx ON users (email)"], {("blocking_index", E)}),
    ("index on a small table", [L, "CREATE INDEX small_email_idx ON small (email)"], set()),
    ("index on a table new in the script", ["CREATE TABLE fresh (id bigint CONSTRAINT fresh_pkey PRIMARY KEY, v text)",
                                            "CREATE INDEX fresh_v_idx ON fresh (v)"], set()),
    ("NOT NULL column without default", [L, "ALTER TABLE users ADD COLUMN must text NOT NULL"],
     {("not_null_without_default", E)}),
    ("SET NOT NULL", [L, "ALTER TABLE users ALTER COLUMN email SET NOT NULL"], {("set_not_null", E)}),
    ("validating foreign key", [L, "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) "
                                   "REFERENCES users (id) ON DELETE CASCADE"], {("validating_constraint", E)}),
    ("NOT VALID foreign key without ON DELETE", [L, "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY "
                                                    "(user_id) REFERENCES users (id) NOT VALID"],
     {("foreign_key_on_delete", W)}),
    ("unnamed NOT VALID check", [L, "ALTER TABLE users ADD CHECK (age >= 0) NOT VALID"], {("unnamed_constraint", W)}),
    ("enum value in a transaction", ["ALTER TYPE mood ADD VALUE 'calm'"], {("enum_value_in_transaction", W)}),
    ("domain constraint", [L, "ALTER DOMAIN plainint ADD CONSTRAINT plainint_positive CHECK (VALUE > 0)"],
     {("domain_constraint", E)}),
    ("prefer_* at notice and warning", ["CREATE TABLE docs (id bigint CONSTRAINT docs_pkey PRIMARY KEY, body json, "
                                        "at timestamp)"], {("prefer_jsonb", N), ("prefer_timestamptz", W)}),
    ("first error stops the script", [L, "ALTER TABLE users DROP COLUMN email", "DROP TABLE orders"],
     {("drop_column", E)}),
]


@pytest.fixture(scope="module")
def database():
    name = "agreement"
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    with connect(name) as conn:
        conn.execute("CREATE EXTENSION pg_migrate")
        conn.execute(SETUP)
    yield name
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def conn(database):
    c = connect(database)
    c.execute("SET pg_migrate.guard_min_rows = 1000")
    c.execute("SET lock_timeout = 0")
    c.execute("SET pg_migrate.guard_levels = 'prefer_jsonb=notice,prefer_timestamptz=warning'")
    yield c
    c.close()


def rule_of(message):
    """The rule a live message names: 'ACCESS EXCLUSIVE on ... [missing_lock_timeout]'."""
    return message.rsplit("[", 1)[1].rstrip("]") if message.endswith("]") and "[" in message else message


class Rollback(Exception):
    pass


def live(conn, statements):
    """Run the statements in a transaction that is rolled back: the guard's
    verdict as a set of (rule, level)."""
    seen = set()

    def handler(diag):
        if (diag.sqlstate or "").startswith("MG"):
            seen.add((rule_of(diag.message_primary), diag.severity_nonlocalized.lower()))

    conn.add_notice_handler(handler)
    try:
        with conn.transaction():
            for sql in statements:
                try:
                    conn.execute(sql)
                except psycopg.Error as error:
                    if (error.sqlstate or "").startswith("MG"):
                        seen.add((rule_of(error.diag.message_primary), "error"))
                    else:
                        seen.add(("not a guard error: " + str(error.sqlstate), str(error).splitlines()[0]))
                    break
            raise Rollback
    except Rollback:
        pass
    finally:
        conn.remove_notice_handler(handler)
    return seen


def check(conn, statements):
    """migrate_guard_check's findings, in a transaction as a revision runs: (statement, rule, level) in order."""
    script = ";\n".join(statements) + ";"
    with conn.transaction(force_rollback=True):
        return conn.execute("SELECT statement, rule, level FROM migrate_guard_check(%s)", (script,)).fetchall()


def as_live(findings):
    """What a live run could have seen of check mode's findings: statement by
    statement, ddl_command_start's findings (all but table_rewrite) and then, if
    none was an error, the table_rewrite ones; the first error ends the script."""
    seen = set()
    for number in sorted({n for n, _, _ in findings}):
        of_statement = [(rule, level) for n, rule, level in findings if n == number]
        for phase in ([f for f in of_statement if f[0] != "table_rewrite"], [f for f in of_statement if f[0] == "table_rewrite"]):
            seen |= {f for f in phase if f[1] != "error"}
            errors = [f for f in phase if f[1] == "error"]
            if errors:
                seen.add(errors[0])
                return seen
    return seen


def verdicts(conn, statements):
    return live(conn, statements), as_live(check(conn, statements))


@pytest.mark.parametrize("name,statements,expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_live_and_check_agree(conn, name, statements, expected):
    live_verdict, check_verdict = verdicts(conn, statements)
    assert live_verdict == expected, f"{name}: live said {live_verdict}, the corpus expects {expected}"
    assert check_verdict == live_verdict, f"{name}: check mode said {check_verdict}, live {live_verdict}"


def test_whole_corpus_agrees(conn):
    assert len(CORPUS) >= 50
    disagreements = []
    for name, statements, _ in CORPUS:
        live_verdict, check_verdict = verdicts(conn, statements)
        if live_verdict != check_verdict:
            disagreements.append((name, live_verdict, check_verdict))
    rules = {rule for _, _, expected in CORPUS for rule, _ in expected}
    print(f"agreement: {len(CORPUS) - len(disagreements)}/{len(CORPUS)} scripts, {len(rules)} rules")
    assert disagreements == [], disagreements
    # Both outcomes of each kind are in the corpus: refusals, warnings and notices, and clean scripts.
    levels = {level for _, _, expected in CORPUS for _, level in expected}
    assert levels == {E, W, N}
    assert sum(1 for _, _, expected in CORPUS if not expected) >= 20


def test_review_detail_is_the_live_refusals_detail(conn):
    conn.execute("""SELECT migrate_load(%s)""", ("""-- drop the email column
--
-- Revision ID: aaaa00000001
-- Revises:

-- migrate:upgrade
SET LOCAL lock_timeout = '1s';
ALTER TABLE users ALTER COLUMN age TYPE bigint;

-- migrate:downgrade
ALTER TABLE users ALTER COLUMN age TYPE integer;
""",))
    try:
        rows = conn.execute("SELECT statement, rule, sqlstate, message, detail, hint FROM migrate_review()").fetchall()
        # The revision's own SET LOCAL lock_timeout holds for its second statement.
        assert [(r[0], r[1], r[2]) for r in rows] == [(2, "table_rewrite", "MG007")], rows
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT * FROM migrate_upgrade('head')")
        assert caught.value.sqlstate == "MG007"
        assert rows[0][4] == caught.value.diag.message_detail
        assert rows[0][3] in caught.value.diag.message_primary
        assert caught.value.diag.message_hint.startswith(rows[0][5])
    finally:
        conn.execute("DELETE FROM migrate.revisions")
