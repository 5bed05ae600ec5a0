# shellcheck shell=bash
# Shared pieces of scripts/demo.sh, bench.sh, bench-connect.sh and test.sh: install what is
# missing (apt), build the workspace in release, run a throwaway PostgreSQL cluster, pgwarm and
# PgBouncer on free ports on 127.0.0.1, read a process's CPU time, and stop everything again on
# exit.
#
# Sourcing this file only defines functions and variables. A script sets SCRIPT_NAME (used by
# say/die; defaults to the script's file name), sources this file, and installs its own traps:
#
#   SCRIPT_NAME=demo.sh
#   source "$(dirname "$0")/common.sh"
#   trap 'common_cleanup' EXIT
#
# Everything a function starts or creates is registered with common_on_exit, and
# common_cleanup undoes it in reverse order (processes, then the cluster, then the temp dir).
#
# Variables the functions set:
#   install_missing     PG_BIN (when postgresql is asked for)
#   cargo_build_release TARGET_DIR, RELEASE_DIR (absolute), PGWARM_BIN (absolute); RELEASE_DIR
#                       also holds handler-example and lambda-run (the tests crate's Lambda driver)
#   make_workdir        WORK
#   pg_start_cluster    PG_DATA, PG_PORT, PG_SUPERPASS, PG_LOG
#   pgwarm_start        PGWARM_PORT, PGWARM_PID, PGWARM_PASSTHROUGH
#   pgwarm_passthrough  PGWARM_PASSTHROUGH
#   pgbouncer_start     PGBOUNCER_PID
#   bench_start         OUT_DIR, RUNS_DIR, LOGS_DIR, WORK (and the EXIT/INT/TERM traps)
#   bench_pooler_pids   CLK_TCK, POOLER_PID[pgwarm], POOLER_PID[pgbouncer]

SCRIPT_NAME=${SCRIPT_NAME:-${0##*/}}

say() { echo "$SCRIPT_NAME: $*"; }
die() {
    echo "$SCRIPT_NAME: $*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# Plain psql/pgbench environment for the throwaway cluster: TCP on 127.0.0.1, no TLS (the cluster
# has none), and a bounded connect.
PGVARS=(env PGHOST=127.0.0.1 PGSSLMODE=disable PGCONNECT_TIMEOUT=10)

# ---- cleanup registry --------------------------------------------------------------------------
# Entries are "KIND ARG": pid PID | cluster PG_DATA | dir PATH | call FUNCTION.
COMMON_CLEANUP=()

common_on_exit() { COMMON_CLEANUP+=("$1 $2"); }

# Undoes every registered entry, last registered first. Never fails: it runs from an EXIT trap.
common_cleanup() {
    local i entry kind arg
    for ((i = ${#COMMON_CLEANUP[@]} - 1; i >= 0; i--)); do
        entry=${COMMON_CLEANUP[i]}
        kind=${entry%% *}
        arg=${entry#* }
        case "$kind" in
            pid) stop_pid "$arg" ;;
            cluster) pg_stop_cluster "$arg" ;;
            dir) [ -d "$arg" ] && rm -rf -- "$arg" ;;
            call) "$arg" ;;
        esac || true
    done
    COMMON_CLEANUP=()
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
# checks that their programs are there. Packages: postgresql (server: initdb, pg_ctl; sets
# PG_BIN), postgresql-client (psql, pgbench), pgbouncer, haproxy, openssl (the CLI), python3-pip.
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
            openssl) have openssl || apt_pkgs+=(openssl) ;;
            python3-pip) { have python3 && python3 -m pip --version >/dev/null 2>&1; } || apt_pkgs+=(python3-pip) ;;
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
                PG_BIN=$(pg_bindir) || die "no PostgreSQL server binaries (initdb): install the Debian package postgresql"
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
            openssl)
                have openssl || die "openssl not found after install"
                ;;
        esac
    done
    # initdb, postgres and PgBouncer refuse to run as root; as_pg switches to 'postgres'.
    if is_root && [[ " $* " == *" postgresql "* ]]; then
        id postgres >/dev/null 2>&1 ||
            die "running as root but there is no 'postgres' user (initdb and PgBouncer refuse root): install the Debian package postgresql"
    fi
}

