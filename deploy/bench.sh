#!/usr/bin/env bash
# Load benchmark of `erd serve`: POST /v1/resolve with the real n-best dev
# queries at fixed connection counts, and a table of throughput, latency
# percentiles, errors, server CPU and peak RSS, then the time per resolve
# stage (from /metrics).  A measurement, not a test: it asserts nothing.
#
# usage: deploy/bench.sh [DATA_DIR | DB_FILE]
#   DATA_DIR (default ../shared/data) holds video/ book/ queries/: both
#   catalogs are imported and built into a temporary DB, as eval-dev.sh does.
#   DB_FILE is an existing built store, served as it is (never modified).
# Environment:
#   BUILD=DIR               build dir holding erd (default build)
#   BENCH_DURATION=SECS     per connection level (default 10)
#   BENCH_CONNS="1 2 4 8 16" connection levels (wrk uses min(2, conns) threads)
#   BENCH_WARMUP=SECS       warm-up run before the levels (default 3)
#   BENCH_QUERIES=FILE      dev-format queries (default DATA_DIR/queries/dev.jsonl)
#   BENCH_MAP="DOM=CAT ..." domain -> catalog ("*=CAT" sends all to one catalog;
#                           default: each domain to the catalog of its name)
#   BENCH_THREADS=N         erd serve --threads (default: the server's, one per core)
#   ENCODER=SPEC            encoder for the builds of DATA_DIR catalogs
#   BENCH_READY_S=SECS     longest wait for erd serve to load (default 300)
#   ERD_* variables reach erd serve.  Traffic goes only to 127.0.0.1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
erd=$top/${BUILD:-build}/erd
src=${1:-$top/../shared/data}
duration=${BENCH_DURATION:-10}
conns=${BENCH_CONNS:-1 2 4 8 16}
warmup=${BENCH_WARMUP:-3}
lua=$top/tests/bench/resolve.lua


me=bench.sh
# shellcheck source=deploy/bench-common.sh
. "$top/deploy/bench-common.sh"

export ERD_BENCH_BODIES=$work/bodies.jsonl ERD_BENCH_TOKEN=${ERD_RESOLVE_TOKEN:-}
tck=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'; }  # utime + stime
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status"; }
# scrape: one line "g2p encode search aggregate http_sum http_count"
scrape() {
    curl -fs -H "Authorization: Bearer $mtok" "$url/metrics" | awk '
        /^erd_resolve_stage_seconds_total\{/ {
            match($0, /stage="[^"]*"/); st = substr($0, RSTART + 7, RLENGTH - 8); s[st] = $NF
            if (!(st in seen)) { seen[st] = 1; order[++n] = st } }
        /^erd_http_request_duration_seconds_sum\{route="\/v1\/resolve"\}/ { hs = $NF }
        /^erd_http_request_duration_seconds_count\{route="\/v1\/resolve"\}/ { hc = $NF }
        END { line = ""; names = ""
              for (i = 1; i <= n; i++) { line = line s[order[i]] " "; names = names order[i] " " }
              print names "|" line hs " " hc }'
}
runwrk() {  # conns secs -> wrk output
    local c=$1 d=$2 t=2
    [ "$c" -lt 2 ] && t=1
    timeout $((d + 60)) wrk -t"$t" -c"$c" -d"${d}s" --timeout 10s -s "$lua" "$url/v1/resolve"
}

echo "== warm-up ${warmup} s at 2 connections"
runwrk 2 "$warmup" >"$work/warmup.txt" 2>&1 || { cat "$work/warmup.txt" >&2; exit 1; }
grep '^ERD_BENCH' "$work/warmup.txt" | sed 's/^/   /'

table=$work/table.txt stages=$work/stages.txt
printf '%5s %10s %9s %9s %9s %9s %7s %9s %9s\n' conns req/s p50_ms p90_ms p99_ms p99.9_ms errors cpu_s peakRSS_MB >"$table"
: >"$stages"
stage_names=
for c in $conns; do
    m0=$(scrape); t0=$(cpu_ticks)
    runwrk "$c" "$duration" >"$work/wrk-$c.txt" 2>&1 || { cat "$work/wrk-$c.txt" >&2; exit 1; }
    t1=$(cpu_ticks); m1=$(scrape); hwm=$(hwm_kb)
    line=$(grep '^ERD_BENCH requests=' "$work/wrk-$c.txt") || { cat "$work/wrk-$c.txt" >&2; exit 1; }
    grep '^ERD_BENCH non-200' "$work/wrk-$c.txt" >&2 || true
    kv() { tr ' ' '\n' <<<"$line" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
    errs=$(( $(kv non200) + $(kv socket_errors) ))
    awk -v c="$c" -v rps="$(kv rps)" -v a="$(kv p50_us)" -v b="$(kv p90_us)" -v d="$(kv p99_us)" \
        -v e="$(kv p999_us)" -v err="$errs" -v t0="$t0" -v t1="$t1" -v tck="$tck" -v hwm="$hwm" \
        'BEGIN { printf "%5d %10.1f %9.2f %9.2f %9.2f %9.2f %7d %9.2f %9.1f\n",
                 c, rps, a / 1e3, b / 1e3, d / 1e3, e / 1e3, err, (t1 - t0) / tck, hwm / 1024 }' >>"$table"
    stage_names=${m1%%|*}
    awk -v c="$c" -v a="${m0#*|}" -v b="${m1#*|}" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        req = y[n] - x[n]; if (req <= 0) { printf "%5d  (no resolves counted)\n", c; exit }
        line = sprintf("%5d %8d", c, req); staged = 0
        for (i = 1; i <= n - 2; i++) { v = (y[i] - x[i]) / req * 1e6; staged += v; line = line sprintf(" %9.1f", v) }
        tot = (y[n-1] - x[n-1]) / req * 1e6
        printf "%s %9.1f %9.1f\n", line, tot - staged, tot }' >>"$stages"
done

echo
echo "== /v1/resolve, ${duration} s per level, wrk min(2,conns) threads; errors = non-200 + socket errors;"
echo "   cpu_s = erd serve user+system CPU during the level; peakRSS = VmHWM of erd serve so far"
cat "$table"
echo
echo "== time per resolve by stage (mean us per request, from /metrics deltas; http_total is the"
echo "   server's /v1/resolve time from first byte to completion; other = http_total minus the"
echo "   counted stages: routing, auth, reading the body, queueing the response)"
{
    printf '%5s %8s' conns requests
    for s in $stage_names; do printf ' %9s' "$s"; done
    printf ' %9s %9s\n' other http_total
} 
cat "$stages"
