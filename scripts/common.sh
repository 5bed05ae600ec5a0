# shellcheck shell=bash
# Shared pieces of the scripts: install what is missing (apt, pip), build the workspace, find the
# binaries a benchmark runs, and a work folder removed on exit. What the scripts run (PostgreSQL,
# PgBouncer, HAProxy, moto_server, pgwarm, lambda-simulator) is started by the tests crate's
# harness, in its driver binaries (tests/src/bin: demo, bench, bench-connect, layer-run, ...):
# the scripts only install, build and call them.
#
# Sourcing this file only defines functions and variables. A script sets SCRIPT_NAME (used by
# say/die; defaults to the script's file name), sources this file, and installs its own traps:
#
#   SCRIPT_NAME=demo.sh
#   source "$(dirname "$0")/common.sh"
#   trap 'common_cleanup' EXIT
#
# Variables the functions set:
#   cargo_build_release TARGET_DIR, RELEASE_DIR (absolute), PGWARM_BIN (absolute); RELEASE_DIR
#                       also holds handler-example and the tests crate's driver binaries
#   bench_binary        PGWARM_BIN (absolute), BENCH_BIN_DIR (absolute: holds bench and
#                       bench-connect), TARGET_DIR
#   make_workdir        WORK
#   run_driver          DRIVER_RC

