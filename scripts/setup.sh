#!/usr/bin/env bash
# Installs whatever is missing to build and test pg_migrate. Idempotent: a second
# run does nothing. Never downloads PostgreSQL: it uses Debian's PostgreSQL 15.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGRX_VERSION=0.18.1
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

say() { printf '==> %s\n' "$*"; }

# Debian packages: headers to build against, clang for bindgen, sudo to run
# PostgreSQL as user postgres (it refuses to run as root).
missing=()
for pkg in postgresql-15 postgresql-server-dev-15 sudo libclang-dev clang; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    say "installing cargo-pgrx $PGRX_VERSION (about 4 minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

if ! grep -qs "^pg15 = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    say "registering PostgreSQL 15 with pgrx"
    cargo pgrx init --pg15 "$PG_CONFIG"
fi
