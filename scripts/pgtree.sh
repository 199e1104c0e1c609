#!/usr/bin/env bash
# Private PostgreSQL 15 installations under target/pg/NAME: a copy of Debian's
# server tree (PostgreSQL finds its share and lib directories relative to its own
# binary) with pg_migrate installed into it. The demo, the tests and the 0.1.0
# build each run from their own tree, so reinstalling the extension for the tests
# never replaces a shared library that a running demo cluster has mapped.
#
#   pgtree.sh bindir NAME          the tree's bin directory (made if missing)
#   pgtree.sh install NAME [SRC]   build pg_migrate from SRC (default: this
#                                  checkout) and install it, with every script
#                                  in SRC/sql, into the tree (a debug build;
#                                  PGTREE_PROFILE=release for a release one)
#   pgtree.sh release VERSION      a tree with a released version, built from its
#                                  commit in this repository's history (cached)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SYS_BIN=$("$PG_CONFIG" --bindir)
SYS_SHARE=$("$PG_CONFIG" --sharedir)
SYS_PKGLIB=$("$PG_CONFIG" --pkglibdir)
cmd=${1:?usage: pgtree.sh bindir|install|release NAME}
name=${2:?tree name}

# The commit each released version was built from (its tag is v<version>).
declare -A RELEASES=([0.1.0]=85261c1c24ab900ca59012ecd6b2669b1f26896c)

tree_of() { echo "$ROOT/target/pg/$1"; }

make_tree() {
    local tree=$1
    [ -x "$tree$SYS_BIN/postgres" ] && return 0
    rm -rf "$tree.tmp"
    # Both directories sit under the same prefix as on the system, so the
    # relative path from bin to share and lib is the same as Debian's.
    mkdir -p "$tree.tmp$(dirname "$SYS_BIN")" "$tree.tmp$(dirname "$SYS_SHARE")"
    cp -a "$(dirname "$SYS_BIN")/." "$tree.tmp$(dirname "$SYS_BIN")/"
    cp -a "$SYS_SHARE" "$tree.tmp$(dirname "$SYS_SHARE")/"
    # Nothing of a system-wide pg_migrate install comes along.
    rm -f "$tree.tmp$SYS_PKGLIB"/pg_migrate*.so "$tree.tmp$SYS_SHARE"/extension/pg_migrate*
    mv "$tree.tmp" "$tree"
    if [ "$(id -u)" -eq 0 ]; then chmod -R go+rX "$tree"; fi
}

install_into() {
    local tree=$1 src=$2
    make_tree "$tree"
    # cargo pgrx package writes the library, control file and generated script
    # below --out-dir with the system's layout: exactly the tree's.
    local profile=--debug
    [ "${PGTREE_PROFILE:-debug}" = release ] && profile=
    # shellcheck disable=SC2086 # empty for a release build
    (cd "$src" && cargo pgrx package $profile --pg-config "$PG_CONFIG" --out-dir "$tree" >/dev/null)
    # pgrx copies the upgrade scripts (a--x--y.sql) but not frozen install
    # scripts of earlier versions (a--x.sql): copy every script in sql/.
    if [ -d "$src/sql" ]; then
        for script in "$src"/sql/pg_migrate--*.sql; do
            [ -e "$script" ] || continue
            install -m 644 "$script" "$tree$SYS_SHARE/extension/$(basename "$script").tmp"
            mv -f "$tree$SYS_SHARE/extension/$(basename "$script").tmp" "$tree$SYS_SHARE/extension/$(basename "$script")"
        done
    fi
    if [ "$(id -u)" -eq 0 ]; then chmod -R go+rX "$tree"; fi
}

case "$cmd" in
bindir)
    make_tree "$(tree_of "$name")"
    echo "$(tree_of "$name")$SYS_BIN"
    ;;
install)
    install_into "$(tree_of "$name")" "${3:-$ROOT}"
    ;;
release)
    version=$name
    commit=${RELEASES[$version]:?unknown release $version}
    tree=$(tree_of "v$version")
    stamp="$tree/.built-from"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$commit" ]; then
        echo "$tree$SYS_BIN"
        exit 0
    fi
    if ! git -C "$ROOT" cat-file -e "$commit^{commit}" 2>/dev/null; then
        echo "commit $commit of release $version is not in this clone's history (a shallow clone?): git fetch --unshallow" >&2
        exit 1
    fi
    src="$ROOT/target/src/v$version"
    rm -rf "$src" "$tree"
    mkdir -p "$src"
    git -C "$ROOT" archive "$commit" | tar -x -C "$src"
    # Its own target directory: the old and new builds of the same crate must
    # not overwrite each other's artifacts.
    CARGO_TARGET_DIR="$ROOT/target/build-v$version" install_into "$tree" "$src" >&2
    echo "$commit" > "$stamp"
    echo "$tree$SYS_BIN"
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
