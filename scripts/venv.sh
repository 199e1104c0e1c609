#!/usr/bin/env bash
# A local Python venv for the end-to-end tests and benchmarks (from PyPI).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
venv="$ROOT/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
wanted=("pytest==8.3.4" "psycopg[binary]==3.2.3" "$@")
if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "${wanted[@]}" >/dev/null 2>&1; then
    "$venv/bin/python" -m pip install --disable-pip-version-check "${wanted[@]}"
fi
