#!/usr/bin/env bash
# The demo: a real PostgreSQL, pgwarm in front of it, and the example handler, with a report.
#
# On a fresh Debian/Ubuntu machine with Rust it first installs what is missing, one line per
# install (apt: postgresql, postgresql-client), then
#   1. builds the workspace in release;
#   2. starts a throwaway PostgreSQL cluster on a free port on 127.0.0.1, with role `app`
#      (random password) and database `app`;
#   3. starts pgwarm standalone on a free port on 127.0.0.1 (pool size 2, log level info);
#   4. runs target/release/handler-example N through pgwarm: N invocations, each on a fresh
#      connection (connect, record a visit, count, close), one JSON line each;
#   5. counts the server connections the database saw, stops pgwarm with SIGTERM and checks
#      that it left no backend behind;
#   6. runs the same handler straight against PostgreSQL for comparison;
# and prints a report. Everything it started is stopped and removed on exit.
#
# Environment:
#   DEMO_INVOCATIONS         handler invocations through pgwarm          (default 50)
#   DEMO_DIRECT_INVOCATIONS  handler invocations straight to PostgreSQL  (default 20)
#   PGWARM_*                 passed through to pgwarm, except the ones the demo fixes: LISTEN,
#                            DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (2), LOG_LEVEL (info).
#
# Exits non-zero if any invocation or any check failed; the report marks those lines FAILED.
set -euo pipefail
SCRIPT_NAME=demo.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

INVOCATIONS=${DEMO_INVOCATIONS:-50}
DIRECT_INVOCATIONS=${DEMO_DIRECT_INVOCATIONS:-20}
POOL_SIZE=2
[[ "$INVOCATIONS" =~ ^[1-9][0-9]*$ ]] || die "DEMO_INVOCATIONS must be a positive integer, got '$INVOCATIONS'"
[[ "$DIRECT_INVOCATIONS" =~ ^[1-9][0-9]*$ ]] ||
    die "DEMO_DIRECT_INVOCATIONS must be a positive integer, got '$DIRECT_INVOCATIONS'"

now_ms() { date +%s%3N; }
STARTED_MS=$(now_ms)

cleanup() {
    local rc=$?
    set +e
    common_cleanup
    [ "$rc" -eq 0 ] || echo "demo.sh: FAILED (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers -----------------------------------------------------------------------------------
# One value from the cluster, as the superuser (it is not role app, so it never counts itself).
pg_value() { psql_super -At -d "$1" -c "$2"; }

# Backends of role app: pgwarm's server connections, or the handler's own when it runs direct.
# -1 if the query failed, so that every check below stays arithmetic.
app_backends() {
    pg_value postgres "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'" || echo -1
}

# run_handler NAME URL N: runs the handler N times; JSON lines in $WORK/NAME.out, errors in
# $WORK/NAME.err. Sets HANDLER_RC and HANDLER_MS (wall time of the whole run).
run_handler() {
    local name=$1 url=$2 n=$3 t0
    t0=$(now_ms)
    # timeout only guards against a hung connection; the runs take well under a second.
    if DATABASE_URL=$url timeout --kill-after=5 120 "$HANDLER_BIN" "$n" \
        >"$WORK/$name.out" 2>"$WORK/$name.err"; then
        HANDLER_RC=0
    else
        HANDLER_RC=$?
    fi
    HANDLER_MS=$(($(now_ms) - t0))
}

# db_ms values of a handler run, one a line, from line FROM on.
db_ms_values() { sed -n "$2,\$s/.*\"db_ms\":\([0-9.]*\).*/\1/p" "$1"; }

# "median p95" (nearest rank) of the numbers on stdin, or "- -" when there are none.
median_p95() {
    sort -n | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) { print "- -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            k = int(0.95 * NR); if (k < 0.95 * NR) k++
            printf "%.3f %.3f\n", m, v[k]
        }'
}

# Report lines: a label and a value; check LABEL VALUE PASSED adds ok/FAILED (PASSED is 1 or 0,
# usually from $(( ... ))).
FAILED_CHECKS=()
row() { printf '  %-44s %s\n' "$1" "$2"; }
check() {
    if [ "$3" = 1 ]; then
        printf '  %-44s %-36s ok\n' "$1" "$2"
    else
        printf '  %-44s %-36s FAILED\n' "$1" "$2"
        FAILED_CHECKS+=("$1")
    fi
}

