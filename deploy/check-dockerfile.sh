#!/usr/bin/env bash
# Checks deploy/Dockerfile without Docker: replays its instructions (ENV,
# COPY, WORKDIR, RUN, USER) in a clean Debian 12 chroot made by debootstrap
# (minbase, the closest thing to debian:bookworm-slim), then runs the image's
# ENTRYPOINT as the image's USER the way a container would -- as PID 1 of
# fresh PID and network namespaces -- and checks that its HEALTHCHECK passes,
# /readyz turns ready on a demo catalog imported and built by that user,
# a resolve answers, and SIGTERM ends it with status 0.
#
# usage: sudo deploy/check-dockerfile.sh [--base DIR] [--worktree] [--keep]
#   --base DIR   copy DIR (a pristine `debootstrap --variant=minbase bookworm`
#                result) instead of running debootstrap
#   --worktree   build context is the working tree (default: git HEAD)
#   --keep       leave the chroot in place for inspection
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
who=check-dockerfile
base= context=head keep=
while [ $# -gt 0 ]; do
    case $1 in
    --base) base=$2; shift 2 ;;
    --worktree) context=worktree; shift ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--base DIR] [--worktree] [--keep]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "check-dockerfile: needs root (chroot, mounts, namespaces)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/erd-dockerfile.XXXXXX")
root=$work/root
ctx=$work/context
mounts=()
pid=
trap chroot_cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

# ---- build context: what `docker build -f deploy/Dockerfile .` would see
mkdir -p "$ctx"
if [ "$context" = head ]; then
    git -C "$top" archive HEAD | tar -x -C "$ctx"
    step "context: git HEAD $(git -C "$top" rev-parse --short HEAD)"
else
    tar -C "$top" --exclude='./build*' --exclude=./.deps --exclude=./.git --exclude=./var -cf - . | tar -x -C "$ctx"
    step "context: working tree"
fi
dockerfile=$ctx/deploy/Dockerfile

# ---- the instructions, one NUL-separated record per step
steps=$work/steps
python3 - "$dockerfile" > "$steps" <<'PY'
import json, shlex, sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    s = raw.rstrip("\n")
    if not cur and (not s.strip() or s.lstrip().startswith("#")):
        continue
    if cur and s.lstrip().startswith("#"):
        continue  # comment lines inside a continued instruction
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    lines.append(cur + s)
    cur = ""
out = sys.stdout
def emit(kind, arg):
    out.write(kind + "\0" + arg + "\0")
for line in lines:
    kind, _, arg = line.strip().partition(" ")
    kind, arg = kind.upper(), arg.strip()
    if kind == "ENV":
        if "=" in arg.split()[0]:
            for pair in shlex.split(arg):
                emit("ENV", pair)
        else:
            k, _, v = arg.partition(" ")
            emit("ENV", k + "=" + v.strip())
    elif kind in ("ENTRYPOINT", "CMD"):
        emit(kind, "\x1f".join(json.loads(arg)) if arg.startswith("[") else "/bin/sh\x1f-c\x1f" + arg)
    elif kind == "HEALTHCHECK":
        emit(kind, arg.split(" CMD ", 1)[1] if " CMD " in arg else arg)
    elif kind in ("VOLUME",):
        emit(kind, " ".join(json.loads(arg)) if arg.startswith("[") else arg)
    else:
        emit(kind, arg)
PY

# ---- a clean Debian 12
step "chroot"
chroot_make_root

# ---- replay
envs=() workdir=/ user= entry=() cmd=() health= volumes= from=
uid_of() { awk -F: -v u="$1" '$1 == u || $3 == u { print $3 ":" $4; exit }' "$root/etc/passwd"; }
in_root() { # in_root USER WORKDIR COMMAND: /bin/sh -c COMMAND in the chroot
    local spec=()
    if [ -n "$1" ] && [ "$1" != root ] && [ "$1" != 0 ]; then
        spec=(--userspec="$(uid_of "$1")" --groups=)
    fi
    local home=/root
    [ ${#spec[@]} -eq 0 ] || home=/nonexistent
    chroot "${spec[@]}" "$root" /usr/bin/env -i HOME=$home \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${envs[@]}" \
        /bin/sh -c "cd '$2' && $3"
}
while IFS= read -r -d '' kind && IFS= read -r -d '' arg; do
    case $kind in
    FROM)
        from=$arg
        [ "$arg" = debian:bookworm-slim ] || { echo "check-dockerfile: FROM $arg, expected debian:bookworm-slim" >&2; exit 1; } ;;
    ENV) envs+=("$arg"); echo "ENV $arg" ;;
    WORKDIR) workdir=$arg; mkdir -p "$root$arg"; echo "WORKDIR $arg" ;;
    USER) user=$arg; echo "USER $arg" ;;
    COPY)
        read -r -a parts <<<"$arg"
        dst=${parts[-1]}; unset 'parts[-1]'
        [ "${dst:0:1}" = / ] || dst=$workdir/$dst
        for src in "${parts[@]}"; do
            if [ -d "$ctx/$src" ]; then
                mkdir -p "$root$dst"; cp -a "$ctx/$src/." "$root$dst/"
            elif [ "${dst: -1}" = / ] || [ ${#parts[@]} -gt 1 ]; then
                mkdir -p "$root$dst"; cp -a "$ctx/$src" "$root$dst/"
            else
                mkdir -p "$(dirname "$root$dst")"; cp -a "$ctx/$src" "$root$dst"
            fi
        done
        chown -R 0:0 "$root$dst"
        echo "COPY $arg" ;;
    RUN)
        echo "RUN ${arg:0:100}..."
        start=$(date +%s)
        in_root "$user" "$workdir" "$arg" >"$work/run.log" 2>&1 || { tail -40 "$work/run.log"; echo "check-dockerfile: RUN failed" >&2; exit 1; }
        echo "   ok ($(( $(date +%s) - start )) s)" ;;
    ENTRYPOINT) IFS=$'\x1f' read -r -a entry <<<"$arg" ;;
    CMD) IFS=$'\x1f' read -r -a cmd <<<"$arg" ;;
    HEALTHCHECK) health=$arg ;;
    VOLUME) volumes=$arg ;;
    EXPOSE|STOPSIGNAL|LABEL|ARG) ;;
    *) echo "check-dockerfile: instruction $kind not replayed" >&2; exit 1 ;;
    esac
