#!/usr/bin/env bash
# Builds a Debian package of erd from the tree: meson with prefix /usr,
# `meson install` into a staging root, Depends from dpkg-shlibdeps, then
# dpkg-deb.  The package holds /usr/bin/erd, the models and the demo
# catalog under /usr/share/erd, /etc/erd/erd.conf (a conffile: database in
# /var/lib/erd), the systemd unit and erd(1).  Its postinst creates the erd
# system user and /var/lib/erd and, when no database is there yet, imports
# and builds the bundled demo catalog "books", so `erd serve --config
# /etc/erd/erd.conf` answers at once.  deploy/check-deb.sh installs it
# with apt in a clean Debian 12 chroot.
#
# usage: deploy/deb.sh [OUTDIR]   (default build-deb; prints the .deb's path)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=$(realpath -m "${1:-build-deb}")
bdir=$out/build
root=$out/root

deploy/fetch-faiss-capi.sh >/dev/null
if [ ! -f "$bdir/build.ninja" ]; then
    meson setup "$bdir" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
        --buildtype=release >/dev/null
fi
# only what is installed: the tests need not be built for a package
meson compile -C "$bdir" erd erd.1 erd.conf erd.service >/dev/null
rm -rf "$root"
meson install -C "$bdir" --destdir "$root" --no-rebuild --strip >/dev/null

version=$(meson introspect "$bdir" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)

# shared-library dependencies, as dpkg-shlibdeps finds them from the binary
shl=$(mktemp -d)
trap 'rm -rf "$shl"' EXIT
mkdir -p "$shl/debian"
printf 'Source: erd\n\nPackage: erd\nArchitecture: any\n' >"$shl/debian/control"
depends=$(cd "$shl" && dpkg-shlibdeps -O "$root/usr/bin/erd" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CTL
Package: erd
Version: $version
Architecture: $arch
Maintainer: erd developers <erd@localhost>
Section: net
Priority: optional
Depends: $depends, espeak-ng-data, passwd
Recommends: curl
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Homepage: https://github.com/erd/erd
Description: entity resolution by sound for voice assistants
 erd resolves what a speech recogniser heard to the catalog entity that was
 meant, matching names by how they sound (espeak-ng phonemes, a learned
 phonetic encoder, FAISS).  One HTTP service with an operator console,
 an admin API for live catalogs, and a bundled demo catalog.
CTL
find "$root/etc" -type f | sed "s|^$root||" >"$root/DEBIAN/conffiles"

cat >"$root/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd erd >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /var/lib/erd \
            --shell /usr/sbin/nologin erd
    fi
    install -d -o erd -g erd -m 0750 /var/lib/erd
    # The bundled demo, so the packaged configuration serves a catalog at
    # once; an existing database is never touched.
    if [ ! -e /var/lib/erd/erd.db ]; then
        cd /var/lib/erd
        setpriv --reuid=erd --regid=erd --init-groups \
            erd import -q --db /var/lib/erd/erd.db --catalog books /usr/share/erd/demo/books.jsonl
        setpriv --reuid=erd --regid=erd --init-groups \
            erd build -q --db /var/lib/erd/erd.db --catalog books
    fi
fi
exit 0
POST
cat >"$root/DEBIAN/postrm" <<'POST'
#!/bin/sh
set -e
# the catalogs are the operator's data: only purge removes them
if [ "$1" = purge ]; then
    rm -rf /var/lib/erd
fi
exit 0
POST
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"

gzip -9nf "$root/usr/share/man/man1/erd.1"

deb=$out/erd_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
