#!/usr/bin/env bash
# Check what goes to Lambda: a layer zip, a layer directory, or a function's executable.
#
#   scripts/check-layer.sh [--run] ARCH PATH...
#
# ARCH is x86_64 or arm64. Each PATH is one of:
#   a .zip       a layer: exactly `extensions/pgwarm` (and its directory) at the root, stored
#                with Unix modes, mode 755 (Lambda runs the extension as another user);
#   a directory  a layer as `sam build` leaves it (the same layout, before SAM zips it);
#   a file       an executable such as a function's `bootstrap` (the ELF checks only).
# The executable in each must be a 64-bit ELF for ARCH (readelf -h), and either static or linked
# only against glibc's own libraries with no symbol version above GLIBC_2.34 (readelf -d and -V),
# Amazon Linux 2023's glibc.
#
# --run also starts each layer's pgwarm (under qemu-aarch64 for arm64 on an x86_64 machine, and
# the reverse) in front of a throwaway PostgreSQL with a SCRAM login, and runs a query through it
# over TLS (sslmode=require): the binary starts, makes its certificate, logs in and relays, which
# exercises ring's code for that architecture. The tests crate's layer-run does that, on the
# tests' harness (it is built first: cargo build --workspace --bins).
#
# It installs what is missing, one line per install: unzip and binutils (apt); with --run also
# the PostgreSQL server and client, and qemu-user when the architecture is not this machine's.
# Any failed check is an error (exit 1) that names the file and what is wrong.
set -euo pipefail
# No cd: the paths given are relative to the caller's directory.
here=$(cd "$(dirname "$0")" && pwd)

SCRIPT_NAME=check-layer.sh
# shellcheck source=scripts/common.sh
source "$here/common.sh"
# shellcheck source=scripts/layer-common.sh
source "$here/layer-common.sh"

usage() { die "usage: scripts/check-layer.sh [--run] x86_64|arm64 PATH..."; }
run=false
if [ "${1:-}" = --run ]; then
    run=true
    shift
fi
[ "$#" -ge 2 ] || usage
arch=$1
shift
case "$arch" in x86_64 | arm64) ;; *) usage ;; esac

apt_install_commands unzip=unzip readelf=binutils

scratch=$(mktemp -d "${TMPDIR:-/tmp}/check-layer.XXXXXX")
common_remove_on_exit "$scratch"
trap 'common_cleanup' EXIT

# The highest glibc symbol version an executable may need: Amazon Linux 2023's glibc.
GLIBC_MAX=2.34
# The libraries every Amazon Linux 2023 has (glibc's, and GCC's libgcc_s); anything else would
# have to come with the layer.
GLIBC_LIBS=" libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 libgcc_s.so.1 \
ld-linux-x86-64.so.2 ld-linux-aarch64.so.1 "

