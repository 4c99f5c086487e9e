#!/usr/bin/env bash
# Scale benchmark: a generated catalog of COUNT entities (deploy/gen-catalog.py,
# seeded) with the real video and book catalogs mixed in, built twice, with
# the configured index (faiss_factory auto: IVF at this size) and with exact
# Flat search.  Prints build time and peak memory, index bytes per entity,
# acc@1 / recall@5 of both on the dev queries (all sent to the one big
# catalog), then serves the approximate index and prints its resident memory
# and single-client latency.  A measurement, not a test.
#
# usage: deploy/bench-scale.sh [DATA_DIR]    (default ../shared/data)
# Environment:
#   BUILD=DIR          build dir holding erd (default build)
#   SCALE=N            generated entities (default 1000000; SCALE_COUNT is the same)
#   SCALE_EXACT=0      skip the exact Flat twin (at 10M its floats alone are 7.7 GB)
#   SCALE_SEED=N       generator seed (default 1)
#   SCALE_DURATION=S   seconds of single-client load (default 20)
#   SCALE_KEEP=DIR     keep the databases in DIR instead of a temporary folder
#   SCALE_PIN=1        the server on the last CPU and wrk on the first (taskset,
#                      two or more CPUs): against other jobs on the 2-core VM
#                      the client's p99 at 1M was 19 ms unpinned, 2.9 ms pinned.
#                      Off by default: a pinned server keeps the second thread
#                      of its list scan on its own CPU
#   ERD_* variables reach every erd command (ERD_IVF_NPROBE=..., ERD_FAISS_FACTORY=...).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
erd=$top/${BUILD:-build}/erd
data=$(cd "${1:-$top/../shared/data}" && pwd)
count=${SCALE:-${SCALE_COUNT:-1000000}}
seed=${SCALE_SEED:-1}
duration=${SCALE_DURATION:-20}
[ -x "$erd" ] || { echo "bench-scale.sh: $erd not built" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench-scale.sh: wrk not found (deploy/packages.txt)" >&2; exit 1; }

if [ -n "${SCALE_KEEP:-}" ]; then
    mkdir -p "$SCALE_KEEP"; work=$(cd "$SCALE_KEEP" && pwd)
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/erd-scale.XXXXXX")
fi
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
    if [ -z "${SCALE_KEEP:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
load() { cut -d' ' -f1-3 /proc/loadavg; }
peak_mb() { awk -F': ' '/Maximum resident/ { printf "%.0f", $2 / 1024 }' "$1"; }

echo "== $(date -u +%FT%TZ) $(nproc) CPUs, load $(load); $count generated entities, seed $seed"
t0=$(date +%s.%N)
python3 "$top/deploy/gen-catalog.py" --erd "$erd" --seed "$seed" --count "$count" \
    --mix "$data/video/catalog.jsonl" --mix "$data/book/catalog.jsonl" >"$work/catalog.jsonl"
t1=$(date +%s.%N)
rm -f "$work/scale.db" "$work/scale.db".*
"$erd" import -q --db "$work/scale.db" --catalog big "$work/catalog.jsonl"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "   generated in %.1f s, imported in %.1f s\n", b - a, c - b }'

echo "== build, configured index (load $(load))"
/usr/bin/time -v "$erd" build --db "$work/scale.db" --catalog big 2>&1 >/dev/null |
    tee "$work/build.txt" | grep '^erd build' | sed 's/^/   /'
echo "   peak RSS of the build: $(peak_mb "$work/build.txt") MB"
# a copy made now carries the phonemes the first build cached
rm -f "$work/exact.db" "$work/exact.db".*
if [ "${SCALE_EXACT:-1}" != 0 ]; then
    cp "$work/scale.db" "$work/exact.db"
    echo "== build, exact Flat (phonemes cached by the first build; load $(load))"
    /usr/bin/time -v "$erd" build --db "$work/exact.db" --catalog big --factory Flat 2>&1 >/dev/null |
        tee "$work/build-exact.txt" | grep '^erd build' | sed 's/^/   /'
fi

# the index file's in-memory part: for erd's own IVF the header says where
# the scanned arrays (ids and codes) end and the mapped floats begin
python3 - "$work"/scale.db.big.*.faiss <<'PY' | sed 's/^/   /'
import struct, sys
path = sys.argv[1]
with open(path, "rb") as f:
    h = f.read(136)
if h[:8] == b"ERDIVF01":
    v = struct.unpack("<8sII15Q", h)
    bits, dim, ntotal, npos = v[2], v[3], v[7], v[8]
    off_ids, off_vecs, flen = v[14], v[16], v[17]
    print(f"erd IVF, {bits}-bit codes: {ntotal} vectors ({npos} with padding); scanned ids + codes "
          f"{(off_vecs - off_ids) / 1e6:.1f} MB, mapped floats {(flen - off_vecs) / 1e6:.1f} MB")
PY
for table in "$work"/scale.db.big.*.faiss.ents; do
    if [ -e "$table" ]; then
        echo "   entity table (mapped by erd serve): $(stat -c %s "$table" | awk '{ printf "%.1f", $1 / 1e6 }') MB"
    fi
done
for which in scale exact; do
    if [ "$which" = exact ] && [ "${SCALE_EXACT:-1}" = 0 ]; then continue; fi
    echo "== dev queries against $which (load $(load))"
    "$erd" eval --db "$work/$which.db" --queries "$data/queries/dev.jsonl" \
        --map video=big --map book=big | sed 's/^/   /'
done

python3 "$top/tests/bench/bodies.py" "$data/queries/dev.jsonl" '*=big' >"$work/bodies.jsonl"
port=$(free_port)
s0=$(date +%s.%N)
srv_pin=() cli_pin=()
if [ "${SCALE_PIN:-0}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    srv_pin=(taskset -c "$(($(nproc) - 1))") cli_pin=(taskset -c 0)
fi
ERD_LOG_REQUESTS=false "${srv_pin[@]}" "$erd" serve --db "$work/scale.db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
wait_ready "$pid" "http://127.0.0.1:$port" "$work/serve.log"
s1=$(date +%s.%N)
# resident memory split: anonymous (the process's own) and file-backed
# (mapped index pages, shared with other processes mapping the same file)
rss() { awk '/^(VmRSS|RssAnon|RssFile):/ { sub(":", "", $1); printf "%s%s %.0f MB", sep, $1, $2 / 1024; sep = ", " }' "/proc/$pid/status"; }
echo "== erd serve ready in $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", b - a }') s, $(rss); single client for $duration s (load $(load))"
ERD_BENCH_BODIES=$work/bodies.jsonl "${cli_pin[@]}" wrk -t1 -c1 -d3s -s "$top/tests/bench/resolve.lua" \
    "http://127.0.0.1:$port/v1/resolve" >/dev/null
ERD_BENCH_BODIES=$work/bodies.jsonl "${cli_pin[@]}" wrk -t1 -c1 -d"${duration}s" -s "$top/tests/bench/resolve.lua" \
    "http://127.0.0.1:$port/v1/resolve" | grep '^ERD_BENCH' | sed 's/^/   /'
echo "   peak RSS of erd serve: $(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status") MB; now $(rss) (load $(load))"