# ---- set up ------------------------------------------------------------------------------------
install_missing postgresql postgresql-client
build_t0=$(now_ms)
cargo_build_release
BUILD_MS=$(($(now_ms) - build_t0))
HANDLER_BIN="$RELEASE_DIR/handler-example"
[ -x "$HANDLER_BIN" ] || die "$HANDLER_BIN was not built"

make_workdir pgwarm-demo
pg_start_cluster
APP_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
psql_super -d postgres >/dev/null <<EOF
CREATE ROLE app LOGIN PASSWORD '$APP_PASSWORD';
CREATE DATABASE app OWNER app;
EOF
say "created role app (random password) and database app"

PGWARM_LOG="$WORK/pgwarm.log"
pgwarm_start "$PGWARM_LOG" \
    PGWARM_DB_HOST=127.0.0.1 \
    PGWARM_DB_PORT="$PG_PORT" \
    PGWARM_DB_NAME=app \
    PGWARM_DB_USER=app \
    PGWARM_DB_PASSWORD="$APP_PASSWORD" \
    PGWARM_POOL_SIZE="$POOL_SIZE" \
    PGWARM_LOG_LEVEL=info

# ---- through pgwarm ----------------------------------------------------------------------------
say "running handler-example $INVOCATIONS through pgwarm"
# No password: the handler talks to pgwarm, and only pgwarm logs in to the database.
run_handler pgwarm "postgres://app@127.0.0.1:$PGWARM_PORT/app" "$INVOCATIONS"
POOLED_RC=$HANDLER_RC
POOLED_MS=$HANDLER_MS
POOLED_OK=$(grep -c '"visits":' "$WORK/pgwarm.out" || true)
# The handler stops at its first failure, so that one counts as run, too.
POOLED_RUN=$((POOLED_OK + (POOLED_RC != 0 && POOLED_OK < INVOCATIONS ? 1 : 0)))
LAST_VISITS=$(tail -n 1 "$WORK/pgwarm.out" | sed -n 's/.*"visits":\([0-9]*\).*/\1/p')
LAST_VISITS=${LAST_VISITS:-0}
FIRST_MS=$(db_ms_values "$WORK/pgwarm.out" 1 | head -n 1)
read -r POOLED_MEDIAN POOLED_P95 < <(db_ms_values "$WORK/pgwarm.out" 2 | median_p95)

# What the database saw, right after the run and before anything else connects as app.
VISITS=$(pg_value app "SELECT count(*) FROM visits" 2>/dev/null || echo -1)
BACKENDS_AFTER_RUN=$(app_backends)
OPENED=$(grep -c 'opened server connection' "$PGWARM_LOG" || true)

# ---- stop pgwarm -------------------------------------------------------------------------------
say "stopping pgwarm (SIGTERM)"
stop_t0=$(now_ms)
kill -TERM "$PGWARM_PID" 2>/dev/null || true # already gone: the exit status below says why
# Poll rather than `wait`, so that a pgwarm that ignores SIGTERM cannot hang the demo.
for _ in $(seq 2000); do
    kill -0 "$PGWARM_PID" 2>/dev/null || break
    sleep 0.005
done
if kill -0 "$PGWARM_PID" 2>/dev/null; then
    STOP_TEXT="still running after 10 s (killed)"
    STOP_OK=0
    kill -9 "$PGWARM_PID" 2>/dev/null || true
    wait "$PGWARM_PID" 2>/dev/null || true
else
    STOP_MS=$(($(now_ms) - stop_t0))
    if wait "$PGWARM_PID"; then stop_rc=0; else stop_rc=$?; fi
    STOP_TEXT="exit status $stop_rc after $STOP_MS ms"
    STOP_OK=$((stop_rc == 0))
fi

# pgwarm sent Terminate on its server connections; their backends go away just after.
gone_t0=$(now_ms)
for _ in $(seq 20); do
    BACKENDS_AFTER_STOP=$(app_backends)
    [ "$BACKENDS_AFTER_STOP" = 0 ] && break
    sleep 0.1
done
GONE_MS=$(($(now_ms) - gone_t0))

