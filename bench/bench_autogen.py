"""make bench, autogenerate (BENCH=autogen): migrate_check and
migrate_autogenerate on a schema of 200 tables, 2,000 columns and 400 indexes
(issue 13 asks for under a second each). A benchmark, not a test: it prints.

  check, equal         live and desired are the same schema
  check, drifted       the desired side changes every tenth table
  autogenerate         the same drift written as revisions (rolled back)
  baseline             the desired DDL itself, run in a transaction that is rolled back
"""

import os
import statistics
import time

import psycopg

from benchdb import dsn, fresh_db

TABLES = int(os.environ.get("BENCH_AUTOGEN_TABLES", "200"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
DB = "pgm_bench_autogen"


def schema(drift):
    parts = []
    for t in range(TABLES):
        columns = ["id bigint PRIMARY KEY"] + [f"c{c} {'text' if c % 2 else 'integer'}" for c in range(1, 10)]
        if drift and t % 10 == 0:
            columns.append("added integer")
        parts.append(f"CREATE TABLE t{t} ({', '.join(columns)});")
        parts.append(f"CREATE INDEX t{t}_c1_idx ON t{t} (c1);")
        parts.append(f"CREATE INDEX t{t}_c2_idx ON t{t} (c2){' WHERE c2 IS NOT NULL' if drift and t % 10 == 1 else ''};")
    return "\n".join(parts)


def timed(conn, sql, params):
    times = []
    for _ in range(REPEAT):
        with conn.transaction(force_rollback=True):
            start = time.perf_counter()
            conn.execute(sql, params).fetchall()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    fresh_db(DB)
    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute(schema(False))
        columns = conn.execute("SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                               "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0").fetchone()[0]
        indexes = conn.execute("SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid "
                               "WHERE c.relnamespace = 'public'::regnamespace AND NOT x.indisprimary").fetchone()[0]
        print(f"autogenerate: {TABLES} tables, {columns} columns, {indexes} indexes (and {TABLES} primary keys), median of {REPEAT}")
        # Baseline: PostgreSQL itself running the same DDL in a transaction
        # rolled back (what the desired side costs at the least).
        baseline = []
        for _ in range(REPEAT):
            with conn.transaction(force_rollback=True):
                start = time.perf_counter()
                conn.execute("CREATE SCHEMA bench_baseline; SET LOCAL search_path = bench_baseline; " + schema(False))
                baseline.append(time.perf_counter() - start)
        equal = timed(conn, "SELECT * FROM migrate_check(%s)", (schema(False),))
        drifted = timed(conn, "SELECT * FROM migrate_check(%s)", (schema(True),))
        generate = timed(conn, "SELECT * FROM migrate_autogenerate('bench', %s)", (schema(True),))
        differences = len(conn.execute("SELECT * FROM migrate_check(%s)", (schema(True),)).fetchall())
        print(f"  the DDL alone, psql-style   {statistics.median(baseline) * 1000:8.1f} ms  (baseline)")
        print(f"  migrate_check, equal        {equal * 1000:8.1f} ms  ({equal / statistics.median(baseline):.2f}x the baseline)")
        print(f"  migrate_check, drifted      {drifted * 1000:8.1f} ms  ({differences} differences)")
        print(f"  migrate_autogenerate        {generate * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
