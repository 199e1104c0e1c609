"""make bench, backfills: ratios measured side by side in one run.

Workload: a table of N rows (default 1,000,000), SET role = 'member' WHERE role IS NULL,
with role NULL in every row (dense) and in one row of ten (sparse).
  single UPDATE     one UPDATE ... SET ... WHERE ... statement
  migrate_backfill  CALL migrate_backfill(...), committing after every batch
  background        SELECT migrate_backfill_start(...): the same job in a background
                    worker, timed from the start to its row showing done
  hand loop         UPDATE ... WHERE id IN (SELECT id ... WHERE role IS NULL LIMIT n)
                    repeated in a PL/pgSQL procedure with COMMIT
Then again with concurrent writers (pgbench, 2 clients updating random rows of
the same table), comparing their p99 latency with and without the operation
(the background job throttled by the server's health instead of a pause:
max_wal_rate):
closed loop (each client sends its next UPDATE when the last one returns, as
plain pgbench does) and open loop (-R: UPDATEs are due on a schedule, latency
counts from when each was due, so a stall also delays the ones queued behind it).
Memory: the backend's private memory (RssAnon) at two table sizes.
Nothing here asserts a time.
"""

import math
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from benchdb import PORT, dsn, fresh_db

ROWS = int(os.environ.get("BENCH_BACKFILL_ROWS", "1000000"))
BATCH = int(os.environ.get("BENCH_BACKFILL_BATCH", "1000"))
# With writers running, the backfill is throttled as it would be in production.
# Writers mostly wait on WAL flushes (WALSync, WALWrite), and each batch's commit
# adds one: at the same throughput, fewer commits with longer pauses (1,000 rows
# every 60 ms) disturb them less than more, smaller ones (500 every 30 ms).
WRITERS_BATCH = int(os.environ.get("BENCH_BACKFILL_WRITERS_BATCH", "1000"))
PAUSE_MS = int(os.environ.get("BENCH_BACKFILL_PAUSE_MS", "60"))
# BENCH_BACKFILL_WRITERS=0 skips the runs with writers (for a quick 10M-row run).
WITH_WRITERS = os.environ.get("BENCH_BACKFILL_WRITERS", "1") != "0"
SPARSE = int(os.environ.get("BENCH_BACKFILL_SPARSE", "10"))  # the sparse table: one NULL row in SPARSE
WRITE_RATE = int(os.environ.get("BENCH_WRITE_RATE", "1000"))  # writer transactions per second, both clients
# The background job with writers: throttled on the WAL rate (bytes/s) instead of a pause.
WAL_RATE = int(os.environ.get("BENCH_BACKFILL_WAL_RATE", "8000000"))
DB = "bench_backfill"


def connect():
    return psycopg.connect(dsn(DB), autocommit=True)


def make_table(conn, name, rows=ROWS, null_every=1):
    """`rows` rows; role is NULL in one row of every `null_every` (spread evenly)."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} (id bigint PRIMARY KEY, role text, counter int NOT NULL DEFAULT 0, "
                 "payload text NOT NULL DEFAULT repeat('x', 40))")
    conn.execute(f"INSERT INTO {name} (id, role) SELECT g, CASE WHEN g % {null_every} = 0 THEN NULL ELSE 'admin' END "
                 f"FROM generate_series(1, {rows}) g")
    conn.execute(f"VACUUM ANALYZE {name}")


def timed(conn, sql):
    start = time.perf_counter()
    conn.execute(sql)
    return time.perf_counter() - start


def single(table):
    return f"UPDATE {table} SET role = 'member' WHERE role IS NULL"


def backfill(table, pause_ms=0, batch=BATCH):
    return (f"CALL migrate_backfill('{table}', $$role = 'member'$$, 'role IS NULL', "
            f"job_name => '{table}', batch_size => {batch}, pause_ms => {pause_ms})")


def background(table, batch=BATCH, extra=""):
    return (f"SELECT migrate_backfill_start('{table}', $$role = 'member'$$, 'role IS NULL', "
            f"job_name => '{table}', batch_size => {batch}{extra})")


def timed_background(conn, table, sql):
    """From the start of a background job to its row showing done."""
    start = time.perf_counter()
    conn.execute(sql)
    while conn.execute("SELECT status FROM migrate.backfills WHERE job_name = %s", (table,)).fetchone()[0] != "done":
        time.sleep(0.005)
    return time.perf_counter() - start


def hand_loop(table):
    return f"CALL hand_loop('{table}', {BATCH})"


HAND_LOOP = """
CREATE OR REPLACE PROCEDURE hand_loop(t regclass, n integer) LANGUAGE plpgsql AS $$
DECLARE done bigint;
BEGIN
    LOOP
        EXECUTE format('UPDATE %s SET role = ''member'' WHERE id IN (SELECT id FROM %s WHERE role IS NULL LIMIT %s)', t, t, n);
        GET DIAGNOSTICS done = ROW_COUNT;
        COMMIT;
        EXIT WHEN done = 0;
    END LOOP;
