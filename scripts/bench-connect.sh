#!/usr/bin/env bash
# Benchmark the cost of connect + one query + close, what a Lambda handler that connects inside
# the handler pays on every invocation: directly to PostgreSQL, through pgwarm and through
# PgBouncer, each with and without TLS from the client.
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt: postgresql (server), postgresql-client (psql, pgbench), pgbouncer, openssl (the CLI)
# then builds the workspace in release and starts, on free ports on 127.0.0.1 (nothing else is
# touched):
#   - a throwaway PostgreSQL cluster: SCRAM (password_encryption = scram-sha-256, scram-sha-256
#     for 127.0.0.1 in pg_hba.conf), ssl = on with a self-signed P-256 certificate made with
#     `openssl req`, a role and database `bench`, `pgbench -i -s 1`;
#   - pgwarm with PGWARM_SSLMODE=require (its pooled server connections use TLS), pool size 2 and
#     client TLS on (it answers SSLRequest with 'S' and serves the self-signed certificate it
#     makes at start-up);
#   - PgBouncer in transaction mode, pool size 2, auth_type scram-sha-256 with the role's SCRAM
#     secret (from pg_authid) in its auth_file, server_tls_sslmode = require, client_tls_sslmode =
#     allow with another openssl-made self-signed certificate, and log_connections/
#     log_disconnections off (pgwarm does not log connections either).
# It checks that every target answers a query with and without TLS and that the poolers' server
# connections use TLS (pg_stat_ssl), then runs, for each of six cases,
#   pgbench -n -C -S -c 1 -j 1 -T DURATION      (-C: a new connection for every transaction)
# with libpq's PGSSLMODE set per case (PGGSSENCMODE=disable throughout):
#   direct-tls       sslmode=require  TCP + TLS + SCRAM + a forked backend: no pooler
#   direct-plain     sslmode=disable  TCP + SCRAM + a forked backend
#   pgwarm-tls       sslmode=require  TCP + TLS to pgwarm; a pooled TLS server connection
#   pgwarm-plain     sslmode=disable  TCP to pgwarm
#   pgbouncer-tls    sslmode=require  TCP + TLS + SCRAM to PgBouncer; a pooled TLS server connection
#   pgbouncer-plain  sslmode=disable  TCP + SCRAM to PgBouncer
# BENCH_ROUNDS times. The six cases run back to back and their order rotates by one target (two
# cases) from round to round (direct first, then pgwarm first, then pgbouncer first, ...) so that
# drift and position effects hit them all alike.
#
# Per run it records pgbench's TPS (with -C it counts connect + query + close per second),
# "latency average" and "average connection time" (connect only: TCP, TLS, startup,
# authentication, until ReadyForQuery), and for the pooler cases the pooler's own CPU time per
# connection: utime+stime of the pooler process (all its threads; /proc/PID/stat fields 14 and
# 15, in clock ticks of `getconf CLK_TCK`) just before and just after the run, divided by
# pgbench's "number of transactions actually processed" (one connection each). It also records
# pgbench's own CPU time per connection (user+sys from bash's `time`): the handler's side of the
# cost, where libpq's SCRAM and TLS work is spent.
#
# The report gives per case the median over the rounds of the time per connect + query + close,
# 1000 / TPS in ms (with one client it is pgbench's "latency average"), with the min-max over
# the rounds, the medians of the connection time, the connections per second, and the pooler's
# and pgbench's CPU µs per connection; then ratios of the medians of the time per connection (per-round
# min-max in brackets): direct-tls / pgwarm-tls, direct-tls / pgwarm-plain, pgbouncer-tls /
# pgwarm-tls, pgbouncer-plain / pgwarm-plain and pgwarm-tls / pgwarm-plain (what the local TLS
# handshake costs). It is printed and written to target/bench/connect-report.txt; every run's
# figures go to target/bench/connect-runs.tsv, pgbench outputs to target/bench/connect-runs/ and
# server logs to target/bench/connect-logs/. Everything it started is stopped and removed on exit.
#
# Note that by default pgwarm's clients do not authenticate (pgwarm listens on loopback and
# accepts any user), while PgBouncer's and the database's run SCRAM, whose client side (PBKDF2,
# 4096 rounds, in libpq) pgbench pays on every connection. PGWARM_CLIENT_PASSWORD=password (the
# benchmark's password) makes pgwarm's clients log in with SCRAM too. With the SCRAM secret in
# its auth_file PgBouncer checks a login with a few HMACs and logs in to the server with the
# client's key; with the plain password there (BENCH_PGBOUNCER_SECRET=plain, what bench.sh
# does) it runs PBKDF2 itself on every client login.
#
# Environment:
#   BENCH_ROUNDS    rounds (each runs the six cases once)  (default 3)
#   BENCH_DURATION  seconds per pgbench run                (default 5)
#   BENCH_PGBOUNCER_SECRET  what PgBouncer's auth_file holds: verifier (the SCRAM secret) or
#                   plain (the password)                   (default verifier)
#   BENCH_PGWARM_BIN  a pgwarm binary to measure instead of a release build (smoke runs)
#   BENCH_OUT_DIR   where the report, runs and logs go                 (default target/bench)
#   PGWARM_*        passed through to pgwarm (e.g. PGWARM_CLIENT_PASSWORD=password,
#                   PGWARM_WORKER_THREADS=2), except the ones the benchmark fixes: LISTEN,
#                   DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (2, the same as PgBouncer's
#                   default_pool_size), SSLMODE (require), CLIENT_TLS (on) and LOG_LEVEL (warn).
# Runs: ROUNDS x 6 cases, each DURATION s; the defaults make 18 runs of 5 s, about 2 minutes with
# setup (plus the build).
#
# A pgbench run succeeds only if it exits 0, has no "aborted" in its output, reports
# "number of failed transactions: 0", prints no "pgbench: error:" line, and reports a TPS, a
# latency average, a connection time and a non-zero transaction count. Any other run counts as
# FAILED: the report marks the figures it belongs to FAILED and quotes its first error line, and
# the script exits non-zero, as it does if a pooler's CPU time could not be read or a server is
# gone at the end.
set -euo pipefail
SCRIPT_NAME=bench-connect.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-5}
PGBOUNCER_SECRET=${BENCH_PGBOUNCER_SECRET:-verifier}
SCALE=1
POOL_SIZE=2
CASES=(direct-tls direct-plain pgwarm-tls pgwarm-plain pgbouncer-tls pgbouncer-plain)
BENCH_PASSWORD=password

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a positive integer (seconds), got '$DURATION'"
case "$PGBOUNCER_SECRET" in
    verifier | plain) ;;
    *) die "BENCH_PGBOUNCER_SECRET must be verifier or plain, got '$PGBOUNCER_SECRET'" ;;
