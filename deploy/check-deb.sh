#!/usr/bin/env bash
# Checks the Debian package the way a user gets it: installs the .deb from
# deploy/deb.sh with apt (dependencies from the Debian archive) in a clean
# Debian 12 chroot made by debootstrap, then, with an empty environment and
# from the root directory, runs the packaged service -- `erd serve --config
# /etc/erd/erd.conf` as the erd user, in its own network namespace --
# resolves the bundled demo catalog over HTTP, loads the console page,
# resolves from the command line, and stops the server with SIGTERM, which
# must end it with status 0.
#
# usage: sudo deploy/check-deb.sh [--base DIR] [--deb FILE] [--keep]
#   --base DIR   copy DIR (a pristine `debootstrap --variant=minbase bookworm`
#                result) instead of running debootstrap
#   --deb FILE   the package to check (default: build it with deploy/deb.sh)
#   --keep       leave the chroot in place for inspection
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
who=check-deb
base= deb= keep=
while [ $# -gt 0 ]; do
    case $1 in
    --base) base=$2; shift 2 ;;
    --deb) deb=$(realpath "$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--base DIR] [--deb FILE] [--keep]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "check-deb: needs root (chroot, mounts, namespaces)" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

if [ -z "$deb" ]; then
    step "deploy/deb.sh"
    deb=$("$top/deploy/deb.sh" | tail -1)
fi
echo "package: $deb ($(du -h "$deb" | cut -f1))"

work=$(mktemp -d "${TMPDIR:-/tmp}/erd-deb.XXXXXX")
root=$work/root
mounts=()
pid=
trap chroot_cleanup EXIT

step "chroot"
chroot_make_root
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "$1"; }

step "apt-get install ./$(basename "$deb")"
cp "$deb" "$root/tmp/"
start=$(date +%s)
in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/$(basename "$deb")" \
    >"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; echo "check-deb: install failed" >&2; exit 1; }
echo "installed in $(( $(date +%s) - start )) s: $(in_root 'dpkg-query -W erd')"
in_root "ls -l /var/lib/erd" | sed 's/^/  | /'
in_root "test -f /usr/share/man/man1/erd.1.gz && erd build --help | grep -- --encoder" | sed 's/^/  | /'

step "erd serve --config /etc/erd/erd.conf (empty environment, from /)"
ids=$(awk -F: '$1 == "erd" { print $3 ":" $4 }' "$root/etc/passwd")
[ -n "$ids" ] || { echo "check-deb: the package made no erd user" >&2; exit 1; }
unshare --net --fork --kill-child /bin/sh -c "ip link set lo up && exec chroot --userspec=$ids --groups= $root /usr/bin/env -i /bin/sh -c 'cd / && exec /usr/bin/erd serve --config /etc/erd/erd.conf'" \
    >"$work/serve.log" 2>&1 &
unshare_pid=$!
for _ in $(seq 100); do
    pid=$(awk '{print $1}' "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null || true)
    [ -n "$pid" ] && case $(readlink "/proc/$pid/exe" 2>/dev/null) in "$root"/usr/bin/erd) break ;; esac
    pid=
    sleep 0.1
done
[ -n "$pid" ] || { cat "$work/serve.log"; echo "check-deb: erd serve did not start" >&2; exit 1; }
in_ns() { nsenter --target "$pid" --net "$@"; }
listen=$(awk '$1 == "listen" { print $2 }' "$root/etc/erd/erd.conf")
ready=
for _ in $(seq 300); do
    if in_ns curl -fs "http://$listen/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$ready" ] || { cat "$work/serve.log"; echo "check-deb: never ready" >&2; exit 1; }
echo "erd serve ready on $listen as uid $(awk '/^Uid:/ {print $2}' "/proc/$pid/status") with environment: [$(tr '\0' ' ' <"/proc/$pid/environ")]"
answer=$(in_ns curl -s -H 'Content-Type: application/json' \
    -d '{"catalog":"books","hypotheses":[{"text":"harry potter and the sorcerers stone","score":-1200},{"text":"harry potter in the sorcerer stone","score":-1500}],"k":1}' \
    "http://$listen/v1/resolve")
echo "resolve: $answer"
case $answer in *'"goodbooks:2"'*) ;; *) cat "$work/serve.log"; echo "check-deb: wrong resolve answer" >&2; exit 1 ;; esac
page=$(in_ns curl -s -o /dev/null -w '%{http_code} %{content_type}' "http://$listen/")
echo "console: GET / -> $page"
case $page in 200*text/html*) ;; *) echo "check-deb: no console page" >&2; exit 1 ;; esac

cli=$(chroot --userspec="$ids" --groups= "$root" /usr/bin/env -i /bin/sh -c 'cd / && /usr/bin/erd resolve --db /var/lib/erd/erd.db --catalog books -k 1 "the hunger gains"' 2>&1)
echo "erd resolve (CLI, empty environment): $cli"
case $cli in *goodbooks:1*) ;; *) echo "check-deb: CLI resolve failed" >&2; exit 1 ;; esac

if grep -i 'warning' "$work/serve.log"; then
    echo "check-deb: erd serve warned (models, channel or calibration not found?)" >&2; exit 1
fi

chroot_stop_server ""