# ---- straight to PostgreSQL --------------------------------------------------------------------
say "running handler-example $DIRECT_INVOCATIONS straight to PostgreSQL (SCRAM login each time)"
run_handler direct "postgres://app:$APP_PASSWORD@127.0.0.1:$PG_PORT/app" "$DIRECT_INVOCATIONS"
DIRECT_RC=$HANDLER_RC
DIRECT_OK=$(grep -c '"visits":' "$WORK/direct.out" || true)
read -r DIRECT_MEDIAN DIRECT_P95 < <(db_ms_values "$WORK/direct.out" 1 | median_p95)
# The headline: how much cheaper a fresh connection is through pgwarm than straight to PostgreSQL.
SPEEDUP=$(awk -v d="$DIRECT_MEDIAN" -v p="$POOLED_MEDIAN" 'BEGIN {
    if (d == "-" || p == "-" || p <= 0) print "no comparison: a run has no timings to compare"
    else if (d >= p) printf "connect+query+close is %.1f× faster through pgwarm (median direct / median pgwarm)", d / p
    else printf "connect+query+close is %.1f× slower through pgwarm (median pgwarm / median direct)", p / d
}')

# ---- report ------------------------------------------------------------------------------------
for name in pgwarm direct; do
    if [ -s "$WORK/$name.err" ]; then
        echo "--- handler errors ($name) ---" >&2
        head -n 5 "$WORK/$name.err" >&2
    fi
done

echo
echo "pgwarm demo, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "$("$PG_BIN/postgres" --version) on 127.0.0.1:$PG_PORT (throwaway cluster)"
echo "pgwarm on 127.0.0.1:$PGWARM_PORT, ${PGWARM_POOL_MODE:-transaction} mode, PGWARM_POOL_SIZE=$POOL_SIZE${PGWARM_PASSTHROUGH:+, with $PGWARM_PASSTHROUGH}"
echo
echo "The example handler through pgwarm ($INVOCATIONS invocations, a fresh connection each; ${POOLED_MS} ms in all)"
check "invocations run / succeeded" "$POOLED_RUN / $POOLED_OK" \
    $((POOLED_RC == 0 && POOLED_OK == INVOCATIONS))
VISITS_TEXT=$VISITS
[ "$VISITS" -ge 0 ] || VISITS_TEXT="none (no visits table)"
check "visits counted at the end" "$VISITS_TEXT" \
    $((VISITS == INVOCATIONS && LAST_VISITS == INVOCATIONS))
row "db_ms, first invocation (pool still empty)" "${FIRST_MS:--} ms"
if [ "$INVOCATIONS" -gt 1 ]; then
    row "db_ms, invocations 2..$INVOCATIONS" "median $POOLED_MEDIAN ms, p95 $POOLED_P95 ms"
fi
echo
echo "The same handler straight to PostgreSQL ($DIRECT_INVOCATIONS invocations, a SCRAM login each)"
check "invocations succeeded" "$DIRECT_OK of $DIRECT_INVOCATIONS" \
    $((DIRECT_RC == 0 && DIRECT_OK == DIRECT_INVOCATIONS))
row "db_ms" "median $DIRECT_MEDIAN ms, p95 $DIRECT_P95 ms"
echo "  => $SPEEDUP"
echo
echo "Server connections the database saw during the pgwarm run"
check "backends of role app right after the run" "$BACKENDS_AFTER_RUN (pool size $POOL_SIZE)" \
    $((BACKENDS_AFTER_RUN >= 1 && BACKENDS_AFTER_RUN <= POOL_SIZE))
check "server connections pgwarm opened in total" "$OPENED (for $POOLED_OK client connections)" \
    $((OPENED >= 1 && OPENED <= POOL_SIZE))
echo
echo "Stopping pgwarm with SIGTERM"
check "pgwarm stopped" "$STOP_TEXT" "$STOP_OK"
check "backends of role app afterwards" "$BACKENDS_AFTER_STOP (seen within $GONE_MS ms)" \
    $((BACKENDS_AFTER_STOP == 0))
echo
echo "Not yet in this demo: the Lambda simulator (Extensions API lifecycle) and the Secrets Manager"
echo "emulator are not built yet; pgwarm runs standalone here."
echo
TOTAL_S=$(awk -v ms="$(($(now_ms) - STARTED_MS))" 'BEGIN { printf "%.1f", ms / 1000 }')
if [ "${#FAILED_CHECKS[@]}" -gt 0 ]; then
    die "${#FAILED_CHECKS[@]} check(s) FAILED: $(printf '%s; ' "${FAILED_CHECKS[@]}" | sed 's/; $//') (${TOTAL_S}s, build $((BUILD_MS / 1000))s)"
fi
say "all checks passed in ${TOTAL_S}s (build $((BUILD_MS / 1000))s)"