esac

# case_target CASE: direct, pgwarm or pgbouncer. case_sslmode CASE: libpq's sslmode for it.
case_target() { echo "${1%-*}"; }
case_sslmode() {
    case "$1" in
        *-tls) echo require ;;
        *-plain) echo disable ;;
    esac
}

# ---- install what is missing (apt) -------------------------------------------------------------
install_missing postgresql postgresql-client pgbouncer openssl

# ---- build -------------------------------------------------------------------------------------
bench_binary

# ---- output folders, clean-up, work dir -------------------------------------------------------
bench_start "connect-" pgwarm-bench-connect
any_failed=0

# make_cert NAME: a self-signed P-256 certificate for CN=localhost, valid 2 days, in
# $WORK/NAME.crt with its key in $WORK/NAME.key (mode 600; owned by `postgres` when we are root,
# as PostgreSQL and PgBouncer run as that user then).
make_cert() {
    if ! (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=localhost -days 2 -keyout "$WORK/$1.key" -out "$WORK/$1.crt") >"$WORK/openssl-$1.log" 2>&1; then
        cat "$WORK/openssl-$1.log" >&2
        die "openssl req (certificate for $1) failed"
    fi
    chmod 644 "$WORK/$1.crt"
    if is_root; then chown postgres: "$WORK/$1.key" "$WORK/$1.crt"; fi
}