END $$;
"""


def writers(table, seconds, workdir, open_loop):
    """pgbench: 2 clients updating random rows; returns [(start_s, latency_ms)]."""
    script = workdir / f"writer_{table}.sql"
    script.write_text(f"\\set id random(1, {ROWS})\nUPDATE {table} SET counter = counter + 1 WHERE id = :id;\n")
    prefix = workdir / f"log_{table}_{int(open_loop)}"
    # Open loop (-R): a blocked writer's scheduled transactions keep arriving, and
    # their latency counts from when they were due, so blocking shows in the p99.
    rate = ["-R", str(WRITE_RATE)] if open_loop else []
    subprocess.run(["pgbench", "-n", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", "-c", "2", "-j", "1", *rate,
                    "-T", str(seconds), "-f", str(script), "-l", "--log-prefix", str(prefix), DB],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    for log in workdir.glob(f"{prefix.name}.*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            latency_us, epoch, micros = int(fields[2]), int(fields[4]), int(fields[5])
            end = epoch + micros / 1e6
            samples.append((end - latency_us / 1e6, latency_us / 1000))
    return samples


def p99(latencies):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] if ordered else float("nan")


def with_writers(conn, table, sql, seconds, workdir, open_loop):
    """Writers run `seconds`; the operation starts after 1 s.
    Returns (op time, writer latencies of transactions that started in its window)."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("samples", writers(table, seconds, workdir, open_loop)))
    thread.start()
    time.sleep(1.0)
    start = time.time()
    box["op"] = (sql() if callable(sql) else timed(conn, sql)) if sql else 0.0
    end = time.time()
    thread.join()
    window = [lat for s, lat in box["samples"] if (start <= s <= end) or not sql]
    return box["op"], window


def rss_anon_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def peak_private_memory(conn, table):
    """Peak private (non-shared) memory of the backend running the backfill."""
    runner = connect()
    pid = runner.execute("SELECT pg_backend_pid()").fetchone()[0]
    peak = [rss_anon_kb(pid)]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak.append(rss_anon_kb(pid))
            except OSError:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    runner.execute(backfill(table).replace(f"job_name => '{table}'", f"job_name => '{table}_mem'"))
    stop.set()
    sampler.join()
    runner.close()
    return max(peak)


