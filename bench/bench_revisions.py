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
# The branchy graph: this many revisions in BRANCHES labelled branches (0: skip it).
BRANCHY = int(os.environ.get("BENCH_BRANCHY", "2000"))
BRANCHES = 20
MERGE_EVERY = 20  # every 20th revision of a branch also merges the next branch's line
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


def psql_stdin_memory(db, text):
    """Run `text` in one psql session, then read that backend's private memory
    (RssAnon, kB) from its own /proc/self/status. Returns (seconds, kB)."""
    tail = "\\pset format unaligned\n\\pset tuples_only on\nSELECT pg_catalog.pg_read_file('/proc/self/status');\n"
    start = time.perf_counter()
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PORT),
                          "-U", "postgres", "-d", db], input=text + "\n" + tail, text=True, check=True,
                         capture_output=True).stdout
    elapsed = time.perf_counter() - start
    rss = next((int(line.split()[1]) for line in out.splitlines() if line.startswith("RssAnon:")), 0)
    return elapsed, rss


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


def branchy_graph(n):
    """(id, parents, labels) in an order that puts parents first: BRANCHES lines of
    n / BRANCHES revisions, each with its own base and label; every MERGE_EVERY-th
    revision of line k also revises line k+1's previous revision, so the lines
    cross-merge while each keeps its own head (BRANCHES heads)."""
    length = n // BRANCHES
    name = lambda k, i: f"b{k:02d}_{i:05d}"  # noqa: E731
    nodes = []
    for i in range(length):
        for k in range(BRANCHES):
            parents = [name(k, i - 1)] if i else []
            if i and i % MERGE_EVERY == 0:
                parents.append(name((k + 1) % BRANCHES, i - 1))
            nodes.append((name(k, i), parents, [f"line{k:02d}"] if i == 0 else []))
    return nodes


def bench_branchy(n, work):
    nodes = branchy_graph(n)
    table = lambda rid: f"bench_{rid}"  # noqa: E731
    up = lambda rid: f"CREATE TABLE {table(rid)} (id bigint CONSTRAINT {table(rid)}_pkey PRIMARY KEY, payload text);"  # noqa: E731
    directory = work / f"branchy{n}"
    directory.mkdir()
    for rid, parents, labels in nodes:
        label_line = f"-- Branch Labels: {', '.join(labels)}\n" if labels else ""
        (directory / f"{rid}.sql").write_text(
            f"-- create {table(rid)}\n--\n-- Revision ID: {rid}\n-- Revises: {', '.join(parents)}\n{label_line}\n"
            f"-- migrate:upgrade\n{up(rid)}\n\n-- migrate:downgrade\nDROP TABLE {table(rid)};\n")
    script = work / f"branchy{n}.sql"
    script.write_text("\n".join(up(rid) for rid, _, _ in nodes) + "\n")

    project = work / f"alembic_branchy{n}"
    alembic_project(project, 0, "bench_alembic")
    for rid, parents, labels in nodes:
        down = "None" if not parents else repr(parents[0]) if len(parents) == 1 else repr(tuple(parents))
        (project / "versions" / f"{rid}.py").write_text(
            f"from alembic import op\nrevision = {rid!r}\ndown_revision = {down}\n"
            f"branch_labels = {tuple(labels) if labels else None!r}\ndepends_on = None\n"
            f"def upgrade():\n    op.execute({up(rid)!r})\n"
            f"def downgrade():\n    op.execute('DROP TABLE {table(rid)}')\n")

    runs = {key: [] for key in ("floor_up", "floor_commit", "pgm_up", "pgm_plan", "history", "current", "heads",
                                "al_up", "al_history", "al_heads", "al_current")}
    for _ in range(REPEAT):
        fresh_db("bench_floor", extension=False)
        runs["floor_up"].append(psql_file("bench_floor", script))
        fresh_db("bench_floor", extension=False)
        runs["floor_commit"].append(psql_autocommit("bench_floor", script))

        fresh_db("bench_pgm")
        with psycopg.connect(dsn("bench_pgm"), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM migrate_load_dir(%s)", (str(directory),))
        runs["pgm_up"].append(psql_command("bench_pgm", "SELECT count(*) FROM migrate_upgrade('heads')"))
        with psycopg.connect(dsn("bench_pgm"), autocommit=True) as conn:
            for key, f in (("history", "migrate_history"), ("current", "migrate_current"), ("heads", "migrate_heads")):
                runs[key].append(median_ms(conn, f"SELECT * FROM {f}()") / 1000)
            heads = conn.execute("SELECT count(*) FROM migrate_current()").fetchone()[0]
        fresh_db("bench_pgm")
        with psycopg.connect(dsn("bench_pgm"), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM migrate_load_dir(%s)", (str(directory),))
        runs["pgm_plan"].append(psql_stdin("bench_pgm", "SELECT * FROM migrate_plan('heads') \\gexec\n"))

        fresh_db("bench_alembic", extension=False)
        runs["al_up"].append(alembic(project, "upgrade", "heads"))
        runs["al_current"].append(alembic(project, "current"))
        runs["al_heads"].append(alembic(project, "heads"))
        runs["al_history"].append(alembic(project, "history"))
    m = {key: statistics.median(values) for key, values in runs.items()}
    m["n"], m["heads_applied"] = len(nodes), heads
    return m


def print_branchy(m):
    print(f"\nBranchy graph: {m['n']} revisions in {BRANCHES} labelled lines, cross-merged every "
          f"{MERGE_EVERY} revisions, {m['heads_applied']} applied heads (median of {REPEAT})")
    print(f"{'operation':<30} | {'pg_migrate':>10} | {'raw':>10} | {'ratio':>6} | {'Alembic':>10} | {'Alembic/pgm':>11}")
    for op, pgm, raw, al in (("upgrade heads, one transaction", m["pgm_up"], m["floor_up"], m["al_up"]),
                             ("upgrade heads, psql plan", m["pgm_plan"], m["floor_commit"], m["al_up"]),
                             ("history", m["history"], None, m["al_history"]),
                             ("current", m["current"], None, m["al_current"]),
                             ("heads", m["heads"], None, m["al_heads"])):
        shown = lambda v: f"{'-':>10}" if v is None else (f"{v * 1000:>7.1f} ms" if v < 1 else f"{v:>8.2f} s")  # noqa: E731
        ratio = f"{pgm / raw:>5.2f}x" if raw else f"{'-':>6}"
        print(f"{op:<30} | {shown(pgm)} | {shown(raw)} | {ratio} | {shown(al)} | {al / pgm:>10.1f}x")


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
                                "load_local", "load_local_script", "load_dir", "rss_load", "rss_plan")}
    reads = {}
    for _ in range(REPEAT):
        # Floor: the same SQL in one psql transaction.
        fresh_db("bench_floor", extension=False)
        runs["floor_up"].append(psql_file("bench_floor", up_script))
        runs["floor_down"].append(psql_file("bench_floor", down_script))

        # pg_migrate, in psql, as a DBA would run it.
        fresh_db("bench_pgm")
        with psycopg.connect(dsn("bench_pgm"), autocommit=True) as conn:
            start = time.perf_counter()
            conn.execute("SELECT count(*) FROM migrate_load_dir(%s)", (str(chain),))
            runs["load_dir"].append(time.perf_counter() - start)
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
        elapsed, rss = psql_stdin_memory("bench_pgm", loader)
        runs["load_local"].append(runs["load_local_script"][-1] + elapsed)
        runs["rss_load"].append(rss)
        elapsed, rss = psql_stdin_memory("bench_pgm", "SELECT * FROM migrate_plan('head') \\gexec\n")
        runs["pgm_plan"].append(elapsed)
        runs["rss_plan"].append(rss)
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


