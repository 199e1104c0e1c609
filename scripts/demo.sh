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

run -e <<'SQL'
CREATE EXTENSION pg_migrate;

-- Register the example migrations (the server reads the directory).
SELECT * FROM migrate_load_dir(:'migrations');

-- Apply the first revisions in one transaction.
SELECT * FROM migrate_upgrade('2e8f7a4b1c63');
SQL

echo
echo "-- The rest includes revisions marked 'Transactional: false', which migrate_upgrade() refuses:"
run -e -c "SELECT * FROM migrate_upgrade('head');" 2>&1 || true

run -e <<'SQL'

-- So run the plan: psql executes each statement at top level.
SELECT * FROM migrate_plan('head') \gexec

SELECT revision, parents, message, branch_labels, is_head, is_current, applied_at::timestamp(0) FROM migrate_history();
SELECT * FROM migrate_current();
SELECT * FROM migrate_verify();
SQL

cat <<INFO

The demo cluster is running on 127.0.0.1:$PORT (database "app", user postgres).
  make psql     connect to it (or: psql -h 127.0.0.1 -p $PORT -U postgres app)
  make stop     stop it
INFO
