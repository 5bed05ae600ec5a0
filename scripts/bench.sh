#!/usr/bin/env bash
# Benchmark pgwarm against a direct connection, PgBouncer and a plain TCP relay, with pgbench.
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt: postgresql (server), postgresql-client (psql, pgbench), pgbouncer, haproxy
# then builds the workspace in release, starts a throwaway PostgreSQL cluster, pgwarm, PgBouncer
# and HAProxy on free ports on 127.0.0.1 (nothing else is touched), and runs
#   pgbench -n -S -M MODE -T DURATION -c C -j min(C,2)
# against each target, BENCH_ROUNDS times. Within a round, for each mode and client count, the
# targets run back to back, and their order rotates from round to round (direct, pgwarm,
# pgbouncer, haproxy; then pgwarm, pgbouncer, haproxy, direct; ...) so that drift and position
# effects hit all of them alike.
#
# The targets:
#   direct     PostgreSQL itself: the ceiling.
#   pgwarm     pool of 4, transaction mode.
#   pgbouncer  PgBouncer (Debian's), pool of 4, transaction mode, SCRAM.
#   haproxy    HAProxy (Debian's) in `mode tcp` with one thread, as pgwarm and PgBouncer run: a
#              relay that only copies bytes, one server connection per client, no pooling. No
#              pooler does less work per transaction: it is the floor for CPU, and the reference
#              for the latency a hop adds.
# PgBouncer before 1.21 cannot run -M prepared in transaction mode; when -M extended runs too,
# its -M prepared runs are skipped and the prepared table compares with its extended figures.
#
# Single runs are noisy on small machines, so besides the TPS it records, for pgwarm, PgBouncer
# and HAProxy, the process's own CPU time per transaction: utime+stime of the process (all its
# threads; /proc/PID/stat fields 14 and 15, in clock ticks of `getconf CLK_TCK`) read just
# before and just after each pgbench run, divided by pgbench's "number of transactions actually
# processed". It includes the process's share of the connection setup (SCRAM) of that run.
#
# The report has one table per mode. Per client count it gives the median over the rounds of
# each target's TPS, pgwarm's ratios to the others (ratios of those medians, with the min-max
# range of the per-round ratios), and the median CPU us/transaction of the three relays with
# pgwarm's ratios to PgBouncer's and HAProxy's. It is printed and written to
# target/bench/report.txt; every run's figures go to target/bench/runs.tsv, pgbench outputs to
# target/bench/runs/ and server logs to target/bench/logs/; scripts/bench-charts.sh then draws
# target/bench/tps.svg and cpu.svg from runs.tsv (gnuplot). Everything it started is stopped
# and removed on exit.
#
# Environment:
#   BENCH_ROUNDS    rounds (each runs every target once per mode and client count) (default 3)
#   BENCH_DURATION  seconds per pgbench run                                        (default 10)
#   BENCH_CLIENTS   client counts, space separated                            (default "1 16 64")
#   BENCH_MODES     pgbench -M query modes, space separated  (default "simple extended prepared")
#   BENCH_SCALE     pgbench -i scale factor                                        (default 10)
#   BENCH_PGWARM_BIN  a pgwarm binary to measure instead of a release build (smoke runs)
#   BENCH_OUT_DIR   where the report, runs and logs go                 (default target/bench)
#   PGWARM_*        passed through to pgwarm (e.g. PGWARM_WORKER_THREADS=2), except the ones the
#                   benchmark fixes: LISTEN, DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (4, the
#                   same as PgBouncer's default_pool_size) and LOG_LEVEL (warn).
# Runs: ROUNDS x modes x client counts x 4 targets (3 for prepared), each DURATION s; the
# defaults make 99 runs of 10 s, about 18 minutes with setup (plus the build).
#
# A pgbench run succeeds only if it exits 0, has no "aborted" in its output, reports
# "number of failed transactions: 0", prints no "pgbench: error:" line, and reports a TPS and a
# non-zero transaction count. Any other run counts as FAILED: the report marks the figures it
# belongs to FAILED and quotes its first error line. PgBouncer's -M prepared runs, when they run,
# are expected to fail (see expected_failure); the script exits non-zero if any other run failed
# or a relay's CPU time could not be read.
set -euo pipefail
SCRIPT_NAME=bench.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
CLIENTS=${BENCH_CLIENTS:-1 16 64}
MODES=${BENCH_MODES:-simple extended prepared}
SCALE=${BENCH_SCALE:-10}
POOL_SIZE=4
TARGETS=(direct pgwarm pgbouncer haproxy)
BENCH_PASSWORD=password

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a positive integer (seconds), got '$DURATION'"
[[ "$SCALE" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SCALE must be a positive integer, got '$SCALE'"
for c in $CLIENTS; do
    [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CLIENTS must hold positive integers, got '$c'"
    [ "$c" -le 190 ] || die "BENCH_CLIENTS: $c is more than the cluster's max_connections allows"
done
for m in $MODES; do
    case "$m" in simple | extended | prepared) ;; *) die "BENCH_MODES: unknown pgbench mode '$m'" ;; esac
done
[ -n "${CLIENTS// /}" ] || die "BENCH_CLIENTS is empty"
[ -n "${MODES// /}" ] || die "BENCH_MODES is empty"

# ---- install what is missing (apt) -------------------------------------------------------------
install_missing postgresql postgresql-client pgbouncer haproxy

# ---- build -------------------------------------------------------------------------------------
bench_binary

# ---- output folders, clean-up, work dir -------------------------------------------------------
bench_start "" pgwarm-bench
any_failed=0

# ---- PostgreSQL --------------------------------------------------------------------------------
pg_start_cluster

psql_super -d postgres >/dev/null <<EOF
CREATE ROLE bench LOGIN PASSWORD '$BENCH_PASSWORD';
CREATE DATABASE bench OWNER bench;
EOF
say "pgbench -i -s $SCALE"
if ! "${PGVARS[@]}" PGPASSWORD="$BENCH_PASSWORD" pgbench -i -q -s "$SCALE" -p "$PG_PORT" -U bench bench \
    >"$WORK/pgbench-init.log" 2>&1; then
    cat "$WORK/pgbench-init.log" >&2
    die "pgbench -i failed"
fi

# ---- pgwarm ------------------------------------------------------------------------------------
pgwarm_start "$WORK/pgwarm.log" \
    PGWARM_DB_HOST=127.0.0.1 \
    PGWARM_DB_PORT="$PG_PORT" \
    PGWARM_DB_NAME=bench \
    PGWARM_DB_USER=bench \
    PGWARM_DB_PASSWORD="$BENCH_PASSWORD" \
    PGWARM_POOL_SIZE="$POOL_SIZE" \
    PGWARM_LOG_LEVEL=warn

# ---- PgBouncer ---------------------------------------------------------------------------------
free_port PGBOUNCER_PORT
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
EOF
echo "\"bench\" \"$BENCH_PASSWORD\"" >"$WORK/userlist.txt"
chmod 600 "$WORK/userlist.txt"
pgbouncer_start "$PGBOUNCER_PORT" "$WORK/pgbouncer.ini" "$WORK/pgbouncer.log" "$WORK/userlist.txt"

# ---- HAProxy: the plain TCP relay --------------------------------------------------------------
free_port HAPROXY_PORT
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 1000
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen postgres
    bind 127.0.0.1:$HAPROXY_PORT
    server db 127.0.0.1:$PG_PORT
EOF
say "starting HAProxy ($(haproxy -v 2>/dev/null | head -n 1 | cut -d' ' -f1-3)) on 127.0.0.1:$HAPROXY_PORT"
haproxy -f "$WORK/haproxy.cfg" -db </dev/null >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
common_on_exit pid "$HAPROXY_PID"
wait_listening haproxy "$HAPROXY_PID" "$HAPROXY_PORT" "$WORK/haproxy.log"

# One query through each target before measuring: a broken path fails here, clearly.
for t in "${TARGETS[@]}"; do
    if ! out=$("${PGVARS[@]}" PGPASSWORD="$BENCH_PASSWORD" psql -X -At -p "$(target_port "$t")" -U bench \
        -d bench -c 'SELECT count(*) FROM pgbench_branches' 2>&1) || [ "$out" != "$SCALE" ]; then
        echo "$out" >&2
        die "sanity query through $t (port $(target_port "$t")) failed"
    fi
done

# ---- pooler CPU time ---------------------------------------------------------------------------
bench_pooler_pids

# ---- runs --------------------------------------------------------------------------------------
# round_order R: the targets in the order of round R (1-based), rotated by R-1.
round_order() {
    local r=$1 n=${#TARGETS[@]} i
    for ((i = 0; i < n; i++)); do
        echo "${TARGETS[(i + r - 1) % n]}"
    done
}

# expected_failure TARGET MODE: whether TARGET failing in MODE is a known limitation rather than
# a fault. PgBouncer 1.18 predates max_prepared_statements: in transaction mode it passes
# pgbench's named statements (P_0, ...) through to whichever server connection the transaction
# gets, so a client soon runs one on a connection that never prepared it ("does not exist"), or
# prepares one that an earlier client left there ("already exists").
expected_failure() {
    [ "$1" = pgbouncer ] && [ "$2" = prepared ]
}

# skipped TARGET MODE: PgBouncer's -M prepared runs are skipped when its -M extended runs too:
# they can only fail, and the prepared table compares pgwarm with its extended figures.
skipped() {
    expected_failure "$1" "$2" && [[ " $MODES " == *" extended "* ]]
}

# run_failure OUT RC: why the pgbench run whose output is OUT and exit status RC failed, or
# nothing if it succeeded. Success needs all of: exit status 0, no "aborted" in the output,
# "number of failed transactions: 0", no "pgbench: error:" line, a TPS figure and a non-zero
# transaction count. The error lines matter for -M prepared: pgbench 15 logs a failed PREPARE
# ("prepared statement \"P_0\" already exists") and carries on, exiting 0 with no failed
# transaction, its statements then running only because every client prepares the same SQL
# under the same name.
run_failure() {
    local out=$1 rc=$2 failed tps txns errors reasons=()
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n 1)
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out" | head -n 1)
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n 1)
    case "$rc" in
        0) ;;
        124 | 137) reasons+=("timed out after $((DURATION + 60))s") ;;
        *) reasons+=("exit status $rc") ;;
    esac
    if grep -qi aborted "$out"; then reasons+=(aborted); fi
    errors=$(grep -c '^pgbench: error:' "$out" || true)
    [ "$errors" -eq 0 ] || reasons+=("'pgbench: error:' x $errors")
    if [ -z "$failed" ]; then
        reasons+=("no failed-transaction count")
    elif [ "$failed" -ne 0 ]; then
        reasons+=("$failed failed transactions")
    fi
    [ -n "$tps" ] || reasons+=("no TPS")
    if [ -z "$txns" ] || [ "$txns" -eq 0 ]; then reasons+=("no transactions"); fi
    [ "${#reasons[@]}" -eq 0 ] && return 0
    printf '%s, ' "${reasons[@]}" | sed 's/, $//'
}

