# Shared by deploy/bench.sh and deploy/soak.sh (sourced, not run): makes a
# work folder, gets a built catalog store, writes the request bodies and
# starts `erd serve` on a free loopback port with a /metrics token.
#
# In: top, erd, src (DATA_DIR or DB_FILE), me (the caller's name for
# messages), the BENCH_* and ENCODER variables of deploy/bench.sh.
# Out: work, db, queries, url, pid, mtok, $work/bodies.jsonl; an EXIT trap
# stops the server and removes the work folder.

# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$me: $tool not found (deploy/packages.txt)" >&2; exit 1; }
done
[ -x "$erd" ] || { echo "$me: $erd not built" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/erd-bench.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -f "$src" ]; then
    db=$(cd "$(dirname "$src")" && pwd)/$(basename "$src")
    queries=${BENCH_QUERIES:-$top/../shared/data/queries/dev.jsonl}
    echo "== catalog store $db"
else
    data=$(cd "$src" && pwd)
    queries=${BENCH_QUERIES:-$data/queries/dev.jsonl}
    db=$work/bench.db
    for cat in video book; do
        "$erd" import -q --db "$db" --catalog "$cat" "$data/$cat/catalog.jsonl"
        "$erd" build --db "$db" --catalog "$cat" ${ENCODER:+--encoder "$ENCODER"} >/dev/null
    done
    echo "== imported and built video + book from $data${ENCODER:+ (encoder $ENCODER)}"
fi
# shellcheck disable=SC2086  # BENCH_MAP is a list of words
python3 "$top/tests/bench/bodies.py" "$queries" ${BENCH_MAP:-} >"$work/bodies.jsonl"
echo "== $(wc -l <"$work/bodies.jsonl") request bodies from $queries"

port=$(free_port)
url=http://127.0.0.1:$port
mtok=bench-metrics-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
ERD_LOG_REQUESTS=false ERD_METRICS_TOKEN=$mtok \
    "$erd" serve --db "$db" --listen "127.0.0.1:$port" ${BENCH_THREADS:+--threads "$BENCH_THREADS"} \
    2>"$work/serve.log" &
pid=$!
wait_ready "$pid" "$url" "$work/serve.log" "${BENCH_READY_S:-300}" || exit 1
echo "== erd serve pid $pid on $url ($(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg))"
