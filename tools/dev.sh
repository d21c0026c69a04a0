#!/usr/bin/env bash
# dev.sh run|test|build — README's two commands.
#   run:   install what is missing (apt), build, start genlab
#   test:  install what is missing, build, run the whole test suite
#   build: install what is missing, build
# Extra arguments after `run` go to genlab. Build directory: build/ (release).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: compiler and build, the libraries genlab links, tmux for
# the TUI tests, zstd for the checkpoint tests, python3-torch for the
# PyTorch comparisons (tests skip them where it is absent).
packages=(build-essential meson ninja-build pkg-config libopenblas-dev libzstd-dev
          libncurses-dev libpng-dev libjansson-dev libcmocka-dev tmux zstd)
[ "${GENLAB_WITH_TORCH:-0}" = 1 ] && packages+=(python3-torch python3-numpy)

install_missing() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return
    echo "installing: ${missing[*]}"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() {
    [ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
    ninja -C build >/dev/null
}

cmd=${1:-run}
[ $# -gt 0 ] && shift
install_missing
build
case "$cmd" in
    run) exec ./build/genlab "$@" ;;
    test) meson test -C build --setup full --print-errorlogs ;;
    build) ;;
    *) echo "usage: tools/dev.sh run|test|build" >&2; exit 2 ;;
esac