# first_abort OUT: the first line in OUT where pgbench gave up on a client, naming the server's
# error. It can differ from the first error line: pgbench logs a failed PREPARE and goes on, so a
# run can start with "already exists" and abort on "does not exist".
first_abort() {
    grep -m 1 'aborted in command' "$1" || true
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
# Per run, keyed "mode,clients,target,round": TPS (or FAILED), pooler CPU us/transaction (or
# FAILED; pooler targets only) and, for a failed run, why, pgbench's first error line and its
# first client abort line if that is another one.
declare -A TPS CPU WHY ERR ABORT
n_expected_failed=0
n_clients=$(wc -w <<<"$CLIENTS")
total_runs=0
for m in $MODES; do
    for t in "${TARGETS[@]}"; do
        skipped "$t" "$m" || total_runs=$((total_runs + ROUNDS * n_clients))
    done
done
say "running $total_runs pgbench runs of ${DURATION}s each, $ROUNDS rounds (load average before: $LOAD_BEFORE)"

tsv="$OUT_DIR/runs.tsv"
printf 'round\tposition\tmode\tclients\ttarget\ttps\ttransactions\tpooler_cpu_ticks\tpooler_cpu_us_per_txn\tfailure\n' >"$tsv"
RUNS_STARTED=$(date +%s)
run=0
for ((r = 1; r <= ROUNDS; r++)); do
    mapfile -t order < <(round_order "$r")
    for m in $MODES; do
        for c in $CLIENTS; do
            j=$((c < 2 ? c : 2))
            pos=0
            for t in "${order[@]}"; do
                skipped "$t" "$m" && continue
                run=$((run + 1))
                pos=$((pos + 1))
                out="$RUNS_DIR/$m-c$c-$t-r$r.txt"
                pooler_pid=${POOLER_PID[$t]:-}
                ticks_before=
                if [ -n "$pooler_pid" ]; then
                    ticks_before=$(cpu_ticks "$t" "$pooler_pid") || ticks_before=
                fi
                # -T bounds the load; timeout only guards against a hung target.
                if "${PGVARS[@]}" PGPASSWORD="$BENCH_PASSWORD" timeout --kill-after=10 $((DURATION + 60)) \
                    pgbench -n -S -M "$m" -T "$DURATION" -c "$c" -j "$j" -p "$(target_port "$t")" -U bench bench \
                    >"$out" 2>&1; then
                    rc=0
                else
                    rc=$?
                fi
                ticks_after=
                if [ -n "$pooler_pid" ]; then
                    ticks_after=$(cpu_ticks "$t" "$pooler_pid") || ticks_after=
                fi
                tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out" | head -n 1)
                txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n 1)
                key="$m,$c,$t,$r"
                label="[$run/$total_runs] round $r/$ROUNDS $m c=$c $t"
                why=$(run_failure "$out" "$rc")
                if [ -n "$why" ]; then
                    # A known limitation is reported like any failure but does not fail the
                    # script: the other targets' figures are what the run is for.
                    if expected_failure "$t" "$m"; then
                        n_expected_failed=$((n_expected_failed + 1))
                        why="$why; expected"
                    else
                        any_failed=1
                    fi
                    # Its TPS, if pgbench printed one, is shown but counts nowhere.
                    [ -n "$tps" ] && why="$why; pgbench's tps $(fmt "$tps" 1), not counted"
                    TPS[$key]=FAILED
                    [ -n "$pooler_pid" ] && CPU[$key]=FAILED
                    WHY[$key]=$why
                    ERR[$key]=$(first_error "$out")
                    ABORT[$key]=$(first_abort "$out")
                    [ "${ABORT[$key]}" != "${ERR[$key]}" ] || ABORT[$key]=
                    say "$label: FAILED ($why), see $out"
                    say "    ${ERR[$key]}"
                    [ -z "${ABORT[$key]}" ] || say "    ${ABORT[$key]}"
                    printf '%s\t%s\t%s\t%s\t%s\tFAILED\t%s\t\t\t%s: %s%s\n' "$r" "$pos" "$m" "$c" "$t" "${txns:-}" \
                        "$why" "${ERR[$key]//$'\t'/ }" "${ABORT[$key]:+ | ${ABORT[$key]//$'\t'/ }}" >>"$tsv"
                    continue
                fi
                TPS[$key]=$tps
                cpu_note=
                ticks=
                if [ -n "$pooler_pid" ]; then
                    if [ -n "$ticks_before" ] && [ -n "$ticks_after" ]; then
                        ticks=$((ticks_after - ticks_before))
                        CPU[$key]=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$txns" \
                            'BEGIN { printf "%.4f", t * 1000000 / hz / n }')
                        cpu_note=", pooler CPU ${CPU[$key]} us/txn ($ticks ticks)"
                    else
                        any_failed=1
                        CPU[$key]=FAILED
                        cpu_note=", pooler CPU FAILED (cannot read /proc/$pooler_pid/stat as $t)"
                    fi
                fi
                say "$label: $tps tps$cpu_note"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$r" "$pos" "$m" "$c" "$t" "$tps" "$txns" \
                    "$ticks" "${CPU[$key]:-}" >>"$tsv"
            done
        done
    done
