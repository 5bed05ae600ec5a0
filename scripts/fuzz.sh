#!/usr/bin/env bash
# Runs pgwarm's fuzz targets (extension/fuzz: cargo-fuzz and libFuzzer on the nightly toolchain),
# each from its committed seeds (extension/fuzz/seeds/TARGET) plus a working corpus kept in
# extension/fuzz/corpus/TARGET (not committed), and prints one line of figures per target.
#
#   scripts/fuzz.sh                    10 seconds per target
#   scripts/fuzz.sh --seconds 60 relay one target for a minute
#   scripts/fuzz.sh --runs 10000000    the long run: ten million executions per target
#   --no-sanitizer                     build without AddressSanitizer: a panic is still a crash,
#                                      and the build takes about a minute less (pgwarm has no
#                                      unsafe code)
#   --dev                              build without optimizations: the build takes under half
#                                      as long, and the targets run 15 to 30 times slower
#                                      (scripts/test.sh runs `--seconds 5 --dev --no-sanitizer`)
#   --build-only                       build the targets and run none
#
# Targets: startup (the startup packet), relay (client and server bytes through the relay, with
# links made, failed and replayed), scram (the SCRAM exchange pgwarm serves to clients), backend
# (what a server sends on pgwarm's own exchanges). A crash, a panic, a leak past libFuzzer's
# limits or a hang stops the run with a non-zero exit; the input is left in
# extension/fuzz/artifacts/TARGET, to be added to the seeds once fixed.
#
# Installs cargo-fuzz (crates.io) when it is missing. Needs the nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRIPT_NAME=fuzz.sh
# shellcheck source=scripts/common.sh
source scripts/common.sh

limit=(-max_total_time=10)
sanitizer=()
profile=(-O)
build_only=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) limit=("-max_total_time=$2"); shift 2 ;;
        --runs) limit=("-runs=$2"); shift 2 ;;
        --no-sanitizer) sanitizer=(-s none); shift ;;
        --dev) profile=(--dev); shift ;;
        --build-only) build_only=true; shift ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(startup relay scram backend)

cargo +nightly --version >/dev/null 2>&1 ||
    die "the nightly Rust toolchain is missing: rustup toolchain install nightly"
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (cargo install)"
    cargo install cargo-fuzz --locked --quiet
fi

cd extension/fuzz
say "building the fuzz targets (${profile[*]}, with sanitizer coverage)"
cargo +nightly fuzz build "${profile[@]}" "${sanitizer[@]}"
$build_only && exit 0

for target in "${targets[@]}"; do
    [ -d "seeds/$target" ] || die "no such fuzz target: $target (seeds/$target is missing)"
    mkdir -p "corpus/$target"
    log=$(mktemp)
    # -rss_limit_mb: pgwarm must not need more than this for any input; -timeout: a hang.
    if ! cargo +nightly fuzz run "${profile[@]}" "${sanitizer[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        die "fuzz target $target failed: the input is in extension/fuzz/artifacts/$target"
    fi
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    speed=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
    rss=$(awk '/stat::peak_rss_mb/ {print $2}' "$log")
    echo "fuzz $target: ${runs:-?} executions, ${speed:-?}/s, peak RSS ${rss:-?} MB, no crash"
    rm -f "$log"
done