done <"$steps"

# ---- the image as a container
step "container"
[ -n "$user" ] || { echo "check-dockerfile: no USER: the image would run as root" >&2; exit 1; }
ids=$(uid_of "$user")
[ -n "$ids" ] && [ "${ids%%:*}" != 0 ] || { echo "check-dockerfile: USER $user is root or unknown" >&2; exit 1; }
echo "USER $user = uid:gid $ids"
[ -n "$health" ] || { echo "check-dockerfile: no HEALTHCHECK" >&2; exit 1; }
[ ${#entry[@]} -gt 0 ] || { echo "check-dockerfile: no ENTRYPOINT" >&2; exit 1; }
vol=${volumes%% *}
[ -n "$vol" ] || { echo "check-dockerfile: no VOLUME for the database" >&2; exit 1; }

# The volume starts as the image left it; put a demo catalog in it as the
# image's user (import and build must work unprivileged too).
in_root "$user" "$vol" "erd import -q --db $vol/erd.db --catalog mini /src/tests/integration/fixtures/mini.jsonl && erd build -q --db $vol/erd.db --catalog mini" \
    || { echo "check-dockerfile: import/build as $user failed" >&2; exit 1; }
echo "demo catalog imported and built as $user"

# PID 1 of new PID and network namespaces, as under a container runtime.
printf -v argv ' %q' "${entry[@]}" "${cmd[@]}"
chroot_user=(--userspec="$ids" --groups=)
unshare --pid --net --fork --kill-child /bin/sh -c "ip link set lo up && exec chroot ${chroot_user[*]} $root /usr/bin/env -i HOME=/nonexistent PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ${envs[*]} /bin/sh -c 'cd $workdir && exec $argv'" \
    >"$work/serve.log" 2>&1 &
unshare_pid=$!
started=
for _ in $(seq 100); do
    pid=$(awk '{print $1}' "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null || true)
    case $(readlink "/proc/$pid/exe" 2>/dev/null) in "$root"/*/erd) started=1; break ;; esac
    sleep 0.1
done
[ -n "$started" ] || { cat "$work/serve.log"; echo "check-dockerfile: the entrypoint did not start" >&2; exit 1; }
in_ns() { nsenter --target "$pid" --net chroot "${chroot_user[@]}" "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin /bin/sh -c "$1"; }

healthy=
for _ in $(seq 120); do
    if in_ns "$health" >/dev/null 2>&1; then healthy=1; break; fi
    sleep 0.5
done
[ -n "$healthy" ] || { cat "$work/serve.log"; echo "check-dockerfile: HEALTHCHECK never passed" >&2; exit 1; }
echo "HEALTHCHECK passes: $health"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
echo "erd runs as uid $uid, PID $(awk '/^NSpid:/ {print $NF}' "/proc/$pid/status") in its namespace"
[ "$uid" = "${ids%%:*}" ] || { echo "check-dockerfile: erd runs as uid $uid" >&2; exit 1; }
ready=$(in_ns "curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8080/readyz")
echo "/readyz: $ready"
[ "$ready" = 200 ] || { echo "check-dockerfile: not ready" >&2; exit 1; }
answer=$(in_ns "curl -s -H 'Content-Type: application/json' -d '{\"catalog\":\"mini\",\"text\":\"the great gatsby\",\"k\":1}' http://127.0.0.1:8080/v1/resolve")
echo "resolve: $answer"
case $answer in *goodbooks:5*) ;; *) echo "check-dockerfile: wrong resolve answer" >&2; exit 1 ;; esac
metrics=$(in_ns "curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8080/metrics")
echo "/metrics without a configured token: $metrics"

chroot_stop_server " to PID 1"
