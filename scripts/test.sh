#!/usr/bin/env bash
# Run every check of the workspace: formatting, clippy, shellcheck, the SAM template's linters,
# build, all tests (unit + end-to-end against a real PostgreSQL, PgBouncer and moto_server), the
# benchmarks and the fuzz targets for a few seconds each, and the deployment path: the Lambda
# layer for x86_64 and arm64, run from its zip, and `sam build` of template.yaml (no Docker)
# with its artifacts checked.
#
# On a fresh Debian/Ubuntu machine it first installs what is missing, one line per install:
#   apt:    postgresql (server), postgresql-client (psql, pgbench), pgbouncer, haproxy (bench.sh's
#           plain TCP relay), shellcheck, make,
#           libpostgresql-jdbc-java and default-jdk-headless (pgJDBC and javac, for the JDBC test),
#           zip, unzip, binutils (readelf), qemu-user (runs the arm64 pgwarm on x86_64),
#           prometheus-pgbouncer-exporter (a real reader of the admin console), gnuplot-nox
#           (bench.sh's charts), nodejs and npm (bench-lambda.sh's Node.js handler)
#   npm:    pg (node-postgres, pinned; bench-lambda.sh installs it under the target folder)
#   pip:    moto[server] (moto_server, the Secrets Manager emulator), aws-sam-cli (sam),
#           cfn-lint, cargo-lambda with ziglang (cross-compiles the layer and the function),
#           psycopg[binary] (a real driver for the fidelity tests)
#   rustup: rustfmt, clippy; the targets x86_64- and aarch64-unknown-linux-musl (the layer) and
#           aarch64-unknown-linux-gnu (the arm64 function that sam build makes)
#   cargo:  cargo-fuzz (scripts/fuzz.sh, with the nightly toolchain this machine has)
# When everything is already there it installs nothing and goes straight to the checks. A tool
# that is missing and cannot be installed stops the run with a message saying what to install.
# The builds only the later checks need (fuzz targets, layers, sam build) run in the background
# from the start, in the idle scheduling class, on the CPU the other checks leave idle; their
# output is shown when test.sh waits for them.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
background_pid=
finish() {
    local rc=$?
    # The background builds (below) end with test.sh, whole process group.
    [ -z "$background_pid" ] || kill -- "-$background_pid" 2>/dev/null || true
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
# shellcheck source=scripts/layer-common.sh
source scripts/layer-common.sh

# Also look where pip puts programs that are not always on PATH.
export PATH="$PATH:$HOME/.local/bin"

have_pip() { have python3 && python3 -m pip --version >/dev/null 2>&1; }

# ---- apt ---------------------------------------------------------------------------------------
# The tests start their own clusters and PgBouncers on free ports; install_missing also stops the
# services Debian starts on install, so nothing lingers on pgwarm's default port.
apt_wants=(postgresql postgresql-client pgbouncer haproxy pgjdbc nodejs)
if ! { have moto_server && have sam && have cfn-lint && have cargo-lambda &&
    python3 -c 'import psycopg' 2>/dev/null; } && ! have_pip; then
    apt_wants+=(python3-pip)
fi
install_missing "${apt_wants[@]}"
apt_install_commands shellcheck=shellcheck make=make zip=zip unzip=unzip readelf=binutils gnuplot=gnuplot-nox \
    prometheus-pgbouncer-exporter=prometheus-pgbouncer-exporter
if [ "$(host_arch)" = x86_64 ]; then
    apt_install_commands qemu-aarch64=qemu-user
else
    apt_install_commands qemu-x86_64=qemu-user
fi

# ---- pip ---------------------------------------------------------------------------------------
pip_install_missing moto_server 'moto[server]'
pip_install_missing sam aws-sam-cli
pip_install_missing cfn-lint cfn-lint
# psycopg 3 with its own libpq (17+, whose cancel API speaks TLS): the fidelity tests' driver.
pip_install_module psycopg 'psycopg[binary]'
install_cargo_lambda
# SAM CLI: no usage reports (this machine may have no route to them).
export SAM_CLI_TELEMETRY=0

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
for arch in "${LAYER_ARCHES[@]}"; do
    add_rust_target "$(rust_target "$arch")"
done
# sam build's rust-cargolambda builder makes the arm64 function for aarch64-unknown-linux-gnu.
add_rust_target aarch64-unknown-linux-gnu

# ---- checks ------------------------------------------------------------------------------------
step() {
    echo "==> $*"
    "$@"
}
# described_step WHAT COMMAND...: says what the step checks, runs it, and prints its time.
described_step() {
    local what=$1 t0
    shift
    echo "==> $what: $*"
    t0=$(date +%s)
    "$@"
    echo "    ($(($(date +%s) - t0))s)"
}
# ---- the other builds, in the background from the start ----------------------------------------
# The fuzz targets, the two layers and sam build's two functions compile the dependencies five
# more times (nightly with coverage, two musl targets, two glibc ones): on a fresh machine, as
# long as everything else together. They start before the checks in the idle scheduling class,
# so they take only the CPU the rest leaves idle: a core while cargo waits on one crate or one
# link, and much of both while the tests wait on PostgreSQL, pgbench and timers. None of them
# builds into target/debug, so cargo's lock on it never makes clippy, the build or the tests
# wait. Their output goes to a log that is shown where test.sh waits for them.
background_log=target/test-background.log
background_builds() {
    local arch
    described_step "the fuzz targets build (nightly, coverage, no optimizations)" \
        scripts/fuzz.sh --build-only --dev --no-sanitizer
    described_step "release build of the layer for x86_64 and arm64 (static musl, cargo lambda + zig)" \
        scripts/build-layer.sh all
    # sam build resolves template.yaml with its defaults (Architecture x86_64), then arm64: both
    # layer resources each time (make -> build-layer.sh, warm by now) and the function for that
    # architecture (rust-cargolambda). Output under target/sam, not .aws-sam.
    for arch in "${LAYER_ARCHES[@]}"; do
        described_step "sam build of template.yaml for $arch, without Docker" \
            sam build --template-file template.yaml --build-dir "target/sam/build-$arch" \
            --cache-dir target/sam/cache --parameter-overrides "Architecture=$arch"
    done
}
# Job control for this one job: it gets a process group of its own, so an early exit of
# test.sh stops all of it (cargo, rustc, sam; see finish).
mkdir -p target
set -m
(
    # SCHED_IDLE, not only nice 19: a niced task still takes turns with a busy one, and a test
    # that times a Lambda invocation felt it; an idle-class task runs only when nothing else
    # wants the CPU. The idle I/O class likewise for the disk.
    chrt --idle -p 0 "$BASHPID" >/dev/null
    ionice -c 3 -p "$BASHPID" >/dev/null 2>&1 || true
    background_builds
) >"$background_log" 2>&1 &
background_pid=$!
set +m
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
described_step "every shell script passes shellcheck" shellcheck -x scripts/*.sh
described_step "template.yaml passes cfn-lint" cfn-lint template.yaml
described_step "template.yaml passes SAM's validation and its lint" \
    sam validate --lint --template-file template.yaml
# Also builds target/debug/pgwarm, the binary the end-to-end tests spawn.
step cargo build --workspace --all-targets

# Waits for the background builds and shows what they printed; stops test.sh if one failed.
wait_background() {
    local rc=0
    wait "$background_pid" || rc=$?
    sed 's/^/    | /' "$background_log"
    [ "$rc" -eq 0 ] || die "a background build failed (exit $rc): its output is above and in $background_log"
}
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

# ---- benchmarks: that each still runs, a second per case on the debug build (no figures) --------
described_step "scripts/bench.sh runs every target and mode (a smoke run of seconds)" \
    env BENCH_PGWARM_BIN=target/debug/pgwarm BENCH_OUT_DIR=target/bench-smoke BENCH_ROUNDS=1 \
    BENCH_DURATION=1 BENCH_CLIENTS=2 BENCH_SCALE=1 BENCH_MODES="simple extended prepared" scripts/bench.sh
described_step "scripts/bench-connect.sh runs its six cases (a smoke run of seconds)" \
    env BENCH_PGWARM_BIN=target/debug/pgwarm BENCH_OUT_DIR=target/bench-smoke BENCH_ROUNDS=1 \
    BENCH_DURATION=1 scripts/bench-connect.sh
described_step "scripts/bench-failover.sh fails over through its three ways (a smoke run of seconds)" \
    env BENCH_PGWARM_BIN=target/debug/pgwarm BENCH_OUT_DIR=target/bench-smoke BENCH_ROUNDS=1 \
    BENCH_CLIENTS=4 BENCH_WINDOW=2 scripts/bench-failover.sh

described_step "scripts/bench-lambda.sh runs its cells and a cold start, both drivers (a smoke run of seconds)" \
    env BENCH_PGWARM_BIN=target/debug/pgwarm BENCH_OUT_DIR=target/bench-smoke BENCH_LAMBDA_INVOCATIONS=3 \
    BENCH_LAMBDA_WARMUP=1 BENCH_LAMBDA_GAP_MS=20 BENCH_LAMBDA_MEMORY=512 BENCH_LAMBDA_RTT_MS=0.5 \
    BENCH_LAMBDA_COLD_STARTS=1 BENCH_LAMBDA_COLD_MEMORY=512 scripts/bench-lambda.sh

described_step "connect-rtt runs at 0 and 1 ms of round trip (a smoke run of seconds)" \
    target/debug/connect-rtt --rtt-ms "0 1" --seconds 0.5 --rounds 1

described_step "footprint runs: sizes, start-up under lambda-simulator, memory (a smoke run of seconds)" \
    target/debug/footprint --starts 2 --idle-clients 50

described_step "the demo runs end to end, scaled down (a smoke run of seconds; scripts/demo.sh is the real one)" \
    env DEMO_INVOCATIONS=5 DEMO_DIRECT_INVOCATIONS=5 DEMO_STARTUP_RUNS=2 DEMO_FLEET_ENVIRONMENTS=8 \
    DEMO_FLEET_SLOTS=4 DEMO_FLEET_BURST=4 DEMO_FLEET_BURSTS=3 target/debug/demo --out target/demo-smoke

described_step "the background builds: fuzz targets, layers, sam build" wait_background

# ---- fuzzing: a few seconds per target from the committed seeds ----------------------------------
described_step "the fuzz targets run from their seeds without a crash (scripts/fuzz.sh --runs 10000000 is the long run)" \
    scripts/fuzz.sh --seconds 5 --dev --no-sanitizer

# ---- deployment: the layer and sam build --------------------------------------------------------
for arch in "${LAYER_ARCHES[@]}"; do
    described_step "the $arch layer zip: layout, mode 755, ELF for $arch, static; its pgwarm relays a query" \
        scripts/check-layer.sh --run "$arch" "target/layer/pgwarm-$arch.zip"
done
# check-layer.sh itself: it must refuse a layer Lambda could not run. Variants of the x86_64 layer:
# no execute bit, another path, an extra file, and the whole zip checked as the other architecture.
refuses_bad_layers() {
    local dir bin variant arch zip
    dir=$(mktemp -d "${TMPDIR:-/tmp}/bad-layers.XXXXXX")
    bin=target/layer/x86_64/extensions/pgwarm
    mkdir -p "$dir/no-exec/extensions" "$dir/elsewhere/bin" "$dir/extra/extensions"
    install -m 644 "$bin" "$dir/no-exec/extensions/pgwarm"
    install -m 755 "$bin" "$dir/elsewhere/bin/pgwarm"
    install -m 755 "$bin" "$dir/extra/extensions/pgwarm"
    echo extra >"$dir/extra/README"
    for variant in no-exec elsewhere extra; do
        (cd "$dir/$variant" && zip -q -r "../$variant.zip" .)
    done
    for variant in "x86_64 $dir/no-exec.zip" "x86_64 $dir/elsewhere.zip" "x86_64 $dir/extra.zip" \
        "arm64 target/layer/pgwarm-x86_64.zip"; do
        read -r arch zip <<<"$variant"
        if scripts/check-layer.sh "$arch" "$zip" >"$dir/out" 2>&1; then
            rm -rf "$dir"
            die "check-layer.sh accepted a bad layer: $arch $zip"
        fi
        echo "    refused: $(tail -n 1 "$dir/out")"
    done
    rm -rf "$dir"
}
described_step "check-layer.sh refuses bad layers" refuses_bad_layers
# What sam build made, in the background above.
for arch in "${LAYER_ARCHES[@]}"; do
    described_step "sam build's $arch function: ELF for $arch, glibc <= 2.34" \
        scripts/check-layer.sh "$arch" "target/sam/build-$arch/HandlerFunction/bootstrap"
done
# The layers as sam build left them, then zipped the way sam package/deploy zips them (SAM's own
# function, from the Python package that provides `sam`), so the mode that reaches Lambda is the
# one checked.
sam_zip() {
    python3 -c 'import sys
try:
    from samcli.lib.package.utils import make_zip_with_lambda_permissions
except ImportError as e:
    sys.exit(f"python3 cannot import SAM CLI ({e}): pip install aws-sam-cli")
make_zip_with_lambda_permissions(sys.argv[1], sys.argv[2])' "$1" "$2"
}
for arch in "${LAYER_ARCHES[@]}"; do
    case "$arch" in
        x86_64) logical_id=PgwarmLayerX8664 ;;
        arm64) logical_id=PgwarmLayerArm64 ;;
    esac
    built=target/sam/build-$arch/$logical_id
    described_step "zip sam build's $arch layer as sam deploy does" sam_zip "target/sam/$logical_id-packaged" "$built"
    described_step "sam build's $arch layer, as built and as SAM zipped it" \
        scripts/check-layer.sh "$arch" "$built" "target/sam/$logical_id-packaged.zip"
done
