"""make bench, drift: what drift capture adds to the guard, in backend
instructions counted by callgrind (BENCH=drift needs valgrind), on the guard
bench's mixed DDL (BENCH_GUARD_ROUNDS x 5 statements): without the extension,
with the extension but its three drift event triggers disabled (the guard
alone), and with both. Nothing here asserts a time."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psycopg
import bench_guard as bg
from benchdb import dsn, fresh_db

port, out = int(os.environ["CALLGRIND_PORT"]), os.environ["CALLGRIND_OUT"]
statements = bg.ddl_statements()

def count(db, extension, drift_on):
    fresh_db(db, extension, port)
    if extension and not drift_on:
        with psycopg.connect(dsn(db, port), autocommit=True) as c:
            for t in ("migrate_drift_start", "migrate_drift_drop", "migrate_drift_end"):
                c.execute(f"ALTER EVENT TRIGGER {t} DISABLE")
    counts = []
    for work in (statements, []):
        with psycopg.connect(dsn(db, port), autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            for s in work:
                conn.execute(s)
        counts.append(bg.callgrind_instructions(out, pid))
    if extension and drift_on:
        with psycopg.connect(dsn(db, port), autocommit=True) as c:
            print("  drift rows written:", c.execute("SELECT count(*) FROM migrate.drift").fetchone()[0])
    return counts[0] - counts[1]

plain = count("b_off", False, False)
guard = count("b_guard", True, False)
full = count("b_full", True, True)
n = len(statements)
print(f"{n:,} mixed DDL, backend instructions (callgrind):")
print(f"  without extension      {plain/1e9:.3f} G")
print(f"  guard, drift disabled  {guard/1e9:.3f} G  overhead {100*(guard/plain-1):+.1f}%  ({(guard-plain)/n:,.0f}/stmt)")
print(f"  guard + drift capture  {full/1e9:.3f} G  overhead {100*(full/plain-1):+.1f}%  ({(full-plain)/n:,.0f}/stmt)")
print(f"  drift capture alone    {100*(full/guard-1):+.1f}% over the guard  ({(full-guard)/n:,.0f}/stmt)")
