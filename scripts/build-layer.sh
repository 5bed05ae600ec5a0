#!/usr/bin/env bash
# Build the pgwarm Lambda layer: a release pgwarm for Lambda, and a zip with
# `extensions/pgwarm` (mode 755) at its root, which Lambda starts as an external extension.
#
#   scripts/build-layer.sh [x86_64|arm64|all]      (default: all)
#
# For each architecture:
#   1. cargo lambda build --release --extension --target <arch>-unknown-linux-musl -p pgwarm:
#      a static binary (no glibc version to match: it runs on Amazon Linux 2023 and 2 alike),
#      cross-compiled with zig, which also compiles ring's C and assembly for the target. The
#      workspace's release profile applies as it is (--disable-optimizations keeps cargo lambda
#      from overriding it).
#   2. target/layer/<arch>/extensions/pgwarm and target/layer/pgwarm-<arch>.zip (zip -9, no
#      uid/gid or extra times, so the zip depends only on the binary).
#   3. scripts/check-layer.sh on the zip: layout, mode, ELF architecture, static.
# It prints the binary and zip sizes and the time taken, and fails if a zip is larger than
# LAYER_MAX_BYTES.
#
# It installs what is missing, one line per install: cargo-lambda and ziglang (pip), the Rust
# targets (rustup target add), zip, unzip and binutils (apt).
#
# Knobs:
#   CARGO_TARGET_DIR   cargo's target directory (default target); the layer goes to its layer/
#   LAYER_MAX_BYTES    largest zip allowed, in bytes (default 5000000)
set -euo pipefail
cd "$(dirname "$0")/.."

SCRIPT_NAME=build-layer.sh
# shellcheck source=scripts/common.sh
source scripts/common.sh
# shellcheck source=scripts/layer-common.sh
source scripts/layer-common.sh

case "${1:-all}" in
    all) arches=("${LAYER_ARCHES[@]}") ;;
    x86_64 | arm64) arches=("$1") ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "usage: scripts/build-layer.sh [x86_64|arm64|all]" ;;
esac
[ "$#" -le 1 ] || die "usage: scripts/build-layer.sh [x86_64|arm64|all]"
max_bytes=${LAYER_MAX_BYTES:-5000000}
[[ "$max_bytes" =~ ^[0-9]+$ ]] || die "LAYER_MAX_BYTES must be a number of bytes, not '$max_bytes'"

# ---- tools -------------------------------------------------------------------------------------
have cargo || die "cargo not found: install Rust (https://rustup.rs)"
apt_install_commands zip=zip unzip=unzip readelf=binutils
install_cargo_lambda
for arch in "${arches[@]}"; do
    add_rust_target "$(rust_target "$arch")"
done

# ---- build -------------------------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
target_dir=$(cd "$target_dir" && pwd)
layer_dir=$target_dir/layer
mkdir -p "$layer_dir"

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

started=$(date +%s)
summary=()
for arch in "${arches[@]}"; do
    triple=$(rust_target "$arch")
    arch_started=$(date +%s)
    say "building pgwarm for $arch ($triple) with cargo lambda (zig)"
    # --lambda-dir per architecture: cargo lambda moves the binary there, and both builds would
    # otherwise land on the same target/lambda/extensions/pgwarm.
    cargo lambda build --release --disable-optimizations --extension \
        --target "$triple" --package pgwarm --bin pgwarm --lambda-dir "$target_dir/lambda/$arch"
    bin=$target_dir/lambda/$arch/extensions/pgwarm
    [ -x "$bin" ] || die "cargo lambda did not produce $bin"

    stage=$layer_dir/$arch
    zip_file=$layer_dir/pgwarm-$arch.zip
    rm -rf "$stage" "$zip_file"
    mkdir -p "$stage/extensions"
    cp "$bin" "$stage/extensions/pgwarm"
    chmod 755 "$stage/extensions" "$stage/extensions/pgwarm"
    (cd "$stage" && zip -q -9 -X -r "$zip_file" extensions)

    scripts/check-layer.sh "$arch" "$zip_file"
    bin_bytes=$(stat -c %s "$stage/extensions/pgwarm")
    zip_bytes=$(stat -c %s "$zip_file")
    took=$(($(date +%s) - arch_started))
    line="$arch: binary $bin_bytes bytes ($(mib "$bin_bytes")), zip $zip_bytes bytes ($(mib "$zip_bytes")), ${took}s"
    say "$line"
    summary+=("$line  ${zip_file#"$PWD"/}")
    if [ "$zip_bytes" -gt "$max_bytes" ]; then
        die "$zip_file is $zip_bytes bytes, more than LAYER_MAX_BYTES=$max_bytes"
    fi
done

say "done in $(($(date +%s) - started))s:"
printf '  %s\n' "${summary[@]}"
