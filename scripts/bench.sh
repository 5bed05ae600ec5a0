#!/usr/bin/env bash
# Benchmark pgwarm against a direct connection and against PgBouncer, with pgbench.
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt: postgresql (server), postgresql-client (psql, pgbench), pgbouncer
# then builds the workspace in release, starts a throwaway PostgreSQL cluster, pgwarm and
# PgBouncer on free ports on 127.0.0.1 (nothing else is touched), runs
#   pgbench -n -S -M MODE -T DURATION -c C -j min(C,2)
# against each target, interleaved per client count (direct, pgwarm, pgbouncer for c=1, then
# the same for c=16) so that drift hits all three alike, prints a report and writes it to
# target/bench/report.txt (pgbench outputs and server logs go next to it). Everything it started
# is stopped and removed on exit.
#
# Environment:
#   BENCH_DURATION  seconds per pgbench run                     (default 10)
#   BENCH_CLIENTS   client counts, space separated              (default "1 16")
#   BENCH_MODES     pgbench -M query modes, space separated     (default "extended")
#   BENCH_SCALE     pgbench -i scale factor                      (default 10)
#   PGWARM_*        passed through to pgwarm (e.g. PGWARM_WORKER_THREADS=2), except the ones the
#                   benchmark fixes: LISTEN, DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (4, the
#                   same as PgBouncer's default_pool_size) and LOG_LEVEL (warn).
#
# Exits non-zero if any pgbench run failed (non-zero exit status or "aborted" in its output);
# such runs show as FAILED in the report.
set -euo pipefail
SCRIPT_NAME=bench.sh
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10}
CLIENTS=${BENCH_CLIENTS:-1 16}
MODES=${BENCH_MODES:-extended}
SCALE=${BENCH_SCALE:-10}
POOL_SIZE=4
TARGETS=(direct pgwarm pgbouncer)
BENCH_PASSWORD=password

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
install_missing postgresql postgresql-client pgbouncer

# ---- build -------------------------------------------------------------------------------------
cargo_build_release

OUT_DIR="$TARGET_DIR/bench"
mkdir -p "$OUT_DIR"
rm -rf "$OUT_DIR/runs" "$OUT_DIR/logs"
mkdir -p "$OUT_DIR/runs" "$OUT_DIR/logs"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

# ---- processes, cleanup ------------------------------------------------------------------------
any_failed=0

# Keep the server logs next to the report: runs before the temp dir is removed, after the
# servers stopped (common_cleanup undoes things in reverse order).
save_logs() {
    local f
    for f in "$WORK/pgwarm.log" "$WORK/pgbouncer.log" "$WORK/postgres.log"; do
        [ -f "$f" ] && cp "$f" "$OUT_DIR/logs/" 2>/dev/null
    done
    return 0
}

cleanup() {
    local rc=$?
    set +e
    common_cleanup
    if [ "$rc" -ne 0 ]; then
        echo "bench.sh: FAILED (exit $rc); pgbench outputs in $OUT_DIR/runs, server logs in $OUT_DIR/logs" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_workdir pgwarm-bench
common_on_exit call save_logs

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
touch "$WORK/pgbouncer.log"
is_root && chown postgres: "$WORK/pgbouncer.ini" "$WORK/userlist.txt" "$WORK/pgbouncer.log"
say "starting PgBouncer ($(pgbouncer --version 2>/dev/null | head -n 1)) on 127.0.0.1:$PGBOUNCER_PORT"
# Foreground (no -d), as a background job of this script, so its errors show in the log. setpriv
# execs PgBouncer directly, so $! is PgBouncer itself.
if is_root; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- \
        pgbouncer "$WORK/pgbouncer.ini" </dev/null >>"$WORK/pgbouncer.log" 2>&1 &
else
    pgbouncer "$WORK/pgbouncer.ini" </dev/null >>"$WORK/pgbouncer.log" 2>&1 &
fi
PGBOUNCER_PID=$!
common_on_exit pid "$PGBOUNCER_PID"
wait_listening pgbouncer "$PGBOUNCER_PID" "$PGBOUNCER_PORT" "$WORK/pgbouncer.log"

target_port() {
    case "$1" in
        direct) echo "$PG_PORT" ;;
        pgwarm) echo "$PGWARM_PORT" ;;
        pgbouncer) echo "$PGBOUNCER_PORT" ;;
    esac
}

