#!/usr/bin/env bash
# make test: the pure unit tests and #[pg_test] tests through cargo-pgrx, then
# the end-to-end tests (psql plans, CONCURRENTLY, concurrent sessions, killed
# backends) against a fresh scratch cluster.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
TEST_PORT=${TEST_PORT:-54331}
SUDO_FLAG=""
[ "$(id -u)" -eq 0 ] || SUDO_FLAG=--sudo

say() { printf '\n==> %s\n' "$*"; }

say "lint: pg_migrate's own SQL is immune to the caller's search_path"
python3 scripts/lint-sql.py

say "unit and #[pg_test] tests (cargo pgrx test)"
pgdata="$ROOT/target/pgrx-test-data"
# cargo pgrx test installs into the system's PostgreSQL and always uses port
# 32215: two checkouts testing at once must take turns.
lock=/tmp/pg_migrate-pgrx-test.lock
rm -rf "$pgdata"
if [ "$(id -u)" -eq 0 ]; then
    install -d -o postgres "$pgdata"
    flock "$lock" cargo pgrx test pg15 --runas postgres --pgdata "$pgdata"
else
    flock "$lock" cargo pgrx test pg15
fi

say "installing the extension for the end-to-end tests (target/pg/test)"
# A private installation: a demo cluster running from target/pg/demo, or a
# server running from the system's, keeps the library it has mapped.
scripts/pgtree.sh install test
export PG_BIN
PG_BIN=$(scripts/pgtree.sh bindir test)

say "the released 0.1.0, built from its commit, for the upgrade test (cached in target/)"
scripts/pgtree.sh release 0.1.0 >/dev/null

say "end-to-end tests on a scratch cluster (port $TEST_PORT)"
# Alembic for the converter test (tests/e2e/test_from_alembic.py), pinned with what it pulls in.
scripts/venv.sh "alembic==1.20.1" "SQLAlchemy==2.1.9" "Mako==1.4.3" "psycopg2-binary==2.9.13"
scripts/cluster.sh start test "$TEST_PORT"
trap 'scripts/cluster.sh stop test' EXIT
PGM_TEST_PORT=$TEST_PORT PGM_ROOT=$ROOT .venv/bin/python -m pytest -q tests/e2e
