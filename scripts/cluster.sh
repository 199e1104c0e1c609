#!/usr/bin/env bash
# Throwaway PostgreSQL 15 clusters under target/clusters/NAME, on a loopback
# port, owned by user postgres when run as root (PostgreSQL refuses root).
#   cluster.sh start NAME PORT [postgres -c options...]   (fresh unless KEEP=1)
#   cluster.sh callgrind NAME PORT [options...]  (the same, every process under
#       valgrind's callgrind, one instruction count per process in NAME/callgrind/)
#   cluster.sh stop NAME
#   cluster.sh restart NAME        (immediate: like a crash, then start again)
#   cluster.sh standby NAME PRIMARY PORT   (pg_basebackup -R from cluster PRIMARY)
#   cluster.sh switch NAME         (stop, then start the same data directory
#       with the binaries in $PG_BIN: an installed package replaced, then a restart)
#   cluster.sh psql NAME [psql args...]
# PG_BIN chooses the installation a new cluster runs from (scripts/pgtree.sh
# makes private ones); the cluster remembers it for every later command.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: cluster.sh start|stop|psql NAME [PORT]}
name=${2:?cluster name}
dir="$ROOT/target/clusters/$name"
if [ -z "${PG_BIN:-}" ] && [ -f "$dir/bin" ] && [ "$cmd" != start ] && [ "$cmd" != callgrind ]; then
    BIN=$(cat "$dir/bin")
else
    BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then sudo -u postgres "$@"; else "$@"; fi
}

port_of() { cat "$dir/port"; }

case "$cmd" in
start|callgrind)
    port=${3:?port}
    shift 3
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        if ! sudo -u postgres test -w "$dir"; then
            echo "user postgres cannot write $dir: make the path to this checkout traversable (chmod o+x on its parents)" >&2
            exit 1
        fi
    fi
    echo "$port" > "$dir/port.tmp" && mv "$dir/port.tmp" "$dir/port"
    echo "$BIN" > "$dir/bin"
    as_owner "$BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    opts="-p $port -k $dir -c listen_addresses=127.0.0.1"
    for extra in "$@"; do opts="$opts -c $extra"; done
    echo "$opts" > "$dir/opts"
    if [ "$cmd" = start ]; then
        as_owner "$BIN/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w start >/dev/null \
            || { cat "$dir/server.log" >&2; exit 1; }
    else
        command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
        mkdir -p "$dir/callgrind"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/callgrind"
        # shellcheck disable=SC2086 # opts is a list of options
        as_owner nohup valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind/out.%p" \
            "$BIN/postgres" -D "$dir/data" $opts >"$dir/server.log" 2>&1 &
        for _ in $(seq 1 120); do
            "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
            sleep 1
        done
        "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" || { cat "$dir/server.log" >&2; exit 1; }
    fi
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
restart)
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate -w restart -l "$dir/server.log" >/dev/null
    ;;
switch)
    old=$(cat "$dir/bin")
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$old/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    echo "$BIN" > "$dir/bin"
    as_owner "$BIN/pg_ctl" -D "$dir/data" -o "$(cat "$dir/opts")" -l "$dir/server.log" -w start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    ;;
standby)
    primary="$ROOT/target/clusters/${3:?primary cluster}"
    port=${4:?port}
    [ -n "${PG_BIN:-}" ] || BIN=$(cat "$primary/bin")
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    echo "$port" > "$dir/port"
    echo "$BIN" > "$dir/bin"
    as_owner "$BIN/pg_basebackup" -h 127.0.0.1 -p "$(cat "$primary/port")" -U postgres -D "$dir/data" -R -X stream -c fast \
        >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
    as_owner "$BIN/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c hot_standby=on" \
        -l "$dir/server.log" -w start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    ;;
psql)
    shift 2
    exec psql -h 127.0.0.1 -p "$(port_of)" -U postgres "$@"
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