# One query through each target before measuring: a broken path fails here, clearly.
for t in "${TARGETS[@]}"; do
    if ! out=$("${PGVARS[@]}" PGPASSWORD="$BENCH_PASSWORD" psql -X -At -p "$(target_port "$t")" -U bench \
        -d bench -c 'SELECT count(*) FROM pgbench_branches' 2>&1) || [ "$out" != "$SCALE" ]; then
        echo "$out" >&2
        die "sanity query through $t (port $(target_port "$t")) failed"
    fi
done

# ---- runs --------------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
declare -A TPS
total_runs=0
for m in $MODES; do
    for c in $CLIENTS; do
        total_runs=$((total_runs + ${#TARGETS[@]}))
    done
done
say "running $total_runs pgbench runs of ${DURATION}s each (load average before: $LOAD_BEFORE)"

run=0
for m in $MODES; do
    for c in $CLIENTS; do
        j=$((c < 2 ? c : 2))
        for t in "${TARGETS[@]}"; do
            run=$((run + 1))
            out="$OUT_DIR/runs/$m-c$c-$t.txt"
            # -T bounds the load; timeout only guards against a hung target.
            if "${PGVARS[@]}" PGPASSWORD="$BENCH_PASSWORD" timeout --kill-after=10 $((DURATION + 60)) \
                pgbench -n -S -M "$m" -T "$DURATION" -c "$c" -j "$j" -p "$(target_port "$t")" -U bench bench \
                >"$out" 2>&1; then
                rc=0
            else
                rc=$?
            fi
            tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out" | head -n 1)
            if [ "$rc" -ne 0 ] || grep -qi aborted "$out" || [ -z "$tps" ]; then
                any_failed=1
                TPS[$m,$c,$t]=FAILED
                say "[$run/$total_runs] $m c=$c $t: FAILED (exit $rc), see $out"
                grep -iE 'error|abort|fatal' "$out" | head -n 3 | sed 's/^/    /' >&2 || true
            else
                TPS[$m,$c,$t]=$tps
                say "[$run/$total_runs] $m c=$c $t: $tps tps"
            fi
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# Bail out early if a server died during the runs: its log tells why.
for pair in "pgwarm:$PGWARM_PID" "pgbouncer:$PGBOUNCER_PID"; do
    kill -0 "${pair#*:}" 2>/dev/null || {
        any_failed=1
        say "${pair%%:*} is no longer running at the end of the runs (log in $OUT_DIR/logs)"
    }
done

# ---- report ------------------------------------------------------------------------------------
ratio() {
    case "$1$2" in
        *FAILED*) echo "-" ;;
        *) awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }' ;;
    esac
}
fmt_tps() {
    case "$1" in
        FAILED) echo FAILED ;;
        *) awk -v x="$1" 'BEGIN { printf "%.1f", x }' ;;
    esac
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
    echo "pgbench -n -S -T $DURATION -c C -j min(C,2), scale $SCALE; $("$PG_BIN/postgres" --version); $(pgbouncer --version 2>/dev/null | head -n 1)"
    echo "pool size $POOL_SIZE (pgwarm and PgBouncer, transaction mode); pgwarm extra env: ${PGWARM_PASSTHROUGH:-none}"
    echo "load average before: $LOAD_BEFORE   after: $LOAD_AFTER"
    echo
    printf '%-9s %7s %12s %12s %14s %14s %17s\n' mode clients "direct TPS" "pgwarm TPS" "pgbouncer TPS" \
        pgwarm/direct pgwarm/pgbouncer
    for m in $MODES; do
        for c in $CLIENTS; do
            d=${TPS[$m,$c,direct]}
            w=${TPS[$m,$c,pgwarm]}
            b=${TPS[$m,$c,pgbouncer]}
            printf '%-9s %7s %12s %12s %14s %14s %17s\n' "$m" "$c" "$(fmt_tps "$d")" "$(fmt_tps "$w")" \
                "$(fmt_tps "$b")" "$(ratio "$w" "$d")" "$(ratio "$w" "$b")"
        done
    done
} >"$report"
echo
cat "$report"
echo
say "report written to $report"

if [ "$any_failed" -ne 0 ]; then
    die "some runs FAILED (see $OUT_DIR/runs and $OUT_DIR/logs)"
fi