# Run as the `postgres` user when we are root (initdb, postgres and PgBouncer refuse root).
as_pg() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# ---- build -------------------------------------------------------------------------------------
# Builds the whole workspace in release; run from the workspace root.
cargo_build_release() {
    have cargo || die "cargo not found: install Rust (https://rustup.rs)"
    TARGET_DIR=${CARGO_TARGET_DIR:-target}
    # The whole workspace at once: building one package alone re-resolves features and rebuilds
    # dozens of crates (see docs / DESIGN.md).
    say "cargo build --release --workspace"
    cargo build --release --workspace
    [ -x "$TARGET_DIR/release/pgwarm" ] || die "$TARGET_DIR/release/pgwarm was not built"
    RELEASE_DIR=$(cd "$TARGET_DIR/release" && pwd)
    PGWARM_BIN="$RELEASE_DIR/pgwarm"
}

# bench_binary: the pgwarm a benchmark measures: BENCH_PGWARM_BIN when set (the smoke runs of
# scripts/test.sh use the debug build they already have), else a release build. Sets PGWARM_BIN.
bench_binary() {
    if [ -n "${BENCH_PGWARM_BIN:-}" ]; then
        [ -x "$BENCH_PGWARM_BIN" ] || die "BENCH_PGWARM_BIN: $BENCH_PGWARM_BIN is not an executable"
        PGWARM_BIN=$(cd "$(dirname "$BENCH_PGWARM_BIN")" && pwd)/$(basename "$BENCH_PGWARM_BIN")
        TARGET_DIR=${CARGO_TARGET_DIR:-target}
        say "measuring $PGWARM_BIN (BENCH_PGWARM_BIN), not a release build: figures for a smoke run only"
    else
        cargo_build_release
    fi
}

# ---- processes and ports -----------------------------------------------------------------------
# Stops a process: SIGTERM, up to 5 s to exit, then SIGKILL. A pid that is gone is fine.
stop_pid() {
    local pid=$1 _
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

port_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR: sets VAR to a free TCP port on 127.0.0.1, outside the kernel's ephemeral range,
# never the same one twice in this script (so two servers started back to back cannot race for
# one port). It assigns rather than prints: a $(...) subshell would forget the ports given.
COMMON_GIVEN_PORTS=" "
free_port() {
    local var=$1 p _
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        case "$COMMON_GIVEN_PORTS" in *" $p "*) continue ;; esac
        if ! port_listening "$p"; then
            COMMON_GIVEN_PORTS="$COMMON_GIVEN_PORTS$p "
            printf -v "$var" '%s' "$p"
            return 0
        fi
    done
    die "no free TCP port found on 127.0.0.1"
}

