# shellcheck shell=bash
# Shell functions the deploy scripts share (sourced, not run).

# Installs what LIST (a file: one Debian package a line, # comments) names
# and dpkg does not have yet; WHO prefixes the message.  Uses sudo when not
# root.
install_packages() {
    local list=$1 who=$2 p sudo=
    local -a pkgs missing=()
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    mapfile -t pkgs < <(grep -v '^\s*#' "$list" | grep -v '^\s*$')
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$who: installing ${missing[*]}"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# A TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until the erd serve with process PID answers URL/readyz (at most
# SECS seconds, default 300: a million-entity catalog takes a while to
# load).  When it dies or stays unready, prints its LOG and returns 1.
wait_ready() {
    local pid=$1 url=$2 log=$3 secs=${4:-300} i
    for ((i = 0; i < secs * 10; i++)); do
        curl -fs "$url/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "erd serve did not become ready; its log:" >&2
    cat "$log" >&2
    return 1
}

# Sets work to $WORK (created when missing, kept afterwards) or to a fresh
# temporary folder named after PREFIX, removed when the script exits; an
# erd serve the script started ($pid, when set) is stopped first.
work_dir() {
    local prefix=$1
    pid= keep_work=
    if [ -n "${WORK:-}" ]; then
        work=$WORK keep_work=1
        mkdir -p "$work"
    else
        work=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")
    fi
    trap workdir_cleanup EXIT
}
workdir_cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    [ -n "$keep_work" ] || rm -rf "$work"
}

# ---- the clean Debian 12 root of deploy/check-deb.sh and check-dockerfile.sh
# Both set: who (message prefix), work (their temporary folder), root
# ($work/root), base (a pristine bookworm root to copy, or empty), keep, and
# the array mounts and pid (a server to kill), then `trap chroot_cleanup EXIT`.

# Makes $root: a copy of $base or a fresh debootstrap, with the host's
# resolver, /proc and /dev mounted (recorded in mounts for the cleanup).
chroot_make_root() {
    if [ -n "$base" ]; then
        [ -x "$base/usr/bin/apt-get" ] && grep -q '^12' "$base/etc/debian_version" \
            || { echo "$who: $base is not a Debian 12 root" >&2; exit 1; }
        cp -a "$base" "$root"
        echo "copied $base"
    else
        debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
            || { tail -20 "$work/debootstrap.log"; exit 1; }
        echo "debootstrap --variant=minbase bookworm: done"
    fi
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    mount -t proc proc "$root/proc" && mounts+=("$root/proc")
    mount --bind /dev "$root/dev" && mounts+=("$root/dev")
}

# The EXIT trap: kills the server, unmounts in reverse order and removes
# $work unless --keep -- never through a mount still attached (the host's
# /dev), which rm would otherwise descend into.
chroot_cleanup() {
    local status=$?
    set +e
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
    done
    if grep -q " $work/" /proc/self/mounts; then
        echo "$who: mounts left under $work; not removing it" >&2
    elif [ -z "$keep" ]; then
        rm -rf --one-file-system "$work"
    else
        echo "$who: kept $work"
    fi
    exit "$status"
}

# Stops the server ($pid, the child of $unshare_pid) with SIGTERM, which
# must end it with status 0; WHAT names the signal's target in the report.
chroot_stop_server() {
    local what=$1 status=0
    kill -TERM "$pid"
    wait "$unshare_pid" || status=$?
    pid=
    echo "exit status after SIGTERM$what: $status"
    tail -3 "$work/serve.log" | sed 's/^/  | /'
    [ "$status" = 0 ] || { echo "$who: erd did not exit cleanly" >&2; exit 1; }
    step "$who: OK"
}