done
RUNS_SECONDS=$(($(date +%s) - RUNS_STARTED))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# Bail out early if a server died during the runs: its log tells why.
for pair in "pgwarm:$PGWARM_PID" "pgbouncer:$PGBOUNCER_PID" "haproxy:$HAPROXY_PID"; do
    kill -0 "${pair#*:}" 2>/dev/null || {
        any_failed=1
        say "${pair%%:*} is no longer running at the end of the runs (log in $LOGS_DIR)"
    }
done

# ---- report ------------------------------------------------------------------------------------
# figure TPS|CPU MODE CLIENTS TARGET ROUND: one run's figure, FAILED if it has none. PgBouncer's
# skipped -M prepared runs stand for its -M extended ones.
figure() {
    local key
    key="$(figure_mode "$4" "$2"),$3,$4,$5"
    case "$1" in
        TPS) echo "${TPS[$key]:-FAILED}" ;;
        CPU) echo "${CPU[$key]:-FAILED}" ;;
    esac
}

# figure_mode TARGET MODE: the mode whose runs give TARGET's figures in MODE's table.
figure_mode() {
    if skipped "$1" "$2"; then echo extended; else echo "$2"; fi
}

# summary TPS|CPU MODE CLIENTS TARGET: the median of that cell over the rounds, or "FAILED k/N" if
# k of its N runs failed.
summary() {
    local r v failed=0 vals=()
    for ((r = 1; r <= ROUNDS; r++)); do
        v=$(figure "$1" "$2" "$3" "$4" "$r")
        if [ "$v" = FAILED ]; then
            failed=$((failed + 1))
        else
            vals+=("$v")
        fi
    done
    if [ "$failed" -gt 0 ]; then
        echo "FAILED $failed/$ROUNDS"
    else
        median "${vals[@]}"
    fi
}

