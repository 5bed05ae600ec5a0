#!/usr/bin/env bash
# The demo: a local Lambda-like run. A real PostgreSQL, lambda-simulator playing Lambda, pgwarm
# as the extension and the example handler as the function, with a printed report.
#
# On a fresh Debian/Ubuntu machine with Rust it first installs what is missing, one line per
# install (apt: postgresql, postgresql-client, pgbouncer, gnuplot-nox, python3-pip; pip:
# moto[server]), then
#   1. builds the workspace in release: pgwarm, handler-example, lambda-run (the tests crate's
#      driver around lambda-simulator, tests/src/bin/lambda-run.rs) and fleet (step 8);
#   2. starts a throwaway PostgreSQL cluster on a free port on 127.0.0.1, with role `app`
#      (random password) and database `app`, and moto_server with the secret `demo/app-db`
#      holding that login;
#   3. times pgwarm's start-up as an extension: exec to listening and exec to registered,
#      DEMO_STARTUP_RUNS times, each under a fresh simulator;
#   4. runs lambda-run with pgwarm: the simulator, pgwarm registered as an extension (pool size
#      2), then handler-example as the function's runtime, connecting to pgwarm without a
#      password. N invocations, each on a fresh connection (connect, record a visit, count,
#      close), each timed from the event to the result; the environment is frozen (SIGSTOP)
#      between invocations and thawed (SIGCONT) for the next;
#   5. the thaw check: while the environment is frozen, the database terminates every backend
#      of `app`; the invocation after the thaw must not notice;
#   6. SHUTDOWN: pgwarm must exit within Lambda's 2 s and leave no backend behind;
#   7. runs the same handler in the simulator without pgwarm, connecting straight to
#      PostgreSQL (a SCRAM login each time), for comparison;
#   8. the fleet: DEMO_FLEET_ENVIRONMENTS environments (each frozen between its invocations, a
#      pgwarm per environment with a pool of 1) against a role limited to DEMO_FLEET_SLOTS
#      connections, invoked DEMO_FLEET_BURST at a time; the handler connects, queries and closes
#      every time and one invocation in ten leaks its connection. Run directly (counting the
#      "too many connections" failures), through pgwarm (idle_session_timeout, waiting out a full
#      database) and through pgwarm chained to a central PgBouncer (pool 10). A table in the
#      report, and target/demo/fleet-connections.svg: the database's connections over time;
# and prints a report. Everything it started is stopped and removed on exit.
# pgwarm's login comes from a Secrets Manager secret (RDS's JSON) served by moto_server, the
# emulator pgwarm's real AWS SDK reaches through AWS_ENDPOINT_URL; the handler never sees the
# database password.
#
# Environment:
#   DEMO_INVOCATIONS         invocations through pgwarm                  (default 50)
#   DEMO_DIRECT_INVOCATIONS  invocations straight to PostgreSQL          (default 50)
#   DEMO_FREEZE              on|off: freeze between invocations; off skips the thaw check
#                                                                        (default on)
#   DEMO_STARTUP_RUNS        pgwarm starts timed in step 3; 0 skips them  (default 10)
#   DEMO_FLEET_ENVIRONMENTS  environments in the fleet                   (default 60)
#   DEMO_FLEET_SLOTS         the fleet's role's connection limit         (default 20)
#   DEMO_FLEET_BURST         environments invoked at once                (default 30)
#   DEMO_FLEET_BURSTS        bursts                                      (default 12)
#   PGWARM_*                 passed through to pgwarm, except the ones the demo fixes: LISTEN,
#                            SECRET_ID, SSLMODE (prefer), POOL_SIZE (2), LOG_LEVEL (info, and
#                            debug for client logins). PGWARM_LOG_FORMAT defaults to text.
#
# Exits non-zero if any invocation or any check failed; the report marks those lines FAILED.
set -euo pipefail
SCRIPT_NAME=demo.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

