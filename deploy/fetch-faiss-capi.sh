#!/usr/bin/env bash
# Fetch the genuine FAISS c_api sources from Debian's faiss source package.
#
# Debian's libfaiss-dev ships the c_api headers but not the compiled code, so we
# build c_api/*.cpp ourselves.  The source package is fetched through a private
# deb-src list with private apt state directories: the system's apt
# configuration and lists are never touched.
#
# usage: deploy/fetch-faiss-capi.sh [DEST]   (default: .deps/faiss)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$top/.deps/faiss}

if [ -f "$dest/c_api/Index_c.cpp" ]; then
    echo "faiss c_api sources already in $dest"
    exit 0
fi

version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev 2>/dev/null || true)
if [ -z "$version" ]; then
    echo "fetch-faiss-capi: libfaiss-dev is not installed" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/erd-faiss.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src" "$work/etc/preferences.d"

# Same mirror as the system's binary packages (taken from its deb822 or
# one-line sources), as a deb-src entry of our own.
mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
         | grep -v security | head -n 1 | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//' || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "deb-src $mirror bookworm main" > "$work/sources.list"

apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=$work/etc/none"
    -o "Dir::Etc::Preferences=$work/etc/none"
    -o "Dir::Etc::PreferencesParts=$work/etc/preferences.d"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" -qq update
( cd "$work/src" && apt-get "${apt_opts[@]}" -qq --download-only source "faiss=$version" )
( cd "$work/src" && dpkg-source --no-check -x faiss_*.dsc faiss >/dev/null )

mkdir -p "$dest"
cp -r "$work/src/faiss/c_api" "$dest/"
cp "$work/src/faiss/LICENSE" "$dest/LICENSE" 2>/dev/null || true
echo "$version" > "$dest/VERSION"
echo "faiss $version c_api sources in $dest"
