#!/usr/bin/env bash
# Sets erd up on a fresh Debian 12 machine: installs the Debian packages it
# needs (deploy/packages.txt), fetches Debian's FAISS c_api sources, and
# builds into build/.  Safe to run again: each step skips what is done.
#
# usage: deploy/setup.sh [BUILD_DIR [MESON_SETUP_ARGS...]]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
builddir=${1:-build}
shift || true

sudo=
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi

mapfile -t pkgs < <(grep -v '^\s*#' deploy/packages.txt | grep -v '^\s*$')
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

deploy/fetch-faiss-capi.sh

if [ ! -f "$builddir/build.ninja" ]; then
    meson setup "$builddir" "$@" >/dev/null
fi
meson compile -C "$builddir" >/dev/null
echo "setup: built $builddir/erd"