INVOCATIONS=${DEMO_INVOCATIONS:-50}
DIRECT_INVOCATIONS=${DEMO_DIRECT_INVOCATIONS:-50}
FREEZE=${DEMO_FREEZE:-on}
STARTUP_RUNS=${DEMO_STARTUP_RUNS:-10}
FLEET_ENVIRONMENTS=${DEMO_FLEET_ENVIRONMENTS:-60}
FLEET_SLOTS=${DEMO_FLEET_SLOTS:-20}
FLEET_BURST=${DEMO_FLEET_BURST:-30}
FLEET_BURSTS=${DEMO_FLEET_BURSTS:-12}
POOL_SIZE=2
[[ "$INVOCATIONS" =~ ^[1-9][0-9]*$ ]] || die "DEMO_INVOCATIONS must be a positive integer, got '$INVOCATIONS'"
[[ "$DIRECT_INVOCATIONS" =~ ^[1-9][0-9]*$ ]] ||
    die "DEMO_DIRECT_INVOCATIONS must be a positive integer, got '$DIRECT_INVOCATIONS'"
[[ "$FREEZE" =~ ^(on|off)$ ]] || die "DEMO_FREEZE must be on or off, got '$FREEZE'"
[[ "$STARTUP_RUNS" =~ ^[0-9]+$ ]] || die "DEMO_STARTUP_RUNS must be a number, got '$STARTUP_RUNS'"
for v in FLEET_ENVIRONMENTS FLEET_SLOTS FLEET_BURST FLEET_BURSTS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "DEMO_$v must be a positive integer, got '${!v}'"
done
[ "$FLEET_BURST" -le "$FLEET_ENVIRONMENTS" ] || die "DEMO_FLEET_BURST is larger than DEMO_FLEET_ENVIRONMENTS"

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

# lambda_run NAME [VAR=VALUE...] [ARGS...]: runs lambda-run with the variables set and ARGS; its
# lines in $WORK/NAME.tsv, its stderr in $WORK/NAME.err. Sets RUN_RC. The timeout only guards
# against a hang (it signals the whole process group, so pgwarm and the handler go too); a run
# takes a few seconds. TMPDIR=$WORK: the temporary directories of a run that failed half-way go
# with $WORK.
lambda_run() {
    local name=$1 vars=()
    shift
    while [ "$#" -gt 0 ] && [[ "$1" == [A-Z]*=* ]]; do
        vars+=("$1")
        shift
    done
    if timeout --kill-after=5 300 env TMPDIR="$WORK" "${vars[@]}" "$LAMBDA_RUN" "$@" \
        >"$WORK/$name.tsv" 2>"$WORK/$name.err"; then
        RUN_RC=0
    else
        RUN_RC=$?
    fi
}

# field FILE KIND COLUMN [FROM]: column COLUMN of FILE's KIND lines that are ok, from the line
# whose second field is FROM on (the invocation number; default 1).
field() {
    awk -F'\t' -v kind="$2" -v col="$3" -v from="${4:-1}" \
        '$1 == kind && $3 == "ok" && $2 >= from { print $col }' "$1"
}

# count FILE KIND STATUS: how many KIND lines of FILE have STATUS (ok or failed).
count() { awk -F'\t' -v kind="$2" -v st="$3" '$1 == kind && $3 == st { n++ } END { print n + 0 }' "$1"; }

# "median p95" (nearest rank) of the numbers on stdin, or "- -" when there are none.
median_p95() {
    sort -n | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) { print "- -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            k = int(0.95 * NR); if (k < 0.95 * NR) k++
            printf "%.2f %.2f\n", m, v[k]
        }'
}

# "median min max" of the numbers on stdin, or "- - -".
median_min_max() {
    sort -n | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) { print "- - -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.1f %.1f %.1f\n", m, v[1], v[NR]
        }'
}

# ratio A B: A / B to one decimal, or "-" when either is missing or B is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.1f\n", a / b }'
}

# Report lines: a label and a value; check LABEL VALUE PASSED adds ok/FAILED (PASSED is 1 or 0,
# usually from $(( ... ))).
FAILED_CHECKS=()
row() { printf '  %-46s %s\n' "$1" "$2"; }
check() {
    if [ "$3" = 1 ]; then
        printf '  %-46s %-40s ok\n' "$1" "$2"
    else
        printf '  %-46s %-40s FAILED\n' "$1" "$2"
        FAILED_CHECKS+=("$1")
    fi
}