SCRIPT_NAME=${SCRIPT_NAME:-${0##*/}}

say() { echo "$SCRIPT_NAME: $*"; }
die() {
    echo "$SCRIPT_NAME: $*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# ---- cleanup registry --------------------------------------------------------------------------
# Folders to remove on exit: common_remove_on_exit registers one, common_cleanup removes them all.
COMMON_CLEANUP=()

common_remove_on_exit() { COMMON_CLEANUP+=("$1"); }

# Removes every registered folder. A throwaway cluster of the tests' harness may live in one
# (TMPDIR pointed there): its reaper stops PostgreSQL once the driver has exited, so wait up to
# 10 s for the processes that run from the folder to be gone first. Never fails: it runs from an
# EXIT trap.
common_cleanup() {
    local dir _
    for dir in "${COMMON_CLEANUP[@]}"; do
        for _ in $(seq 100); do
            pgrep -f -- "$dir/" >/dev/null || break
            sleep 0.1
        done
        [ -d "$dir" ] && rm -rf -- "$dir"
    done
    COMMON_CLEANUP=()
    return 0
}

# run_driver COMMAND...: runs one of the tests crate's driver binaries with this script's stdin
# and sets DRIVER_RC to its exit status. INT and TERM reach it as TERM (it then ends everything
# it started and exits), and this script waits for it to finish before going on, so its EXIT
# trap runs after the driver's own cleanup.
run_driver() {
    local pid
    # A background command would get /dev/null as its stdin: hand it ours (demo --keep reads it).
    exec 3<&0
    "$@" <&3 3<&- &
    pid=$!
    exec 3<&-
    # shellcheck disable=SC2064 # the pid is meant to be expanded now
    trap "kill -TERM $pid 2>/dev/null || true" INT TERM
    while :; do
        # A trapped signal ends the wait early (status > 128): wait again for the driver's own.
        # shellcheck disable=SC2034 # DRIVER_RC is for the script that calls run_driver
        wait "$pid" && DRIVER_RC=0 || DRIVER_RC=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    trap - INT TERM
}

# ---- tools -------------------------------------------------------------------------------------
# Directory holding initdb, pg_ctl and postgres: `pg_config --bindir`, else the newest
# /usr/lib/postgresql/*/bin.
pg_bindir() {
    local dir
    if have pg_config; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    fi
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [ -x "$dir/initdb" ]; then
        echo "$dir"
        return 0
    fi
    return 1
}

# Installs with apt whichever of the given Debian packages is missing, one line per install, then
# checks that their programs are there. Packages: postgresql (server: initdb, pg_ctl),
# postgresql-client (psql, pgbench), pgbouncer, haproxy, python3-pip, nodejs (with npm).
install_missing() {
    local want pkg sudo=() apt_pkgs=()
    # Also look where Debian puts programs that are not always on PATH (pgbouncer is in /usr/sbin).
    case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
    case ":$PATH:" in *:/sbin:*) ;; *) PATH="$PATH:/sbin" ;; esac
    export PATH
    if ! is_root && have sudo; then
        sudo=(sudo)
    fi

    for want in "$@"; do
        case "$want" in
            postgresql) pg_bindir >/dev/null || apt_pkgs+=(postgresql) ;;
            postgresql-client) { have psql && have pgbench; } || apt_pkgs+=(postgresql-client) ;;
            pgbouncer) have pgbouncer || apt_pkgs+=(pgbouncer) ;;
            haproxy) have haproxy || apt_pkgs+=(haproxy) ;;
            python3-pip) { have python3 && python3 -m pip --version >/dev/null 2>&1; } || apt_pkgs+=(python3-pip) ;;
            # Node.js and npm (bench-lambda.sh's node-postgres handler).
            nodejs) { have node && have npm; } || apt_pkgs+=(nodejs npm) ;;
            # pgJDBC (the jar) and a JDK to compile and run the JDBC test.
            pgjdbc)
                [ -f /usr/share/java/postgresql.jar ] || apt_pkgs+=(libpostgresql-jdbc-java)
                { have javac && have java; } || apt_pkgs+=(default-jdk-headless)
                ;;
            *) die "install_missing: unknown package '$want'" ;;
        esac
    done

    if [ "${#apt_pkgs[@]}" -gt 0 ]; then
        have apt-get || die "missing ${apt_pkgs[*]} and no apt-get: install them by hand"
        if ! is_root && [ "${#sudo[@]}" -eq 0 ]; then
            die "missing ${apt_pkgs[*]}; not root and no sudo: install them by hand"
        fi
        say "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        for pkg in "${apt_pkgs[@]}"; do
            say "installing $pkg (apt)"
        done
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${apt_pkgs[@]}" >/dev/null
        # Debian starts a cluster on 5432 and PgBouncer on 6432 right after installing them. The
        # scripts use their own servers on free ports: stop what the install just started
        # (failures are fine: not running).
        for pkg in "${apt_pkgs[@]}"; do
            case "$pkg" in
                postgresql)
                    if have pg_lsclusters; then
                        pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
                            "${sudo[@]}" pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
                        done
                    fi
                    "${sudo[@]}" service postgresql stop >/dev/null 2>&1 || true
                    ;;
                pgbouncer | haproxy)
                    "${sudo[@]}" service "$pkg" stop >/dev/null 2>&1 || true
                    ;;
            esac
        done
        hash -r
    fi

    for want in "$@"; do
        case "$want" in
            postgresql)
                pg_bindir >/dev/null || die "no PostgreSQL server binaries (initdb): install the Debian package postgresql"
                ;;
            postgresql-client)
                have psql || die "psql not found after install"
                have pgbench || die "pgbench not found after install"
                ;;
            pgbouncer)
                have pgbouncer || die "pgbouncer not found after install"
                ;;
            haproxy)
                have haproxy || die "haproxy not found after install"
                ;;
            nodejs)
                { have node && have npm; } || die "node or npm not found after install"
                ;;
        esac
    done
    # initdb, postgres and PgBouncer refuse to run as root: the tests' harness runs them as
    # 'postgres' then.
    if is_root && [[ " $* " == *" postgresql "* ]]; then
        id postgres >/dev/null 2>&1 ||
            die "running as root but there is no 'postgres' user (initdb and PgBouncer refuse root): install the Debian package postgresql"
    fi
}

