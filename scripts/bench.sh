#!/usr/bin/env bash
# make bench: side-by-side ratios in one run, on a scratch cluster with a
# release build. Prints figures; asserts nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PORT=${BENCH_PORT:-54332}

echo "==> release build of the extension, into its own tree (target/pg/bench)"
# Its own installation: the figures are a user's (release), and a debug build
# that tests install into the system's PostgreSQL meanwhile cannot replace the
# library under a running benchmark.
PGTREE_PROFILE=release scripts/pgtree.sh install bench
PG_BIN=$(scripts/pgtree.sh bindir bench)
export PG_BIN
scripts/venv.sh "alembic==1.20.1" "SQLAlchemy==2.1.9" "Mako==1.4.3" "psycopg2-binary==2.9.13"

# 5,000 DROPs in one transaction need more lock slots than the default 64 per
# connection; both sides of every ratio run with the same setting.
scripts/cluster.sh start bench "$PORT" max_locks_per_transaction=1024 shared_buffers=512MB
trap 'scripts/cluster.sh stop bench' EXIT
# BENCH=revisions, load, autogen, backfill, guard or squawk runs one part only.
case "${BENCH:-all}" in all|revisions) BENCH_PORT=$PORT .venv/bin/python bench/bench_revisions.py ;; esac
case "${BENCH:-all}" in all|load) BENCH_PORT=$PORT .venv/bin/python bench/bench_load.py ;; esac
case "${BENCH:-all}" in all|autogen) BENCH_PORT=$PORT .venv/bin/python bench/bench_autogen.py ;; esac
case "${BENCH:-all}" in all|backfill) BENCH_PORT=$PORT .venv/bin/python bench/bench_backfill.py ;; esac
case "${BENCH:-all}" in
all|guard)
    # A second cluster whose processes run under callgrind: instruction counts
    # for the DDL overhead, repeatable where CPU time on a shared VM is not.
    cg_port=$((PORT + 7))
    if command -v valgrind >/dev/null; then
        scripts/cluster.sh callgrind bench-callgrind "$cg_port" autovacuum=off
        trap 'scripts/cluster.sh stop bench-callgrind; scripts/cluster.sh stop bench' EXIT
        export CALLGRIND_PORT=$cg_port CALLGRIND_OUT="$ROOT/target/clusters/bench-callgrind/callgrind"
    fi
    BENCH_PORT=$PORT .venv/bin/python bench/bench_guard.py
    [ -z "${CALLGRIND_PORT:-}" ] || scripts/cluster.sh stop bench-callgrind ;;
esac
case "${BENCH:-}" in
drift)
    cg_port=$((PORT + 7))
    scripts/cluster.sh callgrind bench-callgrind "$cg_port" autovacuum=off
    trap 'scripts/cluster.sh stop bench-callgrind; scripts/cluster.sh stop bench' EXIT
    CALLGRIND_PORT=$cg_port CALLGRIND_OUT="$ROOT/target/clusters/bench-callgrind/callgrind" BENCH_PORT=$cg_port \
        .venv/bin/python bench/bench_drift.py
    scripts/cluster.sh stop bench-callgrind ;;
esac
case "${BENCH:-all}" in
all|squawk)
    [ -x node_modules/.bin/squawk ] || npm install --no-audit --no-fund --silent squawk-cli@2.66.0 >/dev/null
    BENCH_PORT=$PORT SQUAWK=node_modules/.bin/squawk .venv/bin/python bench/compare_squawk.py ;;
esac
