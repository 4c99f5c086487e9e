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
# temporary folder named after PREFIX, removed when the script exits.
work_dir() {
    local prefix=$1
    if [ -n "${WORK:-}" ]; then
        work=$WORK
        mkdir -p "$work"
    else
        work=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")
        # shellcheck disable=SC2064 # the folder is known now
        trap "rm -rf '$work'" EXIT
    fi
}
