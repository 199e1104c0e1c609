"""make bench, guard: what the event triggers cost, measured side by side.

DDL: 10,000 mixed DDL statements (CREATE TABLE, ALTER TABLE ADD/DROP COLUMN,
CREATE INDEX, DROP TABLE), each sent on its own as psql -f would, in a
database without the extension and in one with it (guard on, enforce).

Two measures:
- instructions the backend executes, counted by valgrind's callgrind on a
  second cluster (CALLGRIND_PORT). The count is repeatable to a fraction of a
  percent, whatever else the machine is doing; this is the headline figure.
- backend CPU time from /proc, median of back-to-back pairs. On a shared
  2-core VM it moves by 1.5-2x between runs, so it is printed for reference.

DML: pgbench TPC-B-like TPS in both; event triggers never fire for DML.
Nothing here asserts a time.
"""

import os
import re
import statistics
import subprocess
import time
from pathlib import Path

import psycopg

from benchdb import PORT, dsn, fresh_db

ROUNDS = int(os.environ.get("BENCH_GUARD_ROUNDS", "2000"))  # x 5 statements = 10,000 DDL
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def ddl_statements():
    statements = []
    for i in range(ROUNDS):
        statements += [
            f"CREATE TABLE g_{i} (id bigint CONSTRAINT g_{i}_pkey PRIMARY KEY, a integer, b text)",
            f"ALTER TABLE g_{i} ADD COLUMN c integer",
            f"CREATE INDEX g_{i}_a_idx ON g_{i} (a)",
            f"ALTER TABLE g_{i} DROP COLUMN c",
            f"DROP TABLE g_{i}",
        ]
    return statements


def backend_cpu_seconds(pid):
    """utime + stime of a backend process, from /proc (the bench runs on the server's machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ddl(db, statements):
    """Each statement on its own, in autocommit, as psql -f sends them. Returns
    (wall seconds, backend CPU seconds): CPU time is what the guard adds to, and
    it is not blurred by disk waits."""
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu, wall = backend_cpu_seconds(pid), time.perf_counter()
        for statement in statements:
            conn.execute(statement)
        return time.perf_counter() - wall, backend_cpu_seconds(pid) - cpu


def callgrind_instructions(out_dir, pid):
    """The instruction total callgrind writes when backend `pid` exits."""
    path = Path(out_dir) / f"out.{pid}"
    for _ in range(600):
        if path.exists():
            found = re.search(r"^totals: (\d+)", path.read_text(), re.M)
            if found:
                return int(found.group(1))
        time.sleep(0.2)
    raise SystemExit(f"callgrind wrote no count for backend {pid} in {out_dir}")


def count_ddl_instructions(port, out_dir, extension, statements):
    """Instructions of one backend running `statements`, minus those of a
    backend that only connects: what the statements themselves cost."""
    db = "bench_guard_on" if extension else "bench_guard_off"
    fresh_db(db, extension, port)
    counts = []
    for work in (statements, []):
        with psycopg.connect(dsn(db, port), autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            for statement in work:
                conn.execute(statement)
        counts.append(callgrind_instructions(out_dir, pid))
    return counts[0] - counts[1]


def pgbench_tps(db, seconds=10):
    out = subprocess.run(["pgbench", "-n", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", "-c", "2", "-j", "2",
                          "-T", str(seconds), db], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"tps = ([0-9.]+)", out).group(1))


def main():
    statements = ddl_statements()
    callgrind_port, callgrind_out = os.environ.get("CALLGRIND_PORT"), os.environ.get("CALLGRIND_OUT")
    instructions = None
    if callgrind_port and callgrind_out:
        instructions = (count_ddl_instructions(int(callgrind_port), callgrind_out, False, statements),
                        count_ddl_instructions(int(callgrind_port), callgrind_out, True, statements))
    ratios_cpu, ratios_wall, cpu_off, cpu_on = [], [], [], []
    # A warm-up pair first; then pairs back to back, so that drift (the
    # filesystem after thousands of creates and drops) hits both sides alike.
    for round_number in range(REPEAT + 1):
        fresh_db("bench_guard_off", extension=False)
        wall_a, cpu_a = run_ddl("bench_guard_off", statements)
        fresh_db("bench_guard_on", extension=True)
        wall_b, cpu_b = run_ddl("bench_guard_on", statements)
        if round_number == 0:
            continue
        ratios_cpu.append(cpu_b / cpu_a)
        ratios_wall.append(wall_b / wall_a)
        cpu_off.append(cpu_a)
        cpu_on.append(cpu_b)

    # pgbench -i adds primary keys to filled tables, which the guard refuses
    # (blocking_index): initialise with the guard off, then measure with it on.
    init_env = dict(os.environ, PGOPTIONS="-c pg_migrate.guard=off")
    for db in ("bench_guard_off", "bench_guard_on"):
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", "-h", "127.0.0.1", "-p", str(PORT), "-U", "postgres", db],
                       check=True, capture_output=True, env=init_env)
    tps_off, tps_on = [], []
    for _ in range(REPEAT):
        tps_off.append(pgbench_tps("bench_guard_off"))
        tps_on.append(pgbench_tps("bench_guard_on"))
    off, on = statistics.median(tps_off), statistics.median(tps_on)

    print("\nGuard cost")
    if instructions:
        plain, guarded = instructions
        print(f"  {len(statements):,} mixed DDL statements, backend instructions (callgrind): without extension {plain / 1e9:.3f} G, "
              f"with the guard {guarded / 1e9:.3f} G   overhead {100 * (guarded / plain - 1):+.1f}%"
              f"  ({(guarded - plain) / len(statements):,.0f} per statement)")
    else:
        print("  (instruction counts skipped: no CALLGRIND_PORT/CALLGRIND_OUT)")
    print(f"  CPU time, median of {REPEAT} back-to-back pairs after a warm-up pair:")
    print(f"    backend CPU: without extension {statistics.median(cpu_off):.2f} s, "
          f"with the guard {statistics.median(cpu_on):.2f} s   overhead {100 * (statistics.median(ratios_cpu) - 1):+.1f}%"
          f"   (wall clock {100 * (statistics.median(ratios_wall) - 1):+.1f}%)")
    print(f"  pgbench TPC-B-like, 2 clients: without {off:,.0f} TPS, with {on:,.0f} TPS"
          f"   difference {100 * (on / off - 1):+.1f}% (runs: {', '.join(f'{t:,.0f}' for t in tps_off)} vs "
          f"{', '.join(f'{t:,.0f}' for t in tps_on)})")


if __name__ == "__main__":
    main()