# client_env SSLMODE: the environment of psql and pgbench as the `bench` user with that sslmode.
client_env() {
    CLIENT_ENV=("${PGVARS[@]}" PGSSLMODE="$1" PGGSSENCMODE=disable PGPASSWORD="$BENCH_PASSWORD")
}

# ---- PostgreSQL --------------------------------------------------------------------------------
pg_start_cluster
make_cert postgres
# ssl and its files take effect on a reload; the poll below waits until new connections get TLS.
psql_super -d postgres >/dev/null <<EOF
ALTER SYSTEM SET ssl_cert_file = '$WORK/postgres.crt';
ALTER SYSTEM SET ssl_key_file = '$WORK/postgres.key';
ALTER SYSTEM SET ssl = on;
SELECT pg_reload_conf();
CREATE ROLE bench LOGIN PASSWORD '$BENCH_PASSWORD';
CREATE DATABASE bench OWNER bench;
EOF
client_env require
ssl_ready=
for _ in $(seq 50); do
    if "${CLIENT_ENV[@]}" psql -X -At -p "$PG_PORT" -U bench -d bench -c 'SELECT 1' >/dev/null 2>&1; then
        ssl_ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ssl_ready" ]; then
    tail -n 30 "$PG_LOG" >&2
    die "PostgreSQL does not accept TLS connections 5 s after ssl = on and a reload"
fi
say "pgbench -i -s $SCALE"
client_env disable
if ! "${CLIENT_ENV[@]}" pgbench -i -q -s "$SCALE" -p "$PG_PORT" -U bench bench >"$WORK/pgbench-init.log" 2>&1; then
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
    PGWARM_SSLMODE=require \
    PGWARM_CLIENT_TLS=on \
    PGWARM_LOG_LEVEL=warn

