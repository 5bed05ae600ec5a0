#!/usr/bin/env bash
# Run every check of the workspace: formatting, clippy, build, and all tests (unit + end-to-end
# against a real PostgreSQL, PgBouncer and moto_server).
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt:   postgresql (server), postgresql-client (psql, pgbench), pgbouncer
#   pip:   moto[server] (moto_server, the Secrets Manager emulator)
#   cargo: rustfmt, clippy (rustup components)
# When everything is already there it installs nothing and goes straight to the checks.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
finish() {
    local rc=$?
    local elapsed=$(($(date +%s) - started))
    if [ "$rc" -eq 0 ]; then
        echo "test.sh: all checks passed in ${elapsed}s"
    else
        echo "test.sh: FAILED (exit $rc) after ${elapsed}s" >&2
    fi
}
trap finish EXIT

SCRIPT_NAME=test.sh
# shellcheck source=scripts/common.sh
source scripts/common.sh

# Also look where pip puts programs that are not always on PATH.
export PATH="$PATH:$HOME/.local/bin"

have_pip() { have python3 && python3 -m pip --version >/dev/null 2>&1; }

# ---- apt ---------------------------------------------------------------------------------------
# The tests start their own clusters and PgBouncers on free ports; install_missing also stops the
# services Debian starts on install, so nothing lingers on pgwarm's default port.
apt_wants=(postgresql postgresql-client pgbouncer)
if ! have moto_server && ! have_pip; then
    apt_wants+=(python3-pip)
fi
install_missing "${apt_wants[@]}"

# ---- pip ---------------------------------------------------------------------------------------
if ! have moto_server; then
    say "installing moto[server] (pip)"
    if ! out=$(python3 -m pip install --quiet 'moto[server]' 2>&1); then
        if grep -q externally-managed <<<"$out"; then
            python3 -m pip install --quiet --break-system-packages 'moto[server]'
        else
            echo "$out" >&2
            die "pip install 'moto[server]' failed"
        fi
    fi
    hash -r
    have moto_server || die "moto_server is still not on PATH after pip install"
fi

# ---- cargo -------------------------------------------------------------------------------------
have cargo || die "cargo not found: install Rust (https://rustup.rs)"
if ! cargo fmt --version >/dev/null 2>&1; then
    say "installing rustfmt (rustup)"
    rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
    say "installing clippy (rustup)"
    rustup component add clippy
fi

# ---- checks ------------------------------------------------------------------------------------
step() {
    echo "==> $*"
    "$@"
}
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
# Also builds target/debug/pgwarm, the binary the end-to-end tests spawn.
step cargo build --workspace --all-targets
# --no-fail-fast: report every failing test binary, not only the first (still exits non-zero).
# cargo prints one summary per test binary, the last often a doc-test run with 0 tests; the
# closing line sums them all so the total is what a reader (or CI) sees last.
test_log=$(mktemp)
rc=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log" || rc=$?
totals=$(awk '/^test result: / { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } } END { printf "%d passed, %d failed", p, f }' "$test_log")
rm -f "$test_log"
echo "tests: $totals"
[ "$rc" -eq 0 ] || die "cargo test failed (exit $rc)"
