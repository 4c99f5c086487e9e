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

# shellcheck source=deploy/lib.sh
. deploy/lib.sh
install_packages deploy/packages.txt setup

deploy/fetch-faiss-capi.sh

# Compiler output stays on screen: a new warning must be seen where it
# appears.  Options given for a build dir that exists already are applied
# to it (meson setup --reconfigure keeps the others).
if [ ! -f "$builddir/build.ninja" ]; then
    meson setup "$builddir" "$@"
elif [ $# -gt 0 ]; then
    meson setup --reconfigure "$builddir" "$@"
fi
meson compile -C "$builddir"
echo "setup: built $builddir/erd"
