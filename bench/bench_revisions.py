"""make bench, revision engine: ratios measured side by side in one run.

Workload: a linear chain of N revisions, each creating one table.
  floor        the same SQL as one psql script in one transaction (psql -1);
               for the plan, the same script with psql committing each statement
  pg_migrate   SELECT * FROM migrate_upgrade('head') / migrate_downgrade('base');
               the psql plan (SELECT * FROM migrate_plan('head') \\gexec, and back
               to 'base'); the offline script migrate_sql('head') made and run;
               scripts/migrate-load-local DIR | psql
  alembic      alembic upgrade head / current / heads / history / downgrade base
               and upgrade head --sql on the same chain

Each measurement runs in its own fresh database. This is a benchmark, not a
test: nothing here asserts a time.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchdb import PORT, dsn, fresh_db

SIZES = [int(n) for n in os.environ.get("BENCH_REVISIONS", "1000,5000").split(",")]
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))  # median of this many runs, each on a fresh database
VENV = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def rev_id(i):
    return f"r{i:07d}"


def upgrade_sql(i):
    return f"CREATE TABLE bench_t{i} (id bigint CONSTRAINT bench_t{i}_pkey PRIMARY KEY, payload text);"


def downgrade_sql(i):
    return f"DROP TABLE bench_t{i};"


def write_chain(directory, n):
    for i in range(n):
        parent = rev_id(i - 1) if i else ""
        (directory / f"{rev_id(i)}_t{i}.sql").write_text(
            f"-- create bench_t{i}\n--\n-- Revision ID: {rev_id(i)}\n-- Revises: {parent}\n\n"
            f"-- migrate:upgrade\n{upgrade_sql(i)}\n\n-- migrate:downgrade\n{downgrade_sql(i)}\n")


def psql_file(db, path):
    start = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PORT),
                    "-U", "postgres", "-d", db, "-f", str(path)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def psql_stdin(db, text, single=False):
    start = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PORT),
                    "-U", "postgres", "-d", db, *(["-1"] if single else [])], input=text, text=True, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def psql_autocommit(db, path):
    start = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PORT),
                    "-U", "postgres", "-d", db, "-f", str(path)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def psql_command(db, sql):
    start = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PORT),
                    "-U", "postgres", "-d", db, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_ms(conn, sql, repeat=7):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def alembic_project(root, n, db):
    (root / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text(
        f"[alembic]\nscript_location = {root}\nsqlalchemy.url = postgresql+psycopg2://postgres@127.0.0.1:{PORT}/{db}\n"
        "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARN\nhandlers = console\n[handler_console]\nclass = StreamHandler\n"
        "args = (sys.stderr,)\nformatter = generic\n[formatter_generic]\nformat = %(message)s\n")
    (root / "env.py").write_text(
        "from alembic import context\nfrom sqlalchemy import engine_from_config, pool\n"
        "config = context.config\n"
        "engine = engine_from_config(config.get_section(config.config_ini_section), poolclass=pool.NullPool)\n"
        "with engine.connect() as connection:\n"
        "    context.configure(connection=connection)\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n")
    (root / "script.py.mako").write_text("")
    for i in range(n):
        parent = repr(rev_id(i - 1)) if i else "None"
        (root / "versions" / f"{rev_id(i)}.py").write_text(
            f"from alembic import op\nrevision = {rev_id(i)!r}\ndown_revision = {parent}\n"
            "branch_labels = None\ndepends_on = None\n"
            f"def upgrade():\n    op.execute({upgrade_sql(i)!r})\n"
            f"def downgrade():\n    op.execute({downgrade_sql(i)!r})\n")


def alembic(root, *args):
    start = time.perf_counter()
    subprocess.run([str(VENV / "alembic"), "-c", str(root / "alembic.ini"), *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench(n, work):
    chain = work / f"chain{n}"
    chain.mkdir()
    write_chain(chain, n)
    up_script, down_script = work / f"up{n}.sql", work / f"down{n}.sql"
    up_script.write_text("\n".join(upgrade_sql(i) for i in range(n)) + "\n")
    down_script.write_text("\n".join(downgrade_sql(i) for i in reversed(range(n))) + "\n")

    project = work / f"alembic{n}"
    alembic_project(project, n, "bench_alembic")
    runs = {key: [] for key in ("floor_up", "floor_down", "pgm_up", "pgm_down", "al_up", "al_current", "al_down",
                                "floor_commit", "floor_commit_down", "pgm_plan", "pgm_plan_down",
                                "pgm_sql_make", "pgm_sql_run", "al_sql", "al_heads", "al_history",
                                "load_local", "load_local_script")}
    reads = {}
    for _ in range(REPEAT):
        # Floor: the same SQL in one psql transaction.
        fresh_db("bench_floor", extension=False)
        runs["floor_up"].append(psql_file("bench_floor", up_script))
        runs["floor_down"].append(psql_file("bench_floor", down_script))

        # pg_migrate, in psql, as a DBA would run it.
        fresh_db("bench_pgm")
        with psycopg.connect(dsn("bench_pgm"), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM migrate_load_dir(%s)", (str(chain),))
        runs["pgm_up"].append(psql_command("bench_pgm", "SELECT count(*) FROM migrate_upgrade('head')"))
        with psycopg.connect(dsn("bench_pgm"), autocommit=True) as conn:
            for f in ("migrate_history", "migrate_heads", "migrate_current"):
                reads.setdefault(f, []).append(median_ms(conn, f"SELECT * FROM {f}()"))
        runs["pgm_down"].append(psql_command("bench_pgm", "SELECT count(*) FROM migrate_downgrade('base')"))

        # Floor for the plan: psql committing each statement.
        fresh_db("bench_floor", extension=False)
        runs["floor_commit"].append(psql_autocommit("bench_floor", up_script))
        runs["floor_commit_down"].append(psql_autocommit("bench_floor", down_script))

        # The psql plan, loaded from the client with scripts/migrate-load-local.
        fresh_db("bench_pgm")
        start = time.perf_counter()
        loader = subprocess.run([str(ROOT / "scripts/migrate-load-local"), str(chain)],
                                capture_output=True, text=True, check=True).stdout
        runs["load_local_script"].append(time.perf_counter() - start)
        runs["load_local"].append(runs["load_local_script"][-1] + psql_stdin("bench_pgm", loader))
        runs["pgm_plan"].append(psql_stdin("bench_pgm", "SELECT * FROM migrate_plan('head') \\gexec\n"))
        runs["pgm_plan_down"].append(
            psql_stdin("bench_pgm", "SELECT * FROM migrate_plan('base', 'downgrade') \\gexec\n"))

        # The offline script: made in the database, run by psql.
        with psycopg.connect(dsn("bench_pgm"), autocommit=True) as conn:
            start = time.perf_counter()
            script = conn.execute("SELECT migrate_sql('head')").fetchone()[0]
            runs["pgm_sql_make"].append(time.perf_counter() - start)
        runs["pgm_sql_run"].append(psql_stdin("bench_pgm", script))

        # Alembic on the same chain.
        fresh_db("bench_alembic", extension=False)
        runs["al_up"].append(alembic(project, "upgrade", "head"))
        runs["al_current"].append(alembic(project, "current"))
        runs["al_heads"].append(alembic(project, "heads"))
        runs["al_history"].append(alembic(project, "history"))
        runs["al_down"].append(alembic(project, "downgrade", "base"))
        runs["al_sql"].append(alembic(project, "upgrade", "head", "--sql"))

    m = {key: statistics.median(values) for key, values in runs.items()}
    floor_up, floor_down, pgm_up, pgm_down = m["floor_up"], m["floor_down"], m["pgm_up"], m["pgm_down"]
    al_up, al_current, al_down = m["al_up"], m["al_current"], m["al_down"]
    reads = {f: statistics.median(values) for f, values in reads.items()}

    return {
        "n": n, "floor_up": floor_up, "pgm_up": pgm_up, "al_up": al_up,
        "floor_down": floor_down, "pgm_down": pgm_down, "al_down": al_down,
        "reads": reads, "al_current": al_current, "m": m,
    }


def main():
    work = Path(tempfile.mkdtemp(prefix="pgm_bench_"))
    os.chmod(work, 0o755)  # the server reads the chain directory
    try:
        results = [bench(n, work) for n in SIZES]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nRevision engine: linear chain, one CREATE TABLE per revision "
          f"(seconds, median of {REPEAT} runs; ratio = pg_migrate / floor)")
    print(f"{'revisions':>9} | {'op':<9} | {'floor psql -1':>13} | {'pg_migrate':>10} | {'ratio':>6} | {'alembic':>8} | {'alembic/pg_migrate':>18}")
    for r in results:
        for op, floor, pgm, al in (("upgrade", r["floor_up"], r["pgm_up"], r["al_up"]),
                                   ("downgrade", r["floor_down"], r["pgm_down"], r["al_down"])):
            print(f"{r['n']:>9} | {op:<9} | {floor:>13.2f} | {pgm:>10.2f} | {pgm / floor:>5.2f}x | {al:>8.2f} | {al / pgm:>17.1f}x")
    print(f"\nThe psql plan, committing each revision (seconds, median of {REPEAT}; "
          "floor = psql committing each statement; alembic = alembic upgrade head / downgrade base)")
    print(f"{'revisions':>9} | {'op':<14} | {'floor':>7} | {'pg_migrate':>10} | {'ratio':>6} | {'alembic':>8}")
    for r in results:
        m = r["m"]
        for op, floor, pgm, al in (("plan upgrade", m["floor_commit"], m["pgm_plan"], m["al_up"]),
                                   ("plan downgrade", m["floor_commit_down"], m["pgm_plan_down"], m["al_down"])):
            print(f"{r['n']:>9} | {op:<14} | {floor:>7.2f} | {pgm:>10.2f} | {pgm / floor:>5.2f}x | {al:>8.2f}")
    if len(results) > 1:
        a, b = results[0]["m"], results[-1]["m"]
        print(f"growth {results[0]['n']} -> {results[-1]['n']}: plan upgrade x{b['pgm_plan'] / a['pgm_plan']:.1f}, "
              f"plan downgrade x{b['pgm_plan_down'] / a['pgm_plan_down']:.1f}, "
              f"migrate-load-local alone x{b['load_local_script'] / a['load_local_script']:.1f}")
    print("\nOffline script and loading (seconds)")
    for r in results:
        m = r["m"]
        print(f"{r['n']:>9} revisions: migrate_sql('head') made {m['pgm_sql_make']:.2f}, run {m['pgm_sql_run']:.2f} "
              f"(alembic upgrade head --sql {m['al_sql']:.2f}); migrate-load-local alone "
              f"{m['load_local_script']:.2f}, | psql {m['load_local']:.2f}; alembic heads {m['al_heads']:.2f}, "
              f"history {m['al_history']:.2f}")
    print("\nReading the state (median of 7, milliseconds)")
    for r in results:
        reads = ", ".join(f"{name}() {ms:.1f} ms" for name, ms in r["reads"].items())
        print(f"{r['n']:>9} revisions: {reads}; alembic current {r['al_current'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