# Shows the head of a run's stderr when there is something in it.
show_errors() {
    if [ -s "$WORK/$1.err" ]; then
        echo "--- lambda-run errors ($1) ---" >&2
        head -n 20 "$WORK/$1.err" >&2
    fi
}

# ---- set up ------------------------------------------------------------------------------------
apt_wants=(postgresql postgresql-client pgbouncer)
have moto_server || { have python3 && python3 -m pip --version >/dev/null 2>&1; } || apt_wants+=(python3-pip)
install_missing "${apt_wants[@]}"
pip_install_missing moto_server 'moto[server]'
# shellcheck source=scripts/layer-common.sh
source "$(dirname "$0")/layer-common.sh"
apt_install_commands gnuplot=gnuplot-nox
build_t0=$(now_ms)
cargo_build_release
BUILD_MS=$(($(now_ms) - build_t0))
HANDLER_BIN="$RELEASE_DIR/handler-example"
LAMBDA_RUN="$RELEASE_DIR/lambda-run"
for bin in "$HANDLER_BIN" "$LAMBDA_RUN" "$RELEASE_DIR/fleet"; do
    [ -x "$bin" ] || die "$bin was not built"
done

make_workdir pgwarm-demo
pg_start_cluster
APP_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
psql_super -d postgres >/dev/null <<EOF
CREATE ROLE app LOGIN PASSWORD '$APP_PASSWORD';
CREATE DATABASE app OWNER app;
EOF
say "created role app (random password) and database app"
moto_start
moto_create_secret demo/app-db "{\"username\": \"app\", \"password\": \"$APP_PASSWORD\", \"engine\": \"postgres\", \"host\": \"127.0.0.1\", \"port\": $PG_PORT, \"dbname\": \"app\"}"
say "created the secret demo/app-db (RDS's JSON) in moto_server"

# pgwarm's settings; PGWARM_* of the caller's environment reach it too (lambda-run passes them).
free_port PGWARM_PORT
PGWARM_SETTINGS=(
    PGWARM_LISTEN="127.0.0.1:$PGWARM_PORT"
    PGWARM_SECRET_ID=demo/app-db
    # The secret's host is this machine, whose cluster has no certificate.
    PGWARM_SSLMODE=prefer
    PGWARM_POOL_SIZE="$POOL_SIZE"
    # Client logins are logged at debug level: they are what the report counts.
    PGWARM_LOG_LEVEL="info,pgwarm::client::handshake=debug"
    PGWARM_LOG_FORMAT="${PGWARM_LOG_FORMAT:-text}"
)
pgwarm_passthrough "${PGWARM_SETTINGS[@]}"
PGWARM_LOG="$WORK/pgwarm.log"
SUPERUSER_URL="postgres://postgres:$PG_SUPERPASS@127.0.0.1:$PG_PORT/postgres"

# ---- start-up ----------------------------------------------------------------------------------
if [ "$STARTUP_RUNS" -gt 0 ]; then
    say "starting pgwarm $STARTUP_RUNS times as an extension, timing exec to listening and to registered"
    lambda_run startup "${PGWARM_SETTINGS[@]}" --startup-runs "$STARTUP_RUNS" --pgwarm "$PGWARM_BIN"
    STARTUP_RC=$RUN_RC
    show_errors startup
    STARTUP_DONE=$(grep -c '^startup' "$WORK/startup.tsv" || true)
    read -r LISTEN_MED LISTEN_MIN LISTEN_MAX < <(cut -f3 "$WORK/startup.tsv" | median_min_max)
    read -r REG_MED REG_MIN REG_MAX < <(cut -f4 "$WORK/startup.tsv" | median_min_max)
fi

# ---- through pgwarm ----------------------------------------------------------------------------
THAW_ARGS=()
[ "$FREEZE" = on ] && THAW_ARGS=(--thaw-check)
say "lambda-run: pgwarm as the extension, handler-example as the function, $INVOCATIONS invocations (freeze $FREEZE)"
# No password for the handler: it talks to pgwarm, and only pgwarm logs in to the database.
run_t0=$(now_ms)
lambda_run pgwarm "${PGWARM_SETTINGS[@]}" DATABASE_URL="postgres://app@127.0.0.1:$PGWARM_PORT/app" \
    SUPERUSER_URL="$SUPERUSER_URL" THAW_ROLE=app --pgwarm "$PGWARM_BIN" --handler "$HANDLER_BIN" \
    --invocations "$INVOCATIONS" --freeze "$FREEZE" "${THAW_ARGS[@]}" --pgwarm-log "$PGWARM_LOG"
