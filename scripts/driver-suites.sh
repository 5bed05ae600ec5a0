#!/usr/bin/env bash
# Run asyncpg 0.32.0's own test suite against a real PostgreSQL three ways: directly, through
# pgwarm in session mode and through pgwarm in transaction mode, and list the tests that fail
# only through pgwarm, each with the first line of its error.
#
# What it does, one line printed per step:
#   - installs what is missing: apt postgresql (server), gcc and python3-dev (asyncpg's Cython
#     extensions are built from source); a venv in target/driver-suites/venv with asyncpg's
#     sdist (pip download asyncpg==0.32.0 --no-binary :all:, which holds tests/ and
#     asyncpg/_testbase) built in place (pip install -e) and `distro`, the one test dependency
#     the suite cannot skip without;
#   - builds pgwarm in release (cargo_build_release) unless DRIVER_SUITES_PGWARM_BIN names one;
#   - for each mode, a fresh throwaway cluster (initdb with SCRAM for everyone, 127.0.0.1 only,
#     a free port, no Unix socket, jit off), then for session and transaction pgwarm in front of
#     it, then the suite with PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE naming the server or
#     pgwarm: with PGHOST set, asyncpg's _testbase uses that server (RunningCluster) instead of
#     starting its own, and skips the tests marked "unmanaged cluster" / "using remote cluster".
#     The one class that still starts clusters of its own (TestConnectionAttributes, a hot
#     standby) does so the same way in every mode; as root its initdb refuses to run, so it
#     errors in every mode alike;
#   - the tests that failed through pgwarm but passed directly run again, only they, 3 times
#     per mode (DRIVER_SUITES_RERUNS), each time in a new process, on one fresh cluster (and
#     pgwarm) per mode;
#   - the report: totals per mode, and the tests that fail through pgwarm but pass directly,
#     with how often they failed again in each mode.
#
# pgwarm runs with PGWARM_POOL_SIZE=40 (the suite's largest asyncpg pool is 30 connections, and
# in session mode each client holds a server connection), PGWARM_CLIENT_TLS=off (the direct
# cluster has no TLS either, so asyncpg's sslmode=prefer is plain text both ways),
# PGWARM_SSLMODE=disable, PGWARM_METRICS=off; any other PGWARM_* in the environment reaches it.
#
# Environment:
#   DRIVER_SUITES_MODES         the runs, in order; the first is the reference
#                               (default "direct session transaction")
#   DRIVER_SUITES_TESTS         unittest names to run instead of the whole suite, separated by
#                               spaces (e.g. tests.test_pool.TestPool.test_pool_01)
#   DRIVER_SUITES_RUN_TIMEOUT   seconds one run of the suite may take before it is stopped (1200)
#   DRIVER_SUITES_TEST_TIMEOUT  seconds one test coroutine may take (120; asyncpg's TEST_TIMEOUT)
#   DRIVER_SUITES_RERUNS        how many times the tests that failed through pgwarm but passed
#                               directly run again (only they), in every mode (3; 0: none)
#   DRIVER_SUITES_PGWARM_BIN    a pgwarm binary to use instead of a release build
#   DRIVER_SUITES_OUT_DIR       where the report, results and logs go (default
#                               target/driver-suites; the venv and asyncpg's source stay there)
# The whole suite takes about a minute per mode on 2 vCPU, the reruns under a minute, the first
# build of asyncpg about a minute.
#
# Output, in DRIVER_SUITES_OUT_DIR: report.txt (also printed); per mode MODE.jsonl (one line
# per test: outcome, seconds, first line of the error and its traceback), MODE.log (the
# suite's own verbose output), MODE.status, the same for the reruns as MODE-again.*;
# logs/NAME-postgres.log and logs/NAME-pgwarm.log for each run.
# Exit status: 0 when every run finished in its time (failing tests are what the report is
# for), 1 when a run was stopped or could not start.
set -euo pipefail
SCRIPT_NAME=driver-suites.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=scripts/layer-common.sh
source "$(dirname "$0")/layer-common.sh"
cd "$(dirname "$0")/.."

ASYNCPG_VERSION=0.32.0
MODES=${DRIVER_SUITES_MODES:-direct session transaction}
RUN_TIMEOUT=${DRIVER_SUITES_RUN_TIMEOUT:-1200}
export DRIVER_SUITES_TEST_TIMEOUT=${DRIVER_SUITES_TEST_TIMEOUT:-120}
RERUNS=${DRIVER_SUITES_RERUNS:-3}
OUT_DIR=${DRIVER_SUITES_OUT_DIR:-target/driver-suites}
mkdir -p "$OUT_DIR/logs" target/driver-suites
OUT_DIR=$(cd "$OUT_DIR" && pwd)
BUILD_DIR=$(cd target/driver-suites && pwd)
HELPER=$(pwd)/scripts/driver-suites.py

for mode in $MODES; do
    case "$mode" in
        direct | session | transaction) ;;
        *) die "DRIVER_SUITES_MODES: unknown mode '$mode' (direct, session, transaction)" ;;
    esac
