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
#   SCALE_COUNT=N      generated entities (default 1000000)
#   SCALE_SEED=N       generator seed (default 1)
#   SCALE_DURATION=S   seconds of single-client load (default 20)
#   SCALE_KEEP=DIR     keep the databases in DIR instead of a temporary folder
#   ERD_* variables reach every erd command (ERD_IVF_NPROBE=..., ERD_FAISS_FACTORY=...).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
erd=$top/${BUILD:-build}/erd
data=$(cd "${1:-$top/../shared/data}" && pwd)
count=${SCALE_COUNT:-1000000}
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
cp "$work/scale.db" "$work/exact.db"
echo "== build, exact Flat (phonemes cached by the first build; load $(load))"
/usr/bin/time -v "$erd" build --db "$work/exact.db" --catalog big --factory Flat 2>&1 >/dev/null |
    tee "$work/build-exact.txt" | grep '^erd build' | sed 's/^/   /'

for which in scale exact; do
    echo "== dev queries against $which (load $(load))"
    "$erd" eval --db "$work/$which.db" --queries "$data/queries/dev.jsonl" \
        --map video=big --map book=big | sed 's/^/   /'
done

python3 "$top/tests/bench/bodies.py" "$data/queries/dev.jsonl" '*=big' >"$work/bodies.jsonl"
port=$(free_port)
s0=$(date +%s.%N)
ERD_LOG_REQUESTS=false "$erd" serve --db "$work/scale.db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
wait_ready "$pid" "http://127.0.0.1:$port" "$work/serve.log"
s1=$(date +%s.%N)
rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
echo "== erd serve ready in $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", b - a }') s, RSS $rss MB; single client for $duration s (load $(load))"
ERD_BENCH_BODIES=$work/bodies.jsonl wrk -t1 -c1 -d3s -s "$top/tests/bench/resolve.lua" \
    "http://127.0.0.1:$port/v1/resolve" >/dev/null
ERD_BENCH_BODIES=$work/bodies.jsonl wrk -t1 -c1 -d"${duration}s" -s "$top/tests/bench/resolve.lua" \
    "http://127.0.0.1:$port/v1/resolve" | grep '^ERD_BENCH' | sed 's/^/   /'
echo "   peak RSS of erd serve: $(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status") MB (load $(load))"
