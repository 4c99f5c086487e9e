#!/usr/bin/env bash
# Soak test of `erd serve`: measures the maximum throughput, then holds 80 %
# of it for 10 minutes with the real n-best dev queries, sampling the
# server's RSS, and prints errors, latency, RSS growth and a verdict
# (PASS: zero errors and RSS growth under 5 % from the end of warm-up).
# A measurement: run it on a machine with nothing else busy.
#
# usage: deploy/soak.sh [DATA_DIR | DB_FILE]    (as deploy/bench.sh)
# Environment:
#   BUILD=DIR           build dir holding erd (default build)
#   SOAK_SECONDS=S      length of the soak (default 600)
#   SOAK_SHARE=F        share of the measured maximum to offer (default 0.8)
#   SOAK_PAUSE_MS=MS    pause per connection between requests (default 10): the
#                       load is held by the number of connections
#   BENCH_* and ERD_* as for deploy/bench.sh.  Traffic goes only to 127.0.0.1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
erd=$top/${BUILD:-build}/erd
src=${1:-$top/../shared/data}
soak_s=${SOAK_SECONDS:-600}
share=${SOAK_SHARE:-0.8}
pause=${SOAK_PAUSE_MS:-10}
lua=$top/tests/bench/resolve.lua

me=soak.sh
# shellcheck source=deploy/bench-common.sh
. "$top/deploy/bench-common.sh"
export ERD_BENCH_BODIES=$work/bodies.jsonl ERD_BENCH_TOKEN=${ERD_RESOLVE_TOKEN:-}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
kv() { sed -n "s/^ERD_BENCH requests=.* $1=\([0-9.]*\).*/\1/p" "$2"; }
runwrk() {  # out conns secs [pause]
    ERD_BENCH_DELAY_MS=${4:-0} timeout $(($3 + 60)) \
        wrk -t2 -c"$2" -d"$3s" --timeout 10s -s "$lua" "$url/v1/resolve" >"$1" 2>&1 ||
        { cat "$1" >&2; exit 1; }
}

echo "== warm-up 10 s, then the maximum: 10 s at 4 connections"
runwrk "$work/warm.txt" 4 10
runwrk "$work/max.txt" 4 10
max=$(kv rps "$work/max.txt")
target=$(awk -v m="$max" -v s="$share" 'BEGIN { printf "%.0f", m * s }')
lat_ms=$(awk -v u="$(kv p50_us "$work/max.txt")" 'BEGIN { print u / 1000 }')
conns=$(awk -v t="$target" -v p="$pause" -v l="$lat_ms" 'BEGIN { c = int(t * (p + l) / 1000 + 0.5); print c < 1 ? 1 : c }')
echo "   maximum $max req/s; target $target req/s: $conns connections pausing $pause ms"
runwrk "$work/cal.txt" "$conns" 10 "$pause"
got=$(kv rps "$work/cal.txt")
conns=$(awk -v c="$conns" -v t="$target" -v g="$got" 'BEGIN { n = int(c * t / g + 0.5); print n < 1 ? 1 : n }')
echo "   calibration: $got req/s; soaking with $conns connections"

rss0=$(rss_kb)
start=$(date +%s)
(   # RSS every 10 s while the soak runs
    while kill -0 "$pid" 2>/dev/null; do
        echo "$(( $(date +%s) - start )) $(rss_kb)"
        sleep 10
    done
) >"$work/rss.txt" 2>/dev/null &
sampler=$!
runwrk "$work/soak.txt" "$conns" "$soak_s" "$pause"
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
rss1=$(rss_kb)

line=$(grep '^ERD_BENCH requests=' "$work/soak.txt")
errs=$(( $(kv non200 "$work/soak.txt") + $(kv socket_errors "$work/soak.txt") ))
# growth is measured from the first sample a minute in (caches filled), or
# from the start of a shorter soak
base=$(awk '$1 >= 60 { print $2; exit }' "$work/rss.txt"); base=${base:-$rss0}
peak=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$work/rss.txt")
echo
echo "== soak: ${soak_s} s at $conns connections (target $target req/s = $share x $max); load now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $line"
grep '^ERD_BENCH non-200' "$work/soak.txt" || true
awk -v r0="$rss0" -v b="$base" -v r1="$rss1" -v pk="$peak" -v e="$errs" -v m="$max" \
    -v got="$(kv rps "$work/soak.txt")" 'BEGIN {
    g = (r1 - b) / b * 100
    printf "   achieved %.1f req/s (%.0f %% of the maximum); errors %d\n", got, got / m * 100, e
    printf "   RSS: %.1f MB before, %.1f MB a minute in, %.1f MB at the end, %.1f MB peak: growth %.2f %%\n",
           r0 / 1024, b / 1024, r1 / 1024, pk / 1024, g
    printf "   verdict: %s (zero errors, RSS growth under 5 %%)\n", (e == 0 && g < 5) ? "PASS" : "FAIL" }'
