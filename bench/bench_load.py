"""make bench, long inputs (BENCH=load): migrate_load and migrate_guard_check at
10,000 and 40,000 statements. Linear code takes about four times as long for
four times the statements; the old code took sixteen times as long. This is a
benchmark, not a test: nothing here asserts a time.

  migrate_load         one migration file whose upgrade section holds N statements
  migrate_guard_check  a script of N ALTER TABLE ... ADD COLUMN on one table (the
                       guard compares each with the columns added before it)
"""

import os
import statistics
import time

import psycopg

from benchdb import dsn, fresh_db

SIZES = [int(n) for n in os.environ.get("BENCH_STATEMENTS", "10000,40000").split(",")]
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))  # median of this many runs
DB = "pgm_bench_load"


def migration_file(n):
    body = "\n".join(f"INSERT INTO bench_load VALUES ({i});" for i in range(n))
    return f"-- {n} statements\n--\n-- Revision ID: load{n}\n-- Revises:\n\n-- migrate:upgrade\n{body}\n"


def guard_script(n):
    return "\n".join(f"ALTER TABLE bench_guard ADD COLUMN c{i} int;" for i in range(n))


def timed(conn, sql, params):
    start = time.perf_counter()
    conn.execute(sql, params).fetchall()
    return time.perf_counter() - start


def measure_load(n):
    times = []
    for _ in range(REPEAT):
        fresh_db(DB)
        with psycopg.connect(dsn(DB), autocommit=True) as conn:
            times.append(timed(conn, "SELECT migrate_load(%s)", (migration_file(n),)))
    return statistics.median(times)


def measure_guard_check(n):
    fresh_db(DB)
    times = []
    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_guard (id int)")
        for _ in range(REPEAT):
            times.append(timed(conn, "SELECT count(*) FROM migrate_guard_check(%s)", (guard_script(n),)))
    return statistics.median(times)


def main():
    print(f"\n== long inputs: median of {REPEAT} runs ==")
    print(f"{'statements':>10}  {'migrate_load':>13}  {'migrate_guard_check':>20}")
    results = {}
    for n in SIZES:
        results[n] = (measure_load(n), measure_guard_check(n))
        print(f"{n:>10}  {results[n][0]:>12.3f}s  {results[n][1]:>19.3f}s")
    if len(SIZES) >= 2:
        small, large = SIZES[0], SIZES[-1]
        factor = large / small
        print(f"growth for {factor:.0f}x the statements: migrate_load {results[large][0] / results[small][0]:.1f}x, "
              f"migrate_guard_check {results[large][1] / results[small][1]:.1f}x (linear: {factor:.0f}x)")


if __name__ == "__main__":
    main()