# round_ratio_range TPS|CPU MODE CLIENTS NUM DEN: min-max over the rounds of NUM/DEN ("-" if no
# round has both).
round_ratio_range() {
    local r a b vals=()
    for ((r = 1; r <= ROUNDS; r++)); do
        a=$(figure "$1" "$2" "$3" "$4" "$r")
        b=$(figure "$1" "$2" "$3" "$5" "$r")
        [ "$a" != FAILED ] && [ "$b" != FAILED ] && vals+=("$a $b")
    done
    [ "${#vals[@]}" -gt 0 ] || {
        echo "-"
        return 0
    }
    printf '%s\n' "${vals[@]}" | awk '$2 > 0 { x = $1 / $2; if (n == 0 || x < lo) lo = x; if (n == 0 || x > hi) hi = x; n++ }
        END { if (n) printf "%.2f-%.2f", lo, hi; else print "-" }'
}

ratio() {
    case "$1$2" in
        *FAILED* | *-*) echo "-" ;;
        *) awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }' ;;
    esac
}
# ratio_cell TPS|CPU MODE CLIENTS NUM DEN NUM_MEDIAN DEN_MEDIAN: "ratio of the medians (per-round
# range)", or "-" when either median is missing.
ratio_cell() {
    local x
    x=$(ratio "$6" "$7")
    if [ "$x" = - ]; then
        echo "-"
    else
        echo "$x ($(round_ratio_range "$1" "$2" "$3" "$4" "$5"))"
    fi
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git diff-index --quiet HEAD -- 2>/dev/null; then
    commit="$commit (+ uncommitted changes)"
fi
bin_bytes=$(stat -c %s "$PGWARM_BIN")
bin_mib=$(awk -v b="$bin_bytes" 'BEGIN { printf "%.1f", b / 1048576 }')

report="$OUT_DIR/report.txt"
{
    echo "pgwarm benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: $commit   nproc: $(nproc)   pgwarm release binary: $bin_bytes bytes ($bin_mib MiB)"
    echo "pgbench -n -S -M MODE -T $DURATION -c C -j min(C,2), scale $SCALE; modes: $MODES"
    echo "$("$PG_BIN/postgres" --version); $(pgbouncer --version 2>/dev/null | head -n 1); $(haproxy -v 2>/dev/null | head -n 1 | cut -d' ' -f1-3), one thread, mode tcp"
    echo "pool size $POOL_SIZE (pgwarm and PgBouncer, transaction mode); pgwarm extra env: ${PGWARM_PASSTHROUGH:-none}"
    echo "$ROUNDS rounds; in each, per mode and client count, the targets back to back in an order"
    echo "rotating each round ($(round_order 1 | paste -sd, -) first); $total_runs runs took ${RUNS_SECONDS}s"
    echo "load average before: $LOAD_BEFORE   after: $LOAD_AFTER"
    echo
    echo "TPS: median over the $ROUNDS rounds. Ratios: of those medians, (min-max of the per-round ratios)."
    echo "us/txn: the process's CPU time per transaction in µs (utime+stime from /proc/PID/stat around"
    echo "each run, CLK_TCK $CLK_TCK, / transactions processed), median over the rounds. CPU ratios below 1:"
    echo "pgwarm spends less. HAProxy only copies bytes (no pooling): the floor for a relay's CPU."
    echo "FAILED k/N: k of the N runs failed; ratios then show -. Each failed run is listed below its"
    echo "table with pgbench's first error line (and its first client abort line, if another)."
    for m in $MODES; do
        echo
        note=
        skipped pgbouncer "$m" && note=" (PgBouncer: its -M extended figures; it cannot run prepared statements in transaction mode)"
        echo "-M $m$note"
        printf '%7s %10s %10s %10s %10s  %-17s %-17s %-17s\n' clients "direct" "pgwarm" "pgbouncer" \
            "haproxy" pgwarm/direct pgwarm/pgbouncer pgwarm/haproxy
        for c in $CLIENTS; do
            d=$(summary TPS "$m" "$c" direct)
            w=$(summary TPS "$m" "$c" pgwarm)
            b=$(summary TPS "$m" "$c" pgbouncer)
            h=$(summary TPS "$m" "$c" haproxy)
            printf '%7s %10s %10s %10s %10s  %-17s %-17s %-17s\n' "$c" "$(fmt "$d" 0)" "$(fmt "$w" 0)" \
                "$(fmt "$b" 0)" "$(fmt "$h" 0)" "$(ratio_cell TPS "$m" "$c" pgwarm direct "$w" "$d")" \
                "$(ratio_cell TPS "$m" "$c" pgwarm pgbouncer "$w" "$b")" \
                "$(ratio_cell TPS "$m" "$c" pgwarm haproxy "$w" "$h")"
        done
        printf '%7s %10s %10s %10s  %-21s %-21s\n' "us/txn" "pgwarm" "pgbouncer" "haproxy" \
            "CPU pgwarm/pgbouncer" "CPU pgwarm/haproxy"
        for c in $CLIENTS; do
            cw=$(summary CPU "$m" "$c" pgwarm)
            cb=$(summary CPU "$m" "$c" pgbouncer)
            ch=$(summary CPU "$m" "$c" haproxy)
            printf '%7s %10s %10s %10s  %-21s %-21s\n' "c=$c" "$(fmt "$cw" 2)" "$(fmt "$cb" 2)" \
                "$(fmt "$ch" 2)" "$(ratio_cell CPU "$m" "$c" pgwarm pgbouncer "$cw" "$cb")" \
                "$(ratio_cell CPU "$m" "$c" pgwarm haproxy "$cw" "$ch")"
        done
        # The failed runs of this mode, each with why and pgbench's first error line.
        for c in $CLIENTS; do
            for t in "${TARGETS[@]}"; do
                for ((r = 1; r <= ROUNDS; r++)); do
                    key="$m,$c,$t,$r"
                    [ -n "${WHY[$key]:-}" ] || continue
                    echo "  FAILED c=$c $t round $r: ${WHY[$key]}"
                    echo "      ${ERR[$key]}"
                    [ -z "${ABORT[$key]}" ] || echo "      ${ABORT[$key]}"
                done
            done
        done
    done
    if [ "$n_expected_failed" -gt 0 ]; then
        echo
        echo "$n_expected_failed runs failed as expected: PgBouncer before 1.21 (max_prepared_statements) cannot"
        echo "run -M prepared in transaction mode (a client's PREPARE fails with \"already exists\" where"
        echo "another client's statement of that name sits on the server connection, or its EXECUTE with"
        echo "\"does not exist\" where none does)."
    fi
} >"$report"
echo
cat "$report"
echo
say "report written to $report (per-run figures in $tsv)"
"$(dirname "$0")/bench-charts.sh" "$tsv" "$OUT_DIR"

if [ "$any_failed" -ne 0 ]; then
    die "some runs FAILED (see $RUNS_DIR and $LOGS_DIR)"
fi