# ---- PgBouncer ---------------------------------------------------------------------------------
make_cert pgbouncer
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
server_tls_sslmode = require
client_tls_sslmode = allow
client_tls_key_file = $WORK/pgbouncer.key
client_tls_cert_file = $WORK/pgbouncer.crt
log_connections = 0
log_disconnections = 0
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
EOF
if [ "$PGBOUNCER_SECRET" = verifier ]; then
    secret=$(psql_super -d postgres -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'")
    [[ "$secret" == SCRAM-SHA-256\$* ]] || die "the role bench has no SCRAM secret in pg_authid"
else
    secret=$BENCH_PASSWORD
fi
(umask 077 && echo "\"bench\" \"$secret\"" >"$WORK/userlist.txt")
pgbouncer_start "$PGBOUNCER_PORT" "$WORK/pgbouncer.ini" "$WORK/pgbouncer.log" "$WORK/userlist.txt"

# One query through each case before measuring: a broken path fails here, clearly. It also opens
# the poolers' first server connections.
for c in "${CASES[@]}"; do
    t=$(case_target "$c")
    client_env "$(case_sslmode "$c")"
    if ! out=$("${CLIENT_ENV[@]}" psql -X -At -p "$(target_port "$t")" -U bench -d bench \
        -c 'SELECT count(*) FROM pgbench_branches' 2>&1) || [ "$out" != "$SCALE" ]; then
        echo "$out" >&2
        die "sanity query, $c (port $(target_port "$t"), sslmode $(case_sslmode "$c")), failed"
    fi
done

# The poolers' server connections must use TLS: every backend of `bench` still open now is one.
read -r n_server n_plain server_tls < <(psql_super -d postgres -At -F ' ' -c "
    SELECT count(*), count(*) FILTER (WHERE NOT s.ssl),
           coalesce(string_agg(DISTINCT s.version || '/' || s.cipher, ','), '-')
    FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'bench'")
[ "$n_server" -ge 2 ] || die "expected the poolers' server connections in pg_stat_activity, found $n_server"
[ "$n_plain" -eq 0 ] || die "$n_plain of the poolers' $n_server server connections do not use TLS"
say "the poolers' $n_server server connections use TLS ($server_tls)"

# tls_summary PORT: the TLS version, cipher and server key that `openssl s_client` gets from the
# PostgreSQL-protocol server on PORT (SSLRequest first), for the report.
tls_summary() {
    local out session key
    out=$(timeout 10 openssl s_client -starttls postgres -connect "127.0.0.1:$1" </dev/null 2>/dev/null || true)
    session=$(sed -n 's/^New, \([^,]*\), Cipher is \(.*\)/\1 \2/p' <<<"$out" | head -n 1)
    key=$(sed -n 's/^Peer signature type: //p' <<<"$out" | head -n 1)
    echo "${session:-?}, ${key:-?} $(sed -n 's/^Server public key is //p' <<<"$out" | head -n 1)"
}
declare -A CLIENT_TLS
for t in direct pgwarm pgbouncer; do
    CLIENT_TLS[$t]=$(tls_summary "$(target_port "$t")")
done

# ---- pooler CPU time ---------------------------------------------------------------------------
bench_pooler_pids

# ---- runs --------------------------------------------------------------------------------------
# round_order R: the cases in the order of round R (1-based), rotated by R-1 targets (2 cases).
round_order() {
    local r=$1 n=${#CASES[@]} i
    for ((i = 0; i < n; i++)); do
        echo "${CASES[(i + 2 * (r - 1)) % n]}"
    done
}

# pgbench_figure OUT NAME: one figure of pgbench's summary in OUT: tps, latency (average, ms),
# connect (average connection time, ms), txns (transactions processed) or failed (failed
# transactions). Nothing if it is not there.
pgbench_figure() {
    local re
    case "$2" in
        tps) re='^tps = \([0-9.]*\) .*' ;;
        latency) re='^latency average = \([0-9.]*\) ms.*' ;;
        connect) re='^average connection time = \([0-9.]*\) ms.*' ;;
        txns) re='^number of transactions actually processed: \([0-9]*\).*' ;;
        failed) re='^number of failed transactions: \([0-9]*\).*' ;;
    esac
    sed -n "s/$re/\1/p" "$1" | head -n 1
}

