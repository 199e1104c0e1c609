#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL 15 cluster under target/clusters/demo with
# the example migrations loaded and applied. The cluster keeps running.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PORT=${DEMO_PORT:-54330}

# Its own installation: make test reinstalls the extension into its own tree,
# never into the one this cluster has mapped.
scripts/pgtree.sh install demo
export PG_BIN
PG_BIN=$(scripts/pgtree.sh bindir demo)
# Preloaded: TRUNCATE and REINDEX are only guarded live with the preload.
scripts/cluster.sh start demo "$PORT" shared_preload_libraries=pg_migrate
unset PG_BIN
scripts/cluster.sh psql demo -q -d postgres -c "CREATE DATABASE app" >/dev/null

run() { scripts/cluster.sh psql demo -X -d app -v ON_ERROR_STOP=1 -v migrations="$ROOT/migrations" "$@"; }

# The same set-up the README walkthrough test starts from.
run -e -f "$ROOT/scripts/demo-setup.sql"

run <<'SQL'
SELECT revision, parents, message, branch_labels, is_head, is_current FROM migrate_history();
SELECT * FROM migrate_verify();
SQL

cat <<INFO

The demo cluster is running on 127.0.0.1:$PORT (database "app", user postgres),
with shared_preload_libraries = 'pg_migrate', from its own installation in target/pg/demo.
Try the README's walkthrough ("A walk through psql"): it starts from this state.
  make psql     connect to it (or: psql -h 127.0.0.1 -p $PORT -U postgres app)
  make stop     stop it
INFO
