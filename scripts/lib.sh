# shellcheck shell=bash
# Helpers shared by the scripts in this folder. Source it; it defines functions only.

# The repository root (this file lives in <root>/scripts).
repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

log() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

is_root() {
    [ "$(id -u)" -eq 0 ]
}

# The folder holding the PostgreSQL server binaries (initdb, postgres, pg_ctl), or nothing.
# Order: $PG_BINDIR, `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, then PATH: the
# order test_support's clusters search in. For scripts/ensure-tools, which runs before anything
# is built.
pg_bindir() {
    local candidates=() dir
    if [ -n "${PG_BINDIR:-}" ]; then
        candidates+=("$PG_BINDIR")
    fi
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        [ -n "$dir" ] && candidates+=("$dir")
    fi
    while IFS= read -r dir; do
        candidates+=("$dir")
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -rV)
    if command -v initdb >/dev/null 2>&1; then
        candidates+=("$(dirname "$(command -v initdb)")")
    fi
    for dir in "${candidates[@]}"; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/pg_ctl" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

# Builds (when needed) and runs one of the PostgreSQL tools of tests/support (`pg-up`, `pg-down`):
# pg_tool <name> <args…>. Quiet: stdout is the tool's own. Built without the crate's default
# features, which only the tests need (the AWS SDK for moto).
pg_tool() {
    local name=$1
    shift
    cargo run --quiet --manifest-path "$(repo_root)/Cargo.toml" -p test-support \
        --no-default-features --bin "$name" -- "$@"
}

# A TCP port on 127.0.0.1 that nobody listens on right now (test_support::net::free_port in Rust;
# this one is for shell scripts that need a port without building anything).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