def summary(results):
    """One table for every operation: pg_migrate, its floor (raw psql) and Alembic."""
    def rows(r):
        m, reads = r["m"], r["reads"]
        ms = lambda name: reads.get(name, 0.0) / 1000  # noqa: E731 (seconds, like the rest)
        return [
            ("upgrade, one transaction", m["pgm_up"], m["floor_up"], m["al_up"]),
            ("upgrade, psql plan", m["pgm_plan"], m["floor_commit"], m["al_up"]),
            ("downgrade, one transaction", m["pgm_down"], m["floor_down"], m["al_down"]),
            ("downgrade, psql plan", m["pgm_plan_down"], m["floor_commit_down"], m["al_down"]),
            ("load, migrate_load_dir", m["load_dir"], m["floor_up"], None),
            ("load, migrate_load per file", m["load_local"], m["floor_up"], None),
            ("migrate-load-local alone", m["load_local_script"], None, None),
            ("offline script, made", m["pgm_sql_make"], None, m["al_sql"]),
            ("offline script, run by psql", m["pgm_sql_run"], m["floor_up"], None),
            ("current", ms("migrate_current"), None, m["al_current"]),
            ("history", ms("migrate_history"), None, m["al_history"]),
            ("heads", ms("migrate_heads"), None, m["al_heads"]),
        ]

    def cell(value, width=9):
        if value is None:
            return f"{'-':>{width}}"
        return f"{value * 1000:>{width - 3}.1f} ms" if value < 1 else f"{value:>{width - 2}.2f} s"

    print(f"\nSummary: pg_migrate / raw psql / Alembic 1.20 (median of {REPEAT}; raw = psql -1 for one "
          "transaction and loading, psql committing each statement for the plans; reads in session, "
          "Alembic's as commands)")
    print(f"{'operation':<30} | {'N':>5} | {'pg_migrate':>10} | {'raw':>10} | {'ratio':>6} | {'Alembic':>10} | "
          f"{'Alembic/pgm':>11} | {'growth':>6}")
    first = rows(results[0])
    for r in results:
        for (op, pgm, raw, al), (_, pgm0, _, _) in zip(rows(r), first):
            ratio = f"{pgm / raw:>5.2f}x" if raw else f"{'-':>6}"
            versus = f"{al / pgm:>10.1f}x" if al and pgm else f"{'-':>11}"
            growth = f"x{pgm / pgm0:>5.1f}" if r is not results[0] and pgm0 else f"{'':>6}"
            print(f"{op:<30} | {r['n']:>5} | {cell(pgm, 10)} | {cell(raw, 10)} | {ratio} | {cell(al, 10)} | "
                  f"{versus} | {growth}")
    print("\nBackend private memory (RssAnon) at the end of the session")
    for r in results:
        m = r["m"]
        print(f"{r['n']:>9} revisions: after loading file by file {m['rss_load'] / 1024:.1f} MiB, "
              f"after the psql plan {m['rss_plan'] / 1024:.1f} MiB")


def main():
    work = Path(tempfile.mkdtemp(prefix="pgm_bench_"))
    os.chmod(work, 0o755)  # the server reads the chain directory
    try:
        results = [bench(n, work) for n in SIZES]
        branchy = bench_branchy(BRANCHY, work) if BRANCHY else None
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
    summary(results)
    if branchy:
        print_branchy(branchy)


if __name__ == "__main__":
    main()
