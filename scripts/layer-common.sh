# shellcheck shell=bash
# Shared pieces of build-layer.sh, check-layer.sh and the deployment steps of test.sh: install the
# tools they need, saying so (apt, pip, rustup), and name a Lambda architecture the way Rust,
# readelf and qemu do.
#
# Source it after common.sh (it uses say, die, have, is_root, install_missing and
# pip_install_missing from there):
#
#   source "$(dirname "$0")/common.sh"
#   source "$(dirname "$0")/layer-common.sh"
#
# The layer's binary is a static musl build: it has no glibc version to match, so the same file
# runs on Amazon Linux 2023 (provided.al2023 and the current managed runtimes) and on Amazon
# Linux 2 (provided.al2, glibc 2.26), whatever the function's own language.

# Every architecture the scripts know, in Lambda's spelling.
# shellcheck disable=SC2034 # used by the scripts that source this file
LAYER_ARCHES=(x86_64 arm64)

# rust_target ARCH: the Rust target triple pgwarm is built for on ARCH.
rust_target() {
    case "$1" in
        x86_64) echo x86_64-unknown-linux-musl ;;
        arm64) echo aarch64-unknown-linux-musl ;;
        *) die "unknown architecture '$1' (expected x86_64 or arm64)" ;;
    esac
}

# elf_machine ARCH: the "Machine:" readelf -h prints for an executable of ARCH.
elf_machine() {
    case "$1" in
        x86_64) echo "Advanced Micro Devices X86-64" ;;
        arm64) echo "AArch64" ;;
        *) die "unknown architecture '$1' (expected x86_64 or arm64)" ;;
    esac
}

# host_arch: this machine's architecture in Lambda's spelling (x86_64, arm64), or what uname says.
host_arch() {
    case "$(uname -m)" in
        x86_64 | amd64) echo x86_64 ;;
        aarch64 | arm64) echo arm64 ;;
        *) uname -m ;;
    esac
}

# apt_install_commands COMMAND=PACKAGE...: installs with apt the Debian PACKAGE of each COMMAND
# that is not on PATH, one line per install, then checks that every COMMAND is there. A command
# that is missing and cannot be installed is an error that says what to install.
apt_install_commands() {
    local pair cmd pkg sudo=() pkgs=()
    for pair in "$@"; do
        cmd=${pair%%=*}
        pkg=${pair#*=}
        have "$cmd" && continue
        [[ " ${pkgs[*]} " == *" $pkg "* ]] || pkgs+=("$pkg")
    done
    if [ "${#pkgs[@]}" -gt 0 ]; then
        have apt-get || die "missing ${pkgs[*]} and no apt-get: install them by hand"
        if ! is_root; then
            have sudo || die "missing ${pkgs[*]}; not root and no sudo: install them by hand"
            sudo=(sudo)
        fi
        say "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        for pkg in "${pkgs[@]}"; do
            say "installing $pkg (apt)"
        done
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${pkgs[@]}" >/dev/null || die "apt-get install ${pkgs[*]} failed"
        hash -r
    fi
    for pair in "$@"; do
        have "${pair%%=*}" || die "${pair%%=*} not found after installing ${pair#*=} (apt)"
    done
}

# pip_ready: makes sure python3 can run pip (installs Debian's python3-pip when it cannot).
pip_ready() {
    export PATH="$PATH:$HOME/.local/bin"
    if ! { have python3 && python3 -m pip --version >/dev/null 2>&1; }; then
        install_missing python3-pip
    fi
}

# install_cargo_lambda: cargo-lambda and the zig it compiles and links with (both from PyPI:
# the cargo-lambda package depends on ziglang). zig is found as `zig` on PATH or as
# `python3 -m ziglang`, as cargo-lambda looks for it.
install_cargo_lambda() {
    pip_ready
    pip_install_missing cargo-lambda cargo-lambda
    if ! have zig && ! python3 -c 'import ziglang' >/dev/null 2>&1; then
        # pip_install_missing checks a command; ziglang is a module, so this one is by hand.
        say "installing ziglang (pip)"
        python3 -m pip install --quiet ziglang 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages ziglang ||
            die "pip install ziglang failed (cargo lambda needs zig to cross-compile)"
        python3 -c 'import ziglang' >/dev/null 2>&1 || die "ziglang still not importable after pip install"
    fi
}

# add_rust_target TRIPLE: adds the standard library for TRIPLE (rustup) unless it is there.
add_rust_target() {
    local triple=$1
    have rustup || die "rustup not found: the $triple standard library comes from rustup (https://rustup.rs)"
    if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
        say "adding Rust target $triple (rustup)"
        rustup target add "$triple" || die "rustup target add $triple failed"
    fi
}