# ---- build -------------------------------------------------------------------------------------
# Builds the whole workspace in release; run from the workspace root.
cargo_build_release() {
    have cargo || die "cargo not found: install Rust (https://rustup.rs)"
    TARGET_DIR=${CARGO_TARGET_DIR:-target}
    # The whole workspace at once: building one package alone re-resolves features and rebuilds
    # dozens of crates.
    say "cargo build --release --workspace"
    cargo build --release --workspace
    [ -x "$TARGET_DIR/release/pgwarm" ] || die "$TARGET_DIR/release/pgwarm was not built"
    RELEASE_DIR=$(cd "$TARGET_DIR/release" && pwd)
    PGWARM_BIN="$RELEASE_DIR/pgwarm"
}

# bench_binary NAME...: the pgwarm a benchmark measures, and the directory of the tests crate's
# binaries NAME... (bench, bench-connect) that measure it. BENCH_PGWARM_BIN when set (the smoke
# runs of scripts/test.sh use the debug build they already have), measured by the debug harness
# binaries, which must be built already (cargo build --workspace); else a release build of the
# workspace, which holds both. Sets PGWARM_BIN, BENCH_BIN_DIR and TARGET_DIR.
bench_binary() {
    local name
    if [ -n "${BENCH_PGWARM_BIN:-}" ]; then
        [ -x "$BENCH_PGWARM_BIN" ] || die "BENCH_PGWARM_BIN: $BENCH_PGWARM_BIN is not an executable"
        PGWARM_BIN=$(cd "$(dirname "$BENCH_PGWARM_BIN")" && pwd)/$(basename "$BENCH_PGWARM_BIN")
        TARGET_DIR=${CARGO_TARGET_DIR:-target}
        [ -d "$TARGET_DIR/debug" ] || die "no $TARGET_DIR/debug: build the workspace first (cargo build --workspace)"
        BENCH_BIN_DIR=$(cd "$TARGET_DIR/debug" && pwd)
        say "measuring $PGWARM_BIN (BENCH_PGWARM_BIN), not a release build: figures for a smoke run only"
    else
        cargo_build_release
        BENCH_BIN_DIR=$RELEASE_DIR
    fi
    for name in "$@"; do
        [ -x "$BENCH_BIN_DIR/$name" ] || die "$BENCH_BIN_DIR/$name was not built (cargo build --workspace)"
    done
}

# ---- work folder -------------------------------------------------------------------------------
# make_workdir PREFIX: a fresh temp dir in WORK, removed on cleanup. The `postgres` user must be
# able to reach it when we are root (the harness's cluster lives there when TMPDIR points at it).
make_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    common_remove_on_exit "$WORK"
    chmod 755 "$WORK"
    if is_root; then chown postgres: "$WORK"; fi
}

# ---- pip ---------------------------------------------------------------------------------------
# pip_install_missing COMMAND SPEC: installs the PyPI package SPEC (pip, --user when not root) if
# COMMAND is not on PATH, and says so. Needs python3 with pip (install_missing python3-pip).
pip_install_missing() {
    local command=$1 spec=$2
    have "$command" && return 0
    pip_install "$spec"
    hash -r
    have "$command" || die "$command is still not on PATH after pip install '$spec'"
}

# pip_install_module MODULE SPEC: installs the PyPI package SPEC if python3 cannot import MODULE.
pip_install_module() {
    local module=$1 spec=$2
    python3 -c "import $module" >/dev/null 2>&1 && return 0
    pip_install "$spec"
    python3 -c "import $module" || die "python3 still cannot import $module after pip install '$spec'"
}

# pip_install SPEC: says so, then installs the PyPI package SPEC (pip; past a Debian
# "externally managed" refusal).
pip_install() {
    local spec=$1 out
    say "installing $spec (pip)"
    export PATH="$PATH:$HOME/.local/bin"
    if ! out=$(python3 -m pip install --quiet "$spec" 2>&1); then
        if grep -q externally-managed <<<"$out"; then
            python3 -m pip install --quiet --break-system-packages "$spec"
        else
            echo "$out" >&2
            die "pip install '$spec' failed"
        fi
    fi
}