# run_failure OUT RC: why the pgbench run whose output is OUT and exit status RC failed, or
# nothing if it succeeded (see the header).
run_failure() {
    local out=$1 rc=$2 failed errors reasons=() f
    failed=$(pgbench_figure "$out" failed)
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
    for f in tps latency connect; do
        [ -n "$(pgbench_figure "$out" "$f")" ] || reasons+=("no $f figure")
    done
    f=$(pgbench_figure "$out" txns)
    if [ -z "$f" ] || [ "$f" -eq 0 ]; then reasons+=("no transactions"); fi
    [ "${#reasons[@]}" -eq 0 ] && return 0
    printf '%s, ' "${reasons[@]}" | sed 's/, $//'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
TIMEFORMAT='%3U %3S'
# Per run, keyed "case,round": MS (1000/TPS, or FAILED), TPS, LAT (latency average), CONN
# (average connection time), CPU (pooler CPU us/connection, or FAILED; pooler cases only) and,
# for a failed run, why and pgbench's first error line.
declare -A MS TPS LAT CONN CPU CLIENT_CPU WHY ERR
n_failed=0
total_runs=$((ROUNDS * ${#CASES[@]}))
say "running $total_runs pgbench -C runs of ${DURATION}s each, $ROUNDS rounds (load average before: $LOAD_BEFORE)"

tsv="$OUT_DIR/connect-runs.tsv"
printf 'round\tposition\tcase\ttarget\tsslmode\ttps\tms_per_connection\tlatency_average_ms\tconnection_time_ms\ttransactions\tpgbench_cpu_us_per_connection\tpooler_cpu_ticks\tpooler_cpu_us_per_connection\tfailure\n' >"$tsv"
RUNS_STARTED=$(date +%s)
run=0
for ((r = 1; r <= ROUNDS; r++)); do
    mapfile -t order < <(round_order "$r")
    pos=0
    for c in "${order[@]}"; do
        run=$((run + 1))
        pos=$((pos + 1))
        t=$(case_target "$c")
        mode=$(case_sslmode "$c")
        out="$RUNS_DIR/$c-r$r.txt"
        pooler_pid=${POOLER_PID[$t]:-}
        ticks_before=
        if [ -n "$pooler_pid" ]; then
            ticks_before=$(cpu_ticks "$t" "$pooler_pid") || ticks_before=
        fi
        client_env "$mode"
        # -T bounds the load; timeout only guards against a hung target. `time` gives the user and
        # system CPU seconds of pgbench (and the timeout process around it).
        if { time "${CLIENT_ENV[@]}" timeout --kill-after=10 $((DURATION + 60)) \
            pgbench -n -C -S -c 1 -j 1 -T "$DURATION" -p "$(target_port "$t")" -U bench bench \
            >"$out" 2>&1; } 2>"$WORK/time.txt"; then
            rc=0
        else
            rc=$?
        fi
        ticks_after=
        if [ -n "$pooler_pid" ]; then
            ticks_after=$(cpu_ticks "$t" "$pooler_pid") || ticks_after=
        fi
        key="$c,$r"
        label="[$run/$total_runs] round $r/$ROUNDS $c (sslmode=$mode)"
        why=$(run_failure "$out" "$rc")
        txns=$(pgbench_figure "$out" txns)
        if [ -n "$why" ]; then
            any_failed=1
            n_failed=$((n_failed + 1))
            MS[$key]=FAILED
            [ -n "$pooler_pid" ] && CPU[$key]=FAILED
            WHY[$key]=$why
            ERR[$key]=$(first_error "$out")
            say "$label: FAILED ($why), see $out"
            say "    ${ERR[$key]}"
            printf '%s\t%s\t%s\t%s\t%s\tFAILED\t\t\t\t%s\t\t\t\t%s: %s\n' "$r" "$pos" "$c" "$t" "$mode" "${txns:-}" \
                "$why" "${ERR[$key]//$'\t'/ }" >>"$tsv"
            continue
        fi
        TPS[$key]=$(pgbench_figure "$out" tps)
        LAT[$key]=$(pgbench_figure "$out" latency)
        CONN[$key]=$(pgbench_figure "$out" connect)
        MS[$key]=$(awk -v t="${TPS[$key]}" 'BEGIN { printf "%.6f", 1000 / t }')
        client_cpu=$(tail -n 1 "$WORK/time.txt")
        if [[ "$client_cpu" =~ ^[0-9.]+\ [0-9.]+$ ]]; then
            CLIENT_CPU[$key]=$(awk -v u="${client_cpu% *}" -v s="${client_cpu#* }" -v n="$txns" \
                'BEGIN { printf "%.4f", (u + s) * 1000000 / n }')
        else
            any_failed=1
            CLIENT_CPU[$key]=FAILED
        fi
        cpu_note=
        ticks=
        if [ -n "$pooler_pid" ]; then
            if [ -n "$ticks_before" ] && [ -n "$ticks_after" ]; then
                ticks=$((ticks_after - ticks_before))
                CPU[$key]=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$txns" \
                    'BEGIN { printf "%.4f", t * 1000000 / hz / n }')
                cpu_note=", $t CPU ${CPU[$key]} us/conn ($ticks ticks)"
            else
                any_failed=1
                CPU[$key]=FAILED
                cpu_note=", $t CPU FAILED (cannot read /proc/$pooler_pid/stat)"
            fi
        fi
        say "$label: $(fmt "${MS[$key]}" 3) ms/conn (${TPS[$key]} conn/s), connect ${CONN[$key]} ms," \
            "pgbench CPU $(fmt "${CLIENT_CPU[$key]}" 1) us/conn$cpu_note"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$r" "$pos" "$c" "$t" "$mode" "${TPS[$key]}" \
            "${MS[$key]}" "${LAT[$key]}" "${CONN[$key]}" "$txns" "${CLIENT_CPU[$key]}" "$ticks" "${CPU[$key]:-}" >>"$tsv"
    done
done
RUNS_SECONDS=$(($(date +%s) - RUNS_STARTED))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# A server that died during the runs fails the benchmark: its log tells why.
for pair in "pgwarm:$PGWARM_PID" "pgbouncer:$PGBOUNCER_PID"; do
    kill -0 "${pair#*:}" 2>/dev/null || {
        any_failed=1
        say "${pair%%:*} is no longer running at the end of the runs (log in $LOGS_DIR)"
    }
done

# ---- report ------------------------------------------------------------------------------------
# summary MS|TPS|LAT|CONN|CPU CASE: the median of that figure over the rounds, or "FAILED k/N" if
# k of its N runs failed.
summary() {
    local -n figures=$1
    local r v failed=0 vals=()
    for ((r = 1; r <= ROUNDS; r++)); do
        v=${figures[$2,$r]:-FAILED}
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

# range CASE: min-max over the rounds of its ms per connection ("-" if a run failed).
range() {
    local r vals=()
    for ((r = 1; r <= ROUNDS; r++)); do
        vals+=("${MS[$1,$r]:-FAILED}")
    done
    case " ${vals[*]} " in *" FAILED "*)
        echo "-"
        return 0
        ;;
    esac
    printf '%s\n' "${vals[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'
}

# ratio_cell NUM DEN: the ratio of the two cases' median ms per connection and, in brackets, the
# min-max of the per-round ratios; "-" if a run of either failed.
ratio_cell() {
    local a b r lo_hi
    a=$(summary MS "$1")
    b=$(summary MS "$2")
    case "$a$b" in *FAILED*)
        echo "-"
        return 0
        ;;
    esac
    lo_hi=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${MS[$1,$r]} ${MS[$2,$r]}"; done |
        awk '{ x = $1 / $2; if (NR == 1 || x < lo) lo = x; if (NR == 1 || x > hi) hi = x }
            END { printf "%.2f-%.2f", lo, hi }')
    awk -v a="$a" -v b="$b" -v r="$lo_hi" 'BEGIN { printf "%.2f (%s)", a / b, r }'
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git diff-index --quiet HEAD -- 2>/dev/null; then
    commit="$commit (+ uncommitted changes)"
fi
bin_bytes=$(stat -c %s "$PGWARM_BIN")
bin_sum=$(sha256sum "$PGWARM_BIN" | cut -c1-12)
if [ -n "${PGWARM_CLIENT_PASSWORD:-}" ]; then
    pgwarm_auth="SCRAM (PGWARM_CLIENT_PASSWORD set)"
else
    pgwarm_auth="none (PGWARM_CLIENT_PASSWORD unset: any user is accepted)"
fi

report="$OUT_DIR/connect-report.txt"
{
    echo "pgwarm connect benchmark (connect + one query + close), $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit: $commit   nproc: $(nproc)   pgwarm release binary: $bin_bytes bytes, sha256 $bin_sum..."
    echo "pgbench -n -C -S -c 1 -j 1 -T $DURATION, scale $SCALE; PGSSLMODE per case, PGGSSENCMODE=disable"
    echo "$("$PG_BIN/postgres" --version): ssl = on (self-signed P-256), SCRAM; $(pgbouncer --version 2>/dev/null | head -n 1)"
    echo "pgwarm: PGWARM_SSLMODE=require, pool size $POOL_SIZE, client TLS on (its own self-signed certificate),"
    echo "  client auth $pgwarm_auth; extra env: ${PGWARM_PASSTHROUGH:-none}"
    if [ "$PGBOUNCER_SECRET" = verifier ]; then
        pgbouncer_auth="auth_file holds the role's SCRAM secret"
    else
        pgbouncer_auth="auth_file holds the plain password (PBKDF2 on every login)"
    fi
    echo "PgBouncer: transaction mode, pool size $POOL_SIZE, auth_type scram-sha-256, $pgbouncer_auth,"
    echo "  server_tls_sslmode = require, client_tls_sslmode = allow (self-signed P-256), log_connections = 0"
    echo "client TLS as openssl s_client sees it:"
    for t in direct pgwarm pgbouncer; do
        printf '  %-10s %s\n' "$t" "${CLIENT_TLS[$t]}"
    done
    echo "the poolers' server connections: TLS ($server_tls)"
    echo "$ROUNDS rounds of ${#CASES[@]} runs back to back, the order rotating by one target each round"
    echo "($(round_order 1 | paste -sd, -) first); $total_runs runs took ${RUNS_SECONDS}s"
    echo "load average before: $LOAD_BEFORE   after: $LOAD_AFTER"
    echo
    echo "ms/conn: time per connect + query + close, 1000 / TPS (pgbench -C's TPS includes the"
    echo "  connections; with one client it equals pgbench's \"latency average\"), median over the rounds"
    echo "  and min-max. connect ms: pgbench's \"average connection time\" (TCP, TLS, startup, auth, up to"
    echo "  ReadyForQuery), median. conn/s: TPS, median. pooler CPU: the pooler process's utime+stime"
    echo "  (/proc/PID/stat, CLK_TCK $CLK_TCK) per connection in µs, median. pgbench CPU: the same for the"
    echo "  client (user+sys of pgbench, from bash's time): what the handler's side of a connection costs."
    echo "  FAILED k/N: k of the N runs failed."
    echo
    printf '%-16s %-8s %8s %-15s %10s %8s %16s %17s\n' case sslmode ms/conn "(min-max)" "connect ms" conn/s \
        "pooler CPU µs" "pgbench CPU µs"
    for c in "${CASES[@]}"; do
        cpu=-
        [ "$(case_target "$c")" = direct ] || cpu=$(fmt "$(summary CPU "$c")" 1)
        printf '%-16s %-8s %8s %-15s %10s %8s %15s %16s\n' "$c" "$(case_sslmode "$c")" \
            "$(fmt "$(summary MS "$c")" 3)" "($(range "$c"))" "$(fmt "$(summary CONN "$c")" 3)" \
            "$(fmt "$(summary TPS "$c")" 0)" "$cpu" "$(fmt "$(summary CLIENT_CPU "$c")" 1)"
    done
    echo
    echo "ratios of the median ms/conn (min-max of the per-round ratios); > 1: the second is faster"
    printf '  %-38s %s\n' "direct-tls / pgwarm-tls" "$(ratio_cell direct-tls pgwarm-tls)"
    printf '  %-38s %s\n' "direct-tls / pgwarm-plain" "$(ratio_cell direct-tls pgwarm-plain)"
    printf '  %-38s %s\n' "pgbouncer-tls / pgwarm-tls" "$(ratio_cell pgbouncer-tls pgwarm-tls)"
    printf '  %-38s %s\n' "pgbouncer-plain / pgwarm-plain" "$(ratio_cell pgbouncer-plain pgwarm-plain)"
    printf '  %-38s %s\n' "pgwarm-tls / pgwarm-plain (TLS cost)" "$(ratio_cell pgwarm-tls pgwarm-plain)"
    if [ "$n_failed" -gt 0 ]; then
        echo
        for c in "${CASES[@]}"; do
            for ((r = 1; r <= ROUNDS; r++)); do
                [ -n "${WHY[$c,$r]:-}" ] || continue
                echo "FAILED $c round $r: ${WHY[$c,$r]}"
                echo "    ${ERR[$c,$r]}"
            done
        done
    fi
} >"$report"
echo
cat "$report"
echo
say "report written to $report (per-run figures in $tsv)"

if [ "$any_failed" -ne 0 ]; then
    die "some runs FAILED or a measurement is missing (see $RUNS_DIR and $LOGS_DIR)"
fi