POOLED_RC=$RUN_RC
POOLED_MS=$(($(now_ms) - run_t0))
show_errors pgwarm
POOLED_OK=$(count "$WORK/pgwarm.tsv" invocation ok)
POOLED_FAILED=$(count "$WORK/pgwarm.tsv" invocation failed)
POOLED_VISITS=$(field "$WORK/pgwarm.tsv" invocation 6 | tail -n 1)
FIRST_DB=$(field "$WORK/pgwarm.tsv" invocation 5 | head -n 1)
FIRST_WALL=$(field "$WORK/pgwarm.tsv" invocation 4 | head -n 1)
read -r POOLED_DB_MED POOLED_DB_P95 < <(field "$WORK/pgwarm.tsv" invocation 5 2 | median_p95)
read -r POOLED_WALL_MED POOLED_WALL_P95 < <(field "$WORK/pgwarm.tsv" invocation 4 2 | median_p95)
IFS=$'\t' read -r _ THAW_TERMINATED THAW_STATUS THAW_WALL THAW_DB _ < <(grep '^thaw_check' "$WORK/pgwarm.tsv") || true
IFS=$'\t' read -r _ SHUTDOWN_MS SHUTDOWN_STATUS < <(grep '^shutdown' "$WORK/pgwarm.tsv") || true

# What pgwarm logged: server connections it opened, the dead ones it replaced, client logins.
log_count() {
    if [ -f "$PGWARM_LOG" ]; then grep -c "$1" "$PGWARM_LOG" || true; else echo 0; fi
}
OPENED=$(log_count 'opened server connection')
REPLACED=$(log_count 'closed by the database; replacing it')
CLIENTS=$(log_count 'client logged in')
SECRET_READS=$(log_count 'read the secret')
# One client connection per invocation, the thaw check's included.
CLIENTS_EXPECTED=$INVOCATIONS
[ "$FREEZE" = off ] || CLIENTS_EXPECTED=$((INVOCATIONS + 1))

# pgwarm sent Terminate on its server connections before exiting; the backends go just after.
gone_t0=$(now_ms)
for _ in $(seq 20); do
    BACKENDS_AFTER=$(app_backends)
    [ "$BACKENDS_AFTER" = 0 ] && break
    sleep 0.1
done
GONE_MS=$(($(now_ms) - gone_t0))

# ---- straight to PostgreSQL --------------------------------------------------------------------
say "lambda-run: handler-example alone, straight to PostgreSQL (a SCRAM login each time), $DIRECT_INVOCATIONS invocations"
lambda_run direct DATABASE_URL="postgres://app:$APP_PASSWORD@127.0.0.1:$PG_PORT/app" --handler "$HANDLER_BIN" --invocations "$DIRECT_INVOCATIONS" --freeze "$FREEZE"
DIRECT_RC=$RUN_RC
show_errors direct
DIRECT_OK=$(count "$WORK/direct.tsv" invocation ok)
DIRECT_VISITS=$(field "$WORK/direct.tsv" invocation 6 | tail -n 1)
read -r DIRECT_DB_MED DIRECT_DB_P95 < <(field "$WORK/direct.tsv" invocation 5 2 | median_p95)
read -r DIRECT_WALL_MED DIRECT_WALL_P95 < <(field "$WORK/direct.tsv" invocation 4 2 | median_p95)

VISITS=$(pg_value app "SELECT count(*) FROM visits" 2>/dev/null || echo -1)
VISITS_EXPECTED=$((CLIENTS_EXPECTED + DIRECT_INVOCATIONS))