done

# ---- what the runs need ------------------------------------------------------------------------
install_missing postgresql
apt_install_commands gcc=gcc
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
    apt_install_commands python3-config=python3-dev
BINDIR=$(pg_bindir)

VENV=$BUILD_DIR/venv
SRC=$BUILD_DIR/src/asyncpg-$ASYNCPG_VERSION
if [ ! -x "$VENV/bin/python" ]; then
    say "python3 -m venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed: install the Debian package python3-venv"
fi
PY=$VENV/bin/python
if ! (cd "$SRC" 2>/dev/null && "$PY" -c "
import sys, asyncpg, asyncpg.protocol.protocol, distro
sys.exit(asyncpg.__version__ != '$ASYNCPG_VERSION')" 2>/dev/null); then
    say "pip download asyncpg==$ASYNCPG_VERSION --no-binary :all: (the sdist, with its tests)"
    rm -rf "$BUILD_DIR/sdist" "$BUILD_DIR/src"
    "$PY" -m pip download --quiet --no-binary :all: --no-deps -d "$BUILD_DIR/sdist" "asyncpg==$ASYNCPG_VERSION"
    mkdir -p "$BUILD_DIR/src"
    tar xzf "$BUILD_DIR/sdist/asyncpg-$ASYNCPG_VERSION.tar.gz" -C "$BUILD_DIR/src"
    say "building asyncpg in place (pip install -e: Cython, about a minute)"
    (cd "$SRC" && "$PY" -m pip install --quiet -e .)
    say "installing distro~=1.9.0 (pip; test_connect imports it)"
    "$PY" -m pip install --quiet 'distro~=1.9.0'
fi

if [[ " $MODES " == *" session "* || " $MODES " == *" transaction "* ]]; then
    if [ -n "${DRIVER_SUITES_PGWARM_BIN:-}" ]; then
        [ -x "$DRIVER_SUITES_PGWARM_BIN" ] || die "DRIVER_SUITES_PGWARM_BIN: $DRIVER_SUITES_PGWARM_BIN is not an executable"
        PGWARM_BIN=$(cd "$(dirname "$DRIVER_SUITES_PGWARM_BIN")" && pwd)/$(basename "$DRIVER_SUITES_PGWARM_BIN")
        say "using $PGWARM_BIN (DRIVER_SUITES_PGWARM_BIN)"
    else
        cargo_build_release
    fi
fi

# ---- processes ---------------------------------------------------------------------------------
make_workdir pgwarm-driver-suites
PG_DATA=
PGWARM_PID=
stop_all() {
    if [ -n "$PGWARM_PID" ]; then
        kill -TERM "$PGWARM_PID" 2>/dev/null || true
        wait "$PGWARM_PID" 2>/dev/null || true
        PGWARM_PID=
    fi
    if [ -n "$PG_DATA" ]; then
        as_postgres "$BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
        PG_DATA=
    fi
}
trap 'stop_all; common_cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_postgres() {
    if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local _
    for _ in $(seq $(($2 * 10))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_cluster NAME: a fresh cluster in $WORK/NAME; sets PG_PORT, PG_DATA, PG_PASSWORD, PG_LOG.
start_cluster() {
    local base=$WORK/$1 _
    mkdir -p "$base/data"
    chmod 700 "$base/data"
    PG_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    echo "$PG_PASSWORD" >"$base/pwfile"
    chmod 600 "$base/pwfile"
    if is_root; then chown -R postgres: "$base"; fi
    as_postgres "$BINDIR/initdb" -D "$base/data" --no-sync --auth=scram-sha-256 -U postgres -E UTF8 \
        --locale=C --pwfile="$base/pwfile" >"$base/initdb.log" 2>&1 ||
        die "initdb failed: $(cat "$base/initdb.log")"
    rm -f "$base/pwfile"
    cat >>"$base/data/postgresql.conf" <<'EOF'

# driver-suites.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
jit = off
logging_collector = off
log_min_messages = warning
EOF
    printf 'host all all 127.0.0.1/32 scram-sha-256\n' >"$base/data/pg_hba.conf"
    PG_LOG=$base/postgres.log
    for _ in 1 2 3 4 5; do
        PG_PORT=$(free_port)
        echo "port = $PG_PORT" >>"$base/data/postgresql.conf"
        if as_postgres "$BINDIR/pg_ctl" -D "$base/data" -l "$PG_LOG" -w -t 60 start >/dev/null 2>&1; then
            PG_DATA=$base/data
            return 0
        fi
        grep -q "could not bind" "$PG_LOG" 2>/dev/null || break
    done
    die "pg_ctl start failed: $(tail -n 20 "$PG_LOG" 2>/dev/null)"
}

# start_pgwarm MODE NAME: pgwarm in front of the cluster, in pool mode MODE, its log in
# logs/NAME-pgwarm.log; sets PGWARM_PORT.
start_pgwarm() {
    PGWARM_PORT=$(free_port)
    PGWARM_LISTEN=127.0.0.1:$PGWARM_PORT PGWARM_DB_HOST=127.0.0.1 PGWARM_DB_PORT=$PG_PORT \
        PGWARM_DB_USER=postgres PGWARM_DB_PASSWORD=$PG_PASSWORD PGWARM_DB_NAME=postgres \
        PGWARM_POOL_MODE=$1 PGWARM_POOL_SIZE=40 PGWARM_SSLMODE=disable PGWARM_CLIENT_TLS=off \
        PGWARM_METRICS=off PGWARM_LOG_FORMAT=text \
        "$PGWARM_BIN" >"$OUT_DIR/logs/$2-pgwarm.log" 2>&1 &
    PGWARM_PID=$!
    wait_port "$PGWARM_PORT" 20 || die "pgwarm did not listen on $PGWARM_PORT: $(tail -n 20 "$OUT_DIR/logs/$2-pgwarm.log")"
}

# ---- the runs ----------------------------------------------------------------------------------
failed_runs=0

# run_suite MODE NAME TIMES [TEST...]: a fresh cluster (and pgwarm in MODE), then the suite or the
# named tests, TIMES times one after the other, into OUT_DIR/NAME.jsonl, NAME.log and
# NAME.status; logs/NAME-*.log.
run_suite() {
    local mode=$1 name=$2 times=$3 port started elapsed rc=0 what _
    shift 3
    start_cluster "$name"
    port=$PG_PORT
    if [ "$mode" != direct ]; then
        start_pgwarm "$mode" "$name"
        port=$PGWARM_PORT
        say "$name: PostgreSQL on $PG_PORT, pgwarm ($mode mode) on $PGWARM_PORT"
    else
        say "$name: PostgreSQL on $PG_PORT"
    fi
    what="asyncpg $ASYNCPG_VERSION's suite"
    [ $# -eq 0 ] || what="$what, $# of its tests or modules by name"
    [ "$times" -eq 1 ] || what="$what, $times times"
    say "$name: running $what (at most ${RUN_TIMEOUT}s each; output in $OUT_DIR/$name.log)"
    : >"$OUT_DIR/$name.log"
    started=$(date +%s)
    for _ in $(seq "$times"); do
        (cd "$SRC" && PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGPASSWORD=$PG_PASSWORD \
            PGDATABASE=postgres PGSSLMODE=prefer PGBIN=$BINDIR PYTHONDONTWRITEBYTECODE=1 \
            timeout --kill-after=30 "$RUN_TIMEOUT" "$PY" "$HELPER" run "$OUT_DIR/$name.jsonl" "$@") \
            >>"$OUT_DIR/$name.log" 2>&1 || rc=$?
        case "$rc" in 0 | 1) rc=0 ;; *) break ;; esac
    done
    elapsed=$(($(date +%s) - started))
    case "$rc" in
        0) echo "finished in ${elapsed}s" >"$OUT_DIR/$name.status" ;;
        124 | 137)
            echo "STOPPED after ${RUN_TIMEOUT}s (DRIVER_SUITES_RUN_TIMEOUT)" >"$OUT_DIR/$name.status"
            failed_runs=$((failed_runs + 1))
            ;;
        *)
            echo "ENDED with exit status $rc after ${elapsed}s (see $name.log)" >"$OUT_DIR/$name.status"
            failed_runs=$((failed_runs + 1))
            ;;
    esac
    say "$name: $(cat "$OUT_DIR/$name.status")"
    stop_all
    cp "$PG_LOG" "$OUT_DIR/logs/$name-postgres.log" 2>/dev/null || true
}