def main():
    fresh_db(DB)
    conn = connect()
    conn.execute(HAND_LOOP)
    conn.execute("SET client_min_messages = warning")
    workdir = Path(tempfile.mkdtemp(prefix="pgm_bf_"))

    # Dense: every row needs the update. Sparse: one row in ten does, spread over
    # the table, as when fixing the rows an old code path left NULL.
    results = {}
    for null_every in (1, SPARSE):
        tables = [f"bf_{kind}_{null_every}" for kind in ("single", "backfill", "loop", "bg")]
        for name in tables:
            make_table(conn, name, null_every=null_every)
        results[null_every] = (timed(conn, single(tables[0])), timed(conn, backfill(tables[1])),
                               timed(conn, hand_loop(tables[2])),
                               timed_background(conn, tables[3], background(tables[3])))
        for name in tables:
            assert conn.execute(f"SELECT count(*) FROM {name} WHERE role IS NULL").fetchone()[0] == 0
    t_single, t_backfill, _, _ = results[1]

    # Writers run longer than the operation (which starts after 1 s) whatever it takes.
    throttled_estimate = t_backfill * 1.5 + ROWS / WRITERS_BATCH * PAUSE_MS / 1000
    writer_runs = {}
    for open_loop in (False, True) if WITH_WRITERS else ():
        loop = "open" if open_loop else "closed"
        base_t, single_t, backfill_t, bg_t = (f"w_{loop}_base", f"w_{loop}_single", f"w_{loop}_backfill",
                                              f"w_{loop}_bg")
        for name in (base_t, single_t, backfill_t, bg_t):
            make_table(conn, name)
        _, base = with_writers(conn, base_t, None, 8, workdir, open_loop)
        op_single, during_single = with_writers(conn, single_t, single(single_t), int(t_single * 3) + 5,
                                                workdir, open_loop)
        op_backfill, during_backfill = with_writers(conn, backfill_t, backfill(backfill_t, PAUSE_MS, WRITERS_BATCH),
                                                    int(throttled_estimate * 1.5) + 5, workdir, open_loop)
        throttled = background(bg_t, WRITERS_BATCH, f", max_wal_rate => {WAL_RATE}")
        op_bg, during_bg = with_writers(conn, bg_t, lambda: timed_background(conn, bg_t, throttled),
                                        int(throttled_estimate * 1.5) + 5, workdir, open_loop)
        waits = conn.execute("SELECT wal_waits FROM migrate.backfills WHERE job_name = %s", (bg_t,)).fetchone()[0]
        writer_runs[open_loop] = (base, (op_single, during_single), (op_backfill, during_backfill),
                                  (op_bg, during_bg, waits))

    small = ROWS // 10
    make_table(conn, "m_small", small)
    make_table(conn, "m_large", ROWS)
    mem_small = peak_private_memory(conn, "m_small")
    mem_large = peak_private_memory(conn, "m_large")

    for null_every, (t_single_n, t_backfill_n, t_loop_n, t_bg_n) in results.items():
        updated = ROWS // null_every
        shape = "every row" if null_every == 1 else f"one row in {null_every}"
        print(f"\nBackfill of {ROWS:,} rows, {shape} NULL ({updated:,} updated), SET role = 'member' "
              f"WHERE role IS NULL, batch_size {BATCH} (seconds)")
        print(f"  single UPDATE          {t_single_n:7.2f}  ({updated / t_single_n:,.0f} rows updated/s)")
        print(f"  migrate_backfill       {t_backfill_n:7.2f}  ({updated / t_backfill_n:,.0f} rows updated/s)   "
              f"throughput {t_single_n / t_backfill_n:.0%} of the single UPDATE")
        print(f"  hand-written loop      {t_loop_n:7.2f}  ({updated / t_loop_n:,.0f} rows updated/s)   "
              f"migrate_backfill is {t_loop_n / t_backfill_n:.1f}x faster")
        print(f"  migrate_backfill_start {t_bg_n:7.2f}  ({updated / t_bg_n:,.0f} rows updated/s)   "
              f"background throughput {t_backfill_n / t_bg_n:.0%} of the foreground one")
    if writer_runs:
        print("\nConcurrent writers: pgbench, 2 clients, random single-row UPDATEs of the same table")
        print(f"  (migrate_backfill throttled: batch_size {WRITERS_BATCH}, pause_ms {PAUSE_MS})")
    for open_loop, label in ((False, "closed loop"), (True, f"open loop, -R {WRITE_RATE}, latency from the scheduled start")):
        if open_loop not in writer_runs:
            continue
        base, (op_single, during_single), (op_backfill, during_backfill), (op_bg, during_bg, waits) = \
            writer_runs[open_loop]
        base_p99 = p99(base)
        print(f"  {label}:")

        def line(what, latencies):
            print(f"    {what:<30} p99 {p99(latencies):8.2f} ms  max {max(latencies):8.1f} ms  "
                  f"p99 {p99(latencies) / base_p99:6.2f}x the baseline  ({len(latencies):,} writes)")

        line("no operation", base)
        line(f"single UPDATE ({op_single:.1f} s)", during_single)
        line(f"migrate_backfill ({op_backfill:.1f} s)", during_backfill)
        line(f"background, WAL rate ({op_bg:.1f} s)", during_bg)
        print(f"      (background: batch_size {WRITERS_BATCH}, max_wal_rate {WAL_RATE:,} bytes/s, {waits} WAL-rate waits)")
    print("\nBackend private memory (peak RssAnon) during migrate_backfill")
    print(f"  {small:,} rows: {mem_small / 1024:.1f} MiB; {ROWS:,} rows: {mem_large / 1024:.1f} MiB"
          f"   ratio {mem_large / mem_small:.2f} for 10x the rows")


if __name__ == "__main__":
    main()