# wait_listening NAME PID PORT LOG: wait until PORT listens; fail with the log's tail if PID
# exits first or after 15 s.
wait_listening() {
    local name=$1 pid=$2 port=$3 log=$4 _
    for _ in $(seq 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $name log ($log) ---" >&2
            tail -n 30 "$log" >&2 || true
            die "$name exited before listening on 127.0.0.1:$port"
        fi
        port_listening "$port" && return 0
        sleep 0.1
    done
    echo "--- $name log ($log) ---" >&2
    tail -n 30 "$log" >&2 || true
    die "$name did not listen on 127.0.0.1:$port within 15 s"
}

# make_workdir PREFIX: a fresh temp dir in WORK, removed on cleanup. The `postgres` user must be
# able to reach it when we are root.
make_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    common_on_exit dir "$WORK"
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

# moto_start: starts moto_server (the Secrets Manager emulator) on a free port on 127.0.0.1 and
# exports what an AWS SDK needs to reach it (AWS_ENDPOINT_URL, dummy keys, AWS_REGION). Needs
# WORK. Sets MOTO_PORT.
moto_start() {
    free_port MOTO_PORT
    say "starting moto_server (Secrets Manager emulator) on 127.0.0.1:$MOTO_PORT"
    moto_server -H 127.0.0.1 -p "$MOTO_PORT" </dev/null >"$WORK/moto.log" 2>&1 &
    local pid=$!
    common_on_exit pid "$pid"
    wait_listening moto_server "$pid" "$MOTO_PORT" "$WORK/moto.log"
    export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=testing \
        AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
}

# moto_create_secret NAME JSON: CreateSecret on the emulator (boto3 comes with moto).
moto_create_secret() {
    python3 - "$1" "$2" <<'PY'
import os, sys, boto3
client = boto3.client("secretsmanager", region_name=os.environ["AWS_REGION"],
                      endpoint_url=os.environ["AWS_ENDPOINT_URL"])
client.create_secret(Name=sys.argv[1], SecretString=sys.argv[2])
PY
}

# ---- PostgreSQL --------------------------------------------------------------------------------
# Starts a throwaway cluster in $WORK/data: SCRAM for everyone, 127.0.0.1 only, a free port, no
# Unix socket, durability off (nothing here needs to survive). Needs PG_BIN and WORK. Sets
# PG_DATA, PG_PORT, PG_SUPERPASS (password of the superuser `postgres`) and PG_LOG.
pg_start_cluster() {
    PG_DATA="$WORK/data"
    PG_LOG="$WORK/postgres.log"
    free_port PG_PORT
    PG_SUPERPASS=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    as_pg mkdir -m 700 "$PG_DATA"
    (umask 077 && echo "$PG_SUPERPASS" >"$WORK/pwfile")
    if is_root; then chown postgres: "$WORK/pwfile"; fi
    say "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
    # The slow steps run in ( ) with the redirection outside: a redirection on a function call
    # applies to this shell, so an INT/TERM trap firing meanwhile would print into the log.
    if ! (as_pg "$PG_BIN/initdb" -D "$PG_DATA" --no-sync --auth=scram-sha-256 -U postgres -E UTF8 \
        --locale=C --pwfile="$WORK/pwfile") >"$WORK/initdb.log" 2>&1; then
        cat "$WORK/initdb.log" >&2
        die "initdb failed (if 'postgres' cannot reach $WORK, point TMPDIR somewhere it can traverse)"
    fi
    rm -f "$WORK/pwfile"
    as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<EOF

# $SCRIPT_NAME: throwaway cluster
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
EOF
    as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
# $SCRIPT_NAME: SCRAM for everyone on 127.0.0.1 only
host all all 127.0.0.1/32 scram-sha-256
EOF
    as_pg touch "$PG_LOG"
    common_on_exit cluster "$PG_DATA"
    if ! (as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start) >/dev/null; then
        cat "$PG_LOG" >&2
        die "PostgreSQL did not start"
    fi
}

# pg_stop_cluster [PG_DATA]: immediate stop (the cluster is thrown away anyway).
pg_stop_cluster() {
    local data=${1:-$PG_DATA}
    if [ -n "$data" ] && [ -f "$data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1
    fi
}

# psql_super [PSQL ARGS...]: psql as the superuser on the throwaway cluster, stopping at the
# first error.
psql_super() {
    "${PGVARS[@]}" PGPASSWORD="$PG_SUPERPASS" psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -U postgres "$@"
}

# ---- pgwarm ------------------------------------------------------------------------------------
# pgwarm_passthrough [PGWARM_VAR=VALUE...]: sets PGWARM_PASSTHROUGH to the PGWARM_* variables of
# the caller's environment that the given settings (and PGWARM_LISTEN) do not override, as
# "NAME=VALUE ..." with passwords as ***: what reaches pgwarm from the caller.
pgwarm_passthrough() {
    local fixed=PGWARM_LISTEN setting
    for setting in "$@"; do
        fixed="$fixed|${setting%%=*}"
    done
    PGWARM_PASSTHROUGH=$(env | grep -E '^PGWARM_' | grep -vE "^($fixed)=" |
        sed -E 's/^([A-Z_]*PASSWORD[A-Z_]*)=.*/\1=***/' | sort | tr '\n' ' ' | sed 's/ $//' || true)
}

# pgwarm_start LOG [PGWARM_VAR=VALUE...]: starts $PGWARM_BIN on a free port on 127.0.0.1 with the
# given settings, its output in LOG, and waits until it listens. PGWARM_* variables of the
# caller's environment reach pgwarm too, except the ones given here (see pgwarm_passthrough).
# Sets PGWARM_PORT, PGWARM_PID and PGWARM_PASSTHROUGH.
pgwarm_start() {
    local log=$1
    shift
    free_port PGWARM_PORT
    pgwarm_passthrough "$@"
    say "starting pgwarm on 127.0.0.1:$PGWARM_PORT${PGWARM_PASSTHROUGH:+ (with $PGWARM_PASSTHROUGH)}"
    env PGWARM_LISTEN="127.0.0.1:$PGWARM_PORT" "$@" "$PGWARM_BIN" </dev/null >"$log" 2>&1 &
    PGWARM_PID=$!
    common_on_exit pid "$PGWARM_PID"
    wait_listening pgwarm "$PGWARM_PID" "$PGWARM_PORT" "$log"
}

# ---- PgBouncer ---------------------------------------------------------------------------------
# pgbouncer_start PORT INI LOG [FILE...]: starts PgBouncer with INI (which listens on
# 127.0.0.1:PORT and logs to LOG) and waits until it listens. It runs in the foreground (no -d) as
# a background job of this script, so its errors show in LOG, and as `postgres` when we are root
# (PgBouncer refuses root): INI, LOG and the FILEs it reads (auth_file, TLS key and certificate)
# are handed to that user. Sets PGBOUNCER_PID: setpriv execs PgBouncer directly, so it is
# PgBouncer itself.
pgbouncer_start() {
    local port=$1 ini=$2 log=$3
    shift 3
    touch "$log"
    if is_root; then chown postgres: "$ini" "$log" "$@"; fi
    say "starting PgBouncer ($(pgbouncer --version 2>/dev/null | head -n 1)) on 127.0.0.1:$port"
    if is_root; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- \
            pgbouncer "$ini" </dev/null >>"$log" 2>&1 &
    else
        pgbouncer "$ini" </dev/null >>"$log" 2>&1 &
    fi
    PGBOUNCER_PID=$!
    common_on_exit pid "$PGBOUNCER_PID"
    wait_listening pgbouncer "$PGBOUNCER_PID" "$port" "$log"
}

# ---- process CPU time --------------------------------------------------------------------------
# proc_stat PID: prints "COMM PPID TICKS" from /proc/PID/stat, TICKS being utime+stime (fields 14
# and 15: the whole process, all threads). Fails if there is no such process. COMM is what sits
# between the first "(" and the last ")", so a name holding spaces or parentheses parses too.
proc_stat() {
    local line comm rest f
    read -r line 2>/dev/null <"/proc/$1/stat" || return 1
    comm=${line#*(}
    comm=${comm%)*}
    rest=${line##*) }
    read -r -a f <<<"$rest"
    # f[0] is field 3 (state): field 4 (ppid) is f[1], fields 14 and 15 are f[11] and f[12].
    [[ "${f[11]:-}" =~ ^[0-9]+$ && "${f[12]:-}" =~ ^[0-9]+$ ]] || return 1
    echo "${comm// /_} ${f[1]} $((f[11] + f[12]))"
}

# real_pid NAME PID [PIDFILE]: the pid of the process named NAME (/proc/PID/comm) that PID stands
# for: PID itself if it is NAME, else the pid in PIDFILE, else a descendant of PID (a wrapper such
# as runuser forks rather than execs). Fails if none of them is NAME.
real_pid() {
    local name=$1 pid=$2 pidfile=${3:-} comm ppid _ p d
    local -a cand=("$pid") queue=()
    if [ -n "$pidfile" ] && [ -r "$pidfile" ]; then
        read -r p <"$pidfile" || true
        [[ "${p:-}" =~ ^[0-9]+$ ]] && cand+=("$p")
    fi
    for p in "${cand[@]}"; do
        read -r comm _ _ < <(proc_stat "$p") || continue
        if [ "$comm" = "$name" ]; then
            echo "$p"
            return 0
        fi
    done
    queue=("$pid")
    while [ "${#queue[@]}" -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        for d in /proc/[0-9]*; do
            d=${d#/proc/}
            read -r comm ppid _ < <(proc_stat "$d") || continue
            [ "$ppid" = "$p" ] || continue
            if [ "$comm" = "$name" ]; then
                echo "$d"
                return 0
            fi
            queue+=("$d")
        done
    done
    return 1
}

# cpu_ticks NAME PID: the process's utime+stime in clock ticks; fails if PID is gone or is no
# longer NAME (so a recycled pid cannot be measured by mistake).
cpu_ticks() {
    local comm ticks
    read -r comm _ ticks < <(proc_stat "$2") || return 1
    [ "$comm" = "$1" ] || return 1
    echo "$ticks"
}

# ---- figures -----------------------------------------------------------------------------------
# median VALUES...: the median of the numbers given ("-" if none).
median() {
    [ "$#" -gt 0 ] || {
        echo "-"
        return 0
    }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.6f", m }'
}

# ---- benchmarks (bench.sh, bench-connect.sh) -----------------------------------------------------
# bench_start PREFIX WORKNAME: the benchmark's output folders under $BENCH_OUT_DIR (default
# $TARGET_DIR/bench),
# ${PREFIX}runs (pgbench outputs) and ${PREFIX}logs (the servers' logs, copied there on exit,
# after the servers stopped), emptied first; the traps; and the work dir `WORKNAME.XXXXXX`.
# Sets OUT_DIR, RUNS_DIR, LOGS_DIR (absolute) and WORK.
bench_start() {
    local out=${BENCH_OUT_DIR:-$TARGET_DIR/bench}
    mkdir -p "$out"
    OUT_DIR=$(cd "$out" && pwd)
    RUNS_DIR="$OUT_DIR/${1}runs"
    LOGS_DIR="$OUT_DIR/${1}logs"
    rm -rf "$RUNS_DIR" "$LOGS_DIR"
    mkdir -p "$RUNS_DIR" "$LOGS_DIR"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    make_workdir "$2"
    common_on_exit call bench_save_logs
}

bench_save_logs() {
    local f
    for f in "$WORK/pgwarm.log" "$WORK/pgbouncer.log" "$WORK/postgres.log"; do
        [ -f "$f" ] && cp "$f" "$LOGS_DIR/" 2>/dev/null
    done
    return 0
}

bench_cleanup() {
    local rc=$?
    set +e
    common_cleanup
    if [ "$rc" -ne 0 ]; then
        echo "$SCRIPT_NAME: FAILED (exit $rc); pgbench outputs in $RUNS_DIR, server logs in $LOGS_DIR" >&2
    fi
    exit "$rc"
}

# bench_pooler_pids: the pooler processes whose CPU time a benchmark reads, and the clock tick.
# PgBouncer runs under setpriv (which execs) when we are root: check anyway that the pid is
# PgBouncer itself, not a wrapper. Needs PGWARM_PID, PGBOUNCER_PID, WORK and, when set, HAPROXY_PID.
bench_pooler_pids() {
    CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
    [[ "$CLK_TCK" =~ ^[1-9][0-9]*$ ]] || die "getconf CLK_TCK gave '$CLK_TCK'"
    declare -gA POOLER_PID
    POOLER_PID[pgwarm]=$(real_pid pgwarm "$PGWARM_PID") ||
        die "cannot find the pgwarm process (started as pid $PGWARM_PID)"
    POOLER_PID[pgbouncer]=$(real_pid pgbouncer "$PGBOUNCER_PID" "$WORK/pgbouncer.pid") ||
        die "cannot find the pgbouncer process (started as pid $PGBOUNCER_PID)"
    if [ -n "${HAPROXY_PID:-}" ]; then
        POOLER_PID[haproxy]=$(real_pid haproxy "$HAPROXY_PID") ||
            die "cannot find the haproxy process (started as pid $HAPROXY_PID)"
    fi
    say "measuring CPU of pgwarm pid ${POOLER_PID[pgwarm]}, pgbouncer pid ${POOLER_PID[pgbouncer]}${POOLER_PID[haproxy]:+, haproxy pid ${POOLER_PID[haproxy]}} (CLK_TCK $CLK_TCK)"
}

# target_port TARGET: the port of direct (PostgreSQL), pgwarm, pgbouncer or haproxy.
target_port() {
    case "$1" in
        direct) echo "$PG_PORT" ;;
        pgwarm) echo "$PGWARM_PORT" ;;
        pgbouncer) echo "$PGBOUNCER_PORT" ;;
        haproxy) echo "$HAPROXY_PORT" ;;
    esac
}

# first_error OUT: pgbench's first error line in OUT, "-" if there is none.
first_error() {
    local line
    line=$(grep -m 1 -iE 'error|fatal|abort' "$1" || true)
    echo "${line:--}"
}

# fmt NUMBER DECIMALS: the number rounded, or a FAILED/- marker as it is.
fmt() {
    case "$1" in
        FAILED* | -) echo "$1" ;;
        *) awk -v x="$1" -v d="$2" 'BEGIN { printf "%.*f", d, x }' ;;
    esac
}
