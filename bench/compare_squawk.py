"""make bench, squawk comparison: the same corpus of dangerous and safe
migrations through squawk 2.66 (static) and through pg_migrate's guard (live,
each statement run in a transaction that is rolled back, against real tables:
`big` has 200,000 rows, `small` has 10, `empty` none).

Prints, per case, what each tool reported. A tool "flags" a case when it
reports a rule about the danger in question (squawk's prefer-robust-stmts,
about IF NOT EXISTS, is left out: it is about reruns, not locks or data).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from benchdb import dsn, fresh_db

SQUAWK = Path(os.environ.get("SQUAWK", "node_modules/.bin/squawk"))
DB = "bench_squawk"
IGNORED_SQUAWK = {"prefer-robust-stmts"}

SETUP = """
CREATE TABLE big (id bigint CONSTRAINT big_pkey PRIMARY KEY, name text, email text, age integer, code varchar(20));
INSERT INTO big SELECT g, 'n' || g, 'e' || g, g % 90, 'c' || g FROM generate_series(1, 200000) g;
CREATE TABLE small (id bigint CONSTRAINT small_pkey PRIMARY KEY, name text, email text);
INSERT INTO small SELECT g, 'n', 'e' FROM generate_series(1, 10) g;
CREATE TABLE empty (id bigint CONSTRAINT empty_pkey PRIMARY KEY, name text);
CREATE TABLE ref (id bigint CONSTRAINT ref_pkey PRIMARY KEY, big_id bigint);
INSERT INTO ref SELECT g, g FROM generate_series(1, 200000) g;
ANALYZE;
"""

# (case, statement(s), dangerous?)
CORPUS = [
    ("index on a large table", "CREATE INDEX big_email_idx ON big (email);", True),
    ("index on a small table", "CREATE INDEX small_email_idx ON small (email);", False),
    ("index on a table created in the same migration",
     "CREATE TABLE fresh (id bigint CONSTRAINT fresh_pkey PRIMARY KEY, v text);\nCREATE INDEX fresh_v_idx ON fresh (v);", False),
    ("index built concurrently", "CREATE INDEX CONCURRENTLY big_email_idx ON big (email);", False),
    ("unique constraint without USING INDEX", "ALTER TABLE big ADD CONSTRAINT big_email_key UNIQUE (email);", True),
    ("type change int -> bigint (rewrite)", "ALTER TABLE big ALTER COLUMN age TYPE bigint;", True),
    ("type change varchar(20) -> text (no rewrite)", "ALTER TABLE big ALTER COLUMN code TYPE text;", False),
    ("volatile default (rewrite)", "ALTER TABLE big ADD COLUMN r float8 DEFAULT random();", True),
    ("stable default (no rewrite)", "ALTER TABLE big ADD COLUMN seen timestamptz DEFAULT now();", False),
    ("drop + add column of the same type (a rename)", "ALTER TABLE big DROP COLUMN name, ADD COLUMN full_name text;", True),
    ("drop column with data", "ALTER TABLE big DROP COLUMN code;", True),
    ("drop column of an empty table", "ALTER TABLE empty DROP COLUMN name;", False),
    ("drop table with data", "DROP TABLE small;", True),
    ("drop empty table", "DROP TABLE empty;", False),
    ("NOT NULL column without default, table with rows", "ALTER TABLE big ADD COLUMN role text NOT NULL;", True),
    ("NOT NULL column with a constant default", "ALTER TABLE big ADD COLUMN role text NOT NULL DEFAULT 'member';", False),
    ("SET NOT NULL without a validated check", "ALTER TABLE big ALTER COLUMN email SET NOT NULL;", True),
    ("SET NOT NULL after a validated check",
     "ALTER TABLE big ADD CONSTRAINT big_email_nn CHECK (email IS NOT NULL) NOT VALID;\n"
     "ALTER TABLE big VALIDATE CONSTRAINT big_email_nn;\nALTER TABLE big ALTER COLUMN email SET NOT NULL;", False),
    ("foreign key without NOT VALID", "ALTER TABLE ref ADD CONSTRAINT ref_big_id_fkey FOREIGN KEY (big_id) "
                                      "REFERENCES big (id) ON DELETE CASCADE;", True),
    ("foreign key NOT VALID", "ALTER TABLE ref ADD CONSTRAINT ref_big_id_fkey FOREIGN KEY (big_id) "
                              "REFERENCES big (id) ON DELETE CASCADE NOT VALID;", False),
    ("ACCESS EXCLUSIVE with lock_timeout = 0", "SET lock_timeout = 0;\nALTER TABLE small ADD COLUMN note text;", True),
]


def squawk(sql, work):
    path = work / "case.sql"
    path.write_text(sql + "\n")
    out = subprocess.run([str(SQUAWK), "--reporter", "json", str(path)], capture_output=True, text=True).stdout
    try:
        violations = json.loads(out or "[]")
    except json.JSONDecodeError:
        return ["(squawk output unreadable)"]
    return sorted({v.get("rule_name") or v.get("rule") for v in violations} - IGNORED_SQUAWK)


def guard(conn, sql):
    """Run live with the guard on, always undone; the rule that refused it, if any."""
    if "CONCURRENTLY" in sql.upper():
        # Cannot run in a transaction block: run it, then undo it by hand.
        try:
            conn.execute("SET lock_timeout = '5s'")
            conn.execute(sql)
            return []
        except psycopg.Error as error:
            return rule_of(error)
        finally:
            conn.execute("SET pg_migrate.guard = 'off'")
            conn.execute("DROP INDEX IF EXISTS big_email_idx")
            conn.execute("RESET pg_migrate.guard")
    conn.execute("BEGIN")
    try:
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute(sql)
        return []
    except psycopg.Error as error:
        return rule_of(error)
    finally:
        conn.execute("ROLLBACK")


def rule_of(error):
    primary = error.diag.message_primary or ""
    if primary.endswith("]") and "[" in primary:
        return [primary.rsplit("[", 1)[1].rstrip("]")]
    return [f"(error {error.sqlstate})"]


def main():
    fresh_db(DB)
    conn = psycopg.connect(dsn(DB), autocommit=True)
    conn.execute(SETUP)
    work = Path(tempfile.mkdtemp(prefix="pgm_squawk_"))
    rows = []
    for case, sql, dangerous in CORPUS:
        rows.append((case, dangerous, squawk(sql, work), guard(conn, sql)))

    def verdict(flags, dangerous):
        return "right" if bool(flags) == dangerous else ("missed" if dangerous else "false alarm")

    print("\nsquawk 2.66 (static) vs the pg_migrate guard (live), same corpus")
    print(f"{'case':<52} {'danger':<6} {'squawk':<46} {'guard':<28}")
    score = {"squawk": 0, "guard": 0}
    for case, dangerous, sq, gu in rows:
        score["squawk"] += verdict(sq, dangerous) == "right"
        score["guard"] += verdict(gu, dangerous) == "right"
        print(f"{case:<52} {'yes' if dangerous else 'no':<6} "
              f"{(', '.join(sq) or '-') + ' (' + verdict(sq, dangerous) + ')':<46} "
              f"{(', '.join(gu) or '-') + ' (' + verdict(gu, dangerous) + ')':<28}")
    print(f"\nright on {score['squawk']}/{len(rows)} cases: squawk; {score['guard']}/{len(rows)}: guard")


if __name__ == "__main__":
    sys.exit(main())