rm -f "$OUT_DIR"/*.jsonl "$OUT_DIR"/*.status
read -r -a tests <<<"${DRIVER_SUITES_TESTS:-}"
for mode in $MODES; do
    run_suite "$mode" "$mode" 1 "${tests[@]}"
done

# Some of the suite's tests are timing-dependent: the tests that failed through pgwarm but passed
# directly run again, only they, RERUNS times in every mode (each time in a new process, as
# some leave tables behind that only their class's set-up clears), so the report can say
# whether each fails every time through pgwarm and never directly.
# shellcheck disable=SC2086 # the modes are words
mapfile -t again < <("$PY" "$HELPER" candidates "$OUT_DIR" $MODES)
if [ "${#again[@]}" -gt 0 ] && [ "$RERUNS" -gt 0 ]; then
    say "tests that failed through pgwarm but passed directly: ${#again[@]}; they run again, $RERUNS times per mode"
    for mode in $MODES; do
        run_suite "$mode" "$mode-again" "$RERUNS" "${again[@]}"
    done
fi

# shellcheck disable=SC2086 # the modes are words
"$PY" "$HELPER" report "$OUT_DIR" $MODES | tee "$OUT_DIR/report.txt"
say "report: $OUT_DIR/report.txt"
[ "$failed_runs" -eq 0 ]