# check_elf FILE NAME: FILE is an executable ELF64 for $arch, static or glibc <= GLIBC_MAX. NAME is
# what the messages call it. Prints one line describing it.
check_elf() {
    local file=$1 name=$2 header class machine want needed lib interp newest linkage
    [ -f "$file" ] || die "$name: not a regular file"
    [ -x "$file" ] || die "$name: not executable"
    header=$(readelf -hW "$file" 2>/dev/null) || die "$name: not an ELF file"
    class=$(awk -F: '/^ *Class:/ { gsub(/^ +| +$/, "", $2); print $2 }' <<<"$header")
    machine=$(awk -F: '/^ *Machine:/ { gsub(/^ +| +$/, "", $2); print $2 }' <<<"$header")
    want=$(elf_machine "$arch")
    [ "$class" = ELF64 ] || die "$name: ELF class '$class', expected ELF64"
    [ "$machine" = "$want" ] || die "$name: machine '$machine', expected '$want' for $arch"
    grep -q 'Type: *EXEC\|Type: *DYN' <<<"$header" || die "$name: not an executable ELF"

    needed=$(readelf -dW "$file" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    interp=$(readelf -lW "$file" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
    if [ -z "$needed" ] && [ -z "$interp" ]; then
        linkage="static"
    else
        for lib in $needed; do
            [[ "$GLIBC_LIBS" == *" $lib "* ]] ||
                die "$name: needs $lib, which is not part of glibc (the layer would have to ship it)"
        done
        newest=$(readelf -VW "$file" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' |
            sort -uV | tail -n 1)
        [ -n "$newest" ] || die "$name: dynamically linked but no GLIBC_ version found"
        if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_MAX" | sort -V | tail -n 1)" != "$GLIBC_MAX" ]; then
            die "$name: needs GLIBC_$newest, newer than Amazon Linux 2023's $GLIBC_MAX"
        fi
        linkage="dynamic (${interp:-no interpreter}), needs GLIBC_$newest at most"
    fi
    say "$name: ELF64 $machine, $linkage, $(stat -c %s "$file") bytes"
}

# check_layer_dir DIR NAME: DIR holds exactly extensions/pgwarm, mode 755, an ELF for $arch.
check_layer_dir() {
    local dir=$1 name=$2 entries mode
    entries=$(cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | sort | tr '\n' ' ')
    [ "$entries" = "extensions extensions/pgwarm " ] ||
        die "$name: expected only extensions/pgwarm, found: ${entries:-nothing}"
    mode=$(stat -c %a "$dir/extensions")
    [ "$mode" = 755 ] || die "$name: extensions/ has mode $mode, expected 755"
    mode=$(stat -c %a "$dir/extensions/pgwarm")
    [ "$mode" = 755 ] || die "$name: extensions/pgwarm has mode $mode, expected 755"
    check_elf "$dir/extensions/pgwarm" "$name: extensions/pgwarm"
}

# check_layer_zip ZIP DEST: the zip lists exactly extensions/pgwarm (and extensions/), stored with
# Unix modes, 755; unzipped into DEST, the same holds on disk.
check_layer_zip() {
    local zip=$1 dest=$2 listing entries line mode system
    listing=$(unzip -Z "$zip" 2>&1) || die "$zip: not a readable zip ($(head -n 1 <<<"$listing"))"
    entries=$(unzip -Z1 "$zip" | sort | tr '\n' ' ')
    case "$entries" in
        "extensions/ extensions/pgwarm " | "extensions/pgwarm ") ;;
        *) die "$zip: expected extensions/pgwarm at the root, found: ${entries:-nothing}" ;;
    esac
    line=$(grep -E ' extensions/pgwarm$' <<<"$listing")
    mode=$(awk '{ print $1 }' <<<"$line")
    system=$(awk '{ print $3 }' <<<"$line")
    [ "$system" = unx ] || die "$zip: extensions/pgwarm stored without Unix modes ($system)"
    [ "$mode" = "-rwxr-xr-x" ] || die "$zip: extensions/pgwarm has mode $mode, expected -rwxr-xr-x"
    line=$(grep -E ' extensions/$' <<<"$listing" || true)
    if [ -n "$line" ]; then
        mode=$(awk '{ print $1 }' <<<"$line")
        [ "$mode" = "drwxr-xr-x" ] || die "$zip: extensions/ has mode $mode, expected drwxr-xr-x"
    fi
    mkdir -p "$dest"
    # umask 022: a directory the zip does not list comes out 755, as Lambda makes it.
    (umask 022 && unzip -q "$zip" -d "$dest")
    check_layer_dir "$dest" "$zip"
}

layer_bins=()
layer_names=()
n=0
for path in "$@"; do
    n=$((n + 1))
    if [ -d "$path" ]; then
        check_layer_dir "$path" "$path"
        layer_bins+=("$path/extensions/pgwarm")
        layer_names+=("$path")
    elif [[ "$path" == *.zip ]]; then
        [ -f "$path" ] || die "$path: no such file"
        check_layer_zip "$path" "$scratch/$n"
        layer_bins+=("$scratch/$n/extensions/pgwarm")
        layer_names+=("$path")
    else
        [ -e "$path" ] || die "$path: no such file"
        check_elf "$path" "$path"
    fi
done

$run || exit 0
[ "${#layer_bins[@]}" -gt 0 ] || die "--run needs a layer (zip or directory) to run"

# ---- --run: pgwarm from the layer in front of a throwaway PostgreSQL --------------------------
# The tests crate's layer-run (tests/src/bin/layer-run.rs) starts the cluster and each pgwarm on
# the tests' harness and runs the query.
install_missing postgresql postgresql-client
emulator=()
if [ "$arch" != "$(host_arch)" ]; then
    case "$arch" in
        arm64) apt_install_commands qemu-aarch64=qemu-user && emulator=(--emulator qemu-aarch64) ;;
        x86_64) apt_install_commands qemu-x86_64=qemu-user && emulator=(--emulator qemu-x86_64) ;;
    esac
fi
say "cargo build --workspace --bins (layer-run)"
(cd "$here/.." && cargo build --quiet --workspace --bins)
layer_run="$here/../${CARGO_TARGET_DIR:-target}/debug/layer-run"
case "${CARGO_TARGET_DIR:-}" in /*) layer_run="$CARGO_TARGET_DIR/debug/layer-run" ;; esac
"$layer_run" "${emulator[@]}" "${layer_bins[@]}" ||
    die "a layer's pgwarm did not relay a query (${layer_names[*]})"
