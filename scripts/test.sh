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

say() { echo "test.sh: $*"; }
die() {
    echo "test.sh: $*" >&2
    exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install system packages"
    SUDO=(sudo)
fi

# Also look where Debian and pip put programs that are not always on PATH.
export PATH="$PATH:/usr/sbin:/sbin:$HOME/.local/bin"

have() { command -v "$1" >/dev/null 2>&1; }

have_pg_server() {
    local bindir
    if have pg_config; then
        bindir=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$bindir" ] && [ -x "$bindir/initdb" ]; then
            return 0
        fi
    fi
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

have_pip() { have python3 && python3 -m pip --version >/dev/null 2>&1; }

# ---- apt ---------------------------------------------------------------------------------------
apt_pkgs=()
have_pg_server || apt_pkgs+=(postgresql)
{ have psql && have pgbench; } || apt_pkgs+=(postgresql-client)
have pgbouncer || apt_pkgs+=(pgbouncer)
if ! have moto_server && ! have_pip; then
    apt_pkgs+=(python3-pip)
fi

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    have apt-get || die "missing ${apt_pkgs[*]} and no apt-get: install them by hand"
    say "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    for pkg in "${apt_pkgs[@]}"; do
        say "installing $pkg (apt)"
    done
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${apt_pkgs[@]}" >/dev/null
    # Debian starts a cluster on 5432 and PgBouncer on 6432 right after installing them. The
    # tests use their own clusters on free ports, but nothing of the system's may linger on
    # pgwarm's default port: stop what we just installed (failures are fine: not running).
    for pkg in "${apt_pkgs[@]}"; do
        case "$pkg" in
            postgresql)
                if have pg_lsclusters; then
                    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
                        "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
                    done
                fi
                "${SUDO[@]}" service postgresql stop >/dev/null 2>&1 || true
                ;;
            pgbouncer)
                "${SUDO[@]}" service pgbouncer stop >/dev/null 2>&1 || true
                ;;
        esac
    done
fi

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