# ---- the fleet ---------------------------------------------------------------------------------
# Many environments against a database role with few connection slots, three ways: the fleet
# binary (tests/src/bin/fleet.rs) on the tests' harness, with its own throwaway cluster and
# PgBouncer. Its table goes into the report, its chart next to it.
FLEET_DIR="$TARGET_DIR/demo"
mkdir -p "$FLEET_DIR"
say "fleet: $FLEET_ENVIRONMENTS environments, $FLEET_SLOTS connection slots; direct, through pgwarm, through pgwarm + PgBouncer"
# --foreground: Ctrl-C reaches the fleet, which kills its environments (frozen ones included).
if timeout --foreground --kill-after=5 900 env TMPDIR="$WORK" PGWARM_BIN="$PGWARM_BIN" "$RELEASE_DIR/fleet" \
    --environments "$FLEET_ENVIRONMENTS" --db-slots "$FLEET_SLOTS" --burst-size "$FLEET_BURST" \
    --bursts "$FLEET_BURSTS" --out "$FLEET_DIR" >"$WORK/fleet.out" 2>"$WORK/fleet.err"; then
    FLEET_RC=0
else
    FLEET_RC=$?
    echo "--- fleet errors ---" >&2
    tail -n 20 "$WORK/fleet.err" >&2
fi
FLEET_CHART="$FLEET_DIR/fleet-connections.svg"
if [ -s "$FLEET_DIR/connections-pgwarm.tsv" ]; then
    gnuplot <<EOF
set terminal svg size 900,400 dynamic font "sans,11" background rgb "white"
set output "$FLEET_CHART"
set title "The database's connections for the fleet's role ($FLEET_SLOTS slots)"
set xlabel "seconds"
set ylabel "connections"
set yrange [0:$((FLEET_SLOTS + 2))]
set grid
set key bottom right
plot "$FLEET_DIR/connections-direct.tsv" using 1:2 skip 1 with steps lw 2 title "direct", \
     "$FLEET_DIR/connections-pgwarm.tsv" using 1:2 skip 1 with steps lw 2 title "through pgwarm", \
     "$FLEET_DIR/connections-pgwarm-pgbouncer.tsv" using 1:2 skip 1 with steps lw 2 title "pgwarm + PgBouncer", \
     $FLEET_SLOTS with lines dt 2 lc rgb "black" title "slots"
EOF
fi

# ---- report ------------------------------------------------------------------------------------
echo
echo "pgwarm demo, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "$("$PG_BIN/postgres" --version) on 127.0.0.1:$PG_PORT (throwaway cluster)"
if [ "$FREEZE" = on ]; then
    echo "lambda-simulator 0.2 plays Lambda, freezing the environment between invocations (SIGSTOP, then SIGCONT with the next event)"
else
    echo "lambda-simulator 0.2 plays Lambda, without freezing (DEMO_FREEZE=off)"
fi
echo "pgwarm as the extension on 127.0.0.1:$PGWARM_PORT, ${PGWARM_POOL_MODE:-transaction} mode, PGWARM_POOL_SIZE=$POOL_SIZE${PGWARM_PASSTHROUGH:+, with $PGWARM_PASSTHROUGH}"
echo "its login: the secret demo/app-db, read from moto_server (Secrets Manager emulator) on 127.0.0.1:$MOTO_PORT"
if [ "$STARTUP_RUNS" -gt 0 ]; then
    echo
    echo "pgwarm start-up as an extension ($STARTUP_RUNS starts, each under a fresh simulator)"
    check "starts that listened, registered and exited" "$STARTUP_DONE of $STARTUP_RUNS" \
        $((STARTUP_RC == 0 && STARTUP_DONE == STARTUP_RUNS))
    row "exec to listening" "median $LISTEN_MED ms (min $LISTEN_MIN, max $LISTEN_MAX)"
    row "exec to registered" "median $REG_MED ms (min $REG_MIN, max $REG_MAX)"
fi
echo
echo "The example handler through pgwarm ($INVOCATIONS invocations, a fresh connection each; ${POOLED_MS} ms in all)"
check "invocations succeeded" "$POOLED_OK of $INVOCATIONS ($POOLED_FAILED failed)" \
    $((POOLED_RC == 0 && POOLED_OK == INVOCATIONS))
check "visits counted by the last invocation" "${POOLED_VISITS:-none}" \
    $((${POOLED_VISITS:-0} == INVOCATIONS))
check "server connections pgwarm opened" "$OPENED for $CLIENTS client connections" \
    $((OPENED - REPLACED >= 1 && OPENED - REPLACED <= POOL_SIZE && CLIENTS == CLIENTS_EXPECTED))
check "reads of the secret (Secrets Manager)" "$SECRET_READS for $CLIENTS client connections" \
    $((SECRET_READS == 1))
row "first invocation (pool still empty)" "db_ms ${FIRST_DB:--}, wall ${FIRST_WALL:--} ms"
row "db_ms, invocations 2..$INVOCATIONS" "median $POOLED_DB_MED ms, p95 $POOLED_DB_P95 ms"
row "invocation wall time, 2..$INVOCATIONS" "median $POOLED_WALL_MED ms, p95 $POOLED_WALL_P95 ms"
echo
echo "The same handler straight to PostgreSQL ($DIRECT_INVOCATIONS invocations, a SCRAM login each)"
check "invocations succeeded" "$DIRECT_OK of $DIRECT_INVOCATIONS" \
    $((DIRECT_RC == 0 && DIRECT_OK == DIRECT_INVOCATIONS))
row "db_ms, invocations 2..$DIRECT_INVOCATIONS" "median $DIRECT_DB_MED ms, p95 $DIRECT_DB_P95 ms"
row "invocation wall time, 2..$DIRECT_INVOCATIONS" "median $DIRECT_WALL_MED ms, p95 $DIRECT_WALL_P95 ms"
row "direct / pgwarm, medians" \
    "db_ms $(ratio "$DIRECT_DB_MED" "$POOLED_DB_MED")×, wall $(ratio "$DIRECT_WALL_MED" "$POOLED_WALL_MED")×"
check "visits in the table (both runs)" "$VISITS (last invocation counted ${DIRECT_VISITS:-none})" \
    $((VISITS == VISITS_EXPECTED && ${DIRECT_VISITS:-0} == VISITS_EXPECTED))
echo
if [ "$FREEZE" = on ]; then
    echo "Frozen, the database terminates every backend of app; then thaw and invoke"
    check "backends terminated while frozen" "${THAW_TERMINATED:--}" $((${THAW_TERMINATED:-0} >= 1))
    check "the invocation after the thaw" \
        "${THAW_STATUS:-not run}${THAW_DB:+, db_ms $THAW_DB, wall $THAW_WALL ms}" \
        "$([ "${THAW_STATUS:-}" = ok ] && echo 1 || echo 0)"
    row "dead server connections pgwarm replaced" "$REPLACED (among the $OPENED it opened)"
    echo
fi
echo "The fleet: $FLEET_ENVIRONMENTS environments, each frozen between its invocations, against a role with $FLEET_SLOTS connection slots"
sed 's/^/  /' "$WORK/fleet.out"
check "no invocation through pgwarm failed" "fleet exit status $FLEET_RC" $((FLEET_RC == 0))
[ -s "$FLEET_CHART" ] && row "chart of the database's connections" "$FLEET_CHART"
echo
echo "SHUTDOWN"
check "pgwarm exited, within Lambda's 2000 ms" "status ${SHUTDOWN_STATUS:-unknown} after ${SHUTDOWN_MS:--} ms" \
    "$([ "${SHUTDOWN_STATUS:-}" = 0 ] && [ "${SHUTDOWN_MS:--}" != - ] && echo 1 || echo 0)"
check "backends of role app afterwards" "$BACKENDS_AFTER (seen within $GONE_MS ms)" \
    $((BACKENDS_AFTER == 0))
echo
TOTAL_S=$(awk -v ms="$(($(now_ms) - STARTED_MS))" 'BEGIN { printf "%.1f", ms / 1000 }')
if [ "${#FAILED_CHECKS[@]}" -gt 0 ]; then
    die "${#FAILED_CHECKS[@]} check(s) FAILED: $(printf '%s; ' "${FAILED_CHECKS[@]}" | sed 's/; $//') (${TOTAL_S}s, build $((BUILD_MS / 1000))s)"
fi
say "all checks passed in ${TOTAL_S}s (build $((BUILD_MS / 1000))s)"
