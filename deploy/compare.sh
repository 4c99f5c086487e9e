#!/usr/bin/env bash
# erd against PostgreSQL pg_trgm KNN (GiST, ORDER BY name <-> q LIMIT 5) and
# SQLite FTS5 BM25 on the same catalogs and spoken queries, in one run:
# acc@1 on the dev queries and throughput under the same client concurrency,
# then erd's figures as ratios.  A measurement, not a test.
#
# usage: deploy/compare.sh [DATA_DIR]   (default ../shared/data: video/ book/ queries/)
# Environment:
#   COMPARE_CATALOG=FILE one catalog (JSON lines) every query goes to instead of
#                        the video and book catalogs, e.g. deploy/gen-catalog.py's
#                        million entities with both mixed in
#   COMPARE_LIMIT=N      acc@1 from the first N queries of each domain (default all;
#                        pg_trgm needs a while per query on a large catalog)
#   BUILD=DIR            build dir holding erd (default build)
#   COMPARE_DURATION=S   seconds of load per system (default 10)
#   COMPARE_CONNS=N      concurrent clients for every system (default 4; wrk and
#                        pgbench run 2 threads, SQLite 2 processes)
# erd gets each query's whole n-best list (up to 5 hypotheses), as a voice
# assistant sends it.  The baselines answer the same lists (pg_trgm: one
# statement fusing each hypothesis's 5 nearest rows; FTS5: one MATCH of every
# hypothesis's words) and, for reference, the first hypothesis alone.
# Every name and alias is a row for the baselines.  PostgreSQL runs as an
# unprivileged user in a temporary data directory on a Unix socket only;
# traffic goes only to 127.0.0.1 and that socket.  Needs deploy/bench-packages.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
erd=$top/${BUILD:-build}/erd
data=$(cd "${1:-$top/../shared/data}" && pwd)
duration=${COMPARE_DURATION:-10}
conns=${COMPARE_CONNS:-4}
py=$top/tests/bench/compare.py

# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
install_packages "$top/deploy/bench-packages.txt" compare.sh
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "compare.sh: no PostgreSQL server binaries" >&2; exit 1; }
[ -x "$erd" ] || { echo "compare.sh: $erd not built" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/erd-compare.XXXXXX")
chmod 755 "$work"
pid= pgup=
# PostgreSQL refuses to run as root: as root, run it as the postgres user.
asdb() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ -n "$pgup" ] && asdb "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
python3 "$py" prep "$data" "$work" ${COMPARE_CATALOG:+"$COMPARE_CATALOG"}
limit=${COMPARE_LIMIT:-0}
if [ "$limit" -gt 0 ]; then
    for dom in video book; do
        head -n "$limit" "$work/queries-$dom.tsv" >"$work/q.tmp" && mv "$work/q.tmp" "$work/queries-$dom.tsv"
        awk -F '\t' -v m="$limit" '$1 <= m' "$work/nbest-$dom.tsv" >"$work/q.tmp" && mv "$work/q.tmp" "$work/nbest-$dom.tsv"
    done
fi
# shellcheck disable=SC2046  # one DOMAIN=TABLE word per domain
python3 "$top/tests/bench/bodies.py" "$data/queries/dev.jsonl" \
    $(awk '{ print $1 "=" $2 }' "$work/tables.txt") >"$work/bodies.jsonl"
tables=$(awk '{ print $2 }' "$work/tables.txt" | sort -u)
table_of() { awk -v d="$1" '$1 == d { print $2 }' "$work/tables.txt"; }

# ---- erd ----
db=$work/erd.db
while read -r table file; do
    "$erd" import -q --db "$db" --catalog "$table" "$file"
    "$erd" build -q --db "$db" --catalog "$table"
done < <(awk '{ print $2, $3 }' "$work/tables.txt" | sort -u)
port=$(free_port)
ERD_LOG_REQUESTS=false "$erd" serve --db "$db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
wait_ready "$pid" "http://127.0.0.1:$port" "$work/serve.log"
if [ "$limit" -gt 0 ]; then  # the first N of each domain, as for the baselines
    python3 - "$work/bodies.jsonl" "$work/domains.txt" "$limit" <<'PY' >"$work/acc-bodies.jsonl"
import sys
seen = {}
for body, dom in zip(open(sys.argv[1], encoding="utf-8"), open(sys.argv[2], encoding="utf-8")):
    seen[dom] = seen.get(dom, 0) + 1
    # a query past the limit is sent empty: its refusal keeps the numbering
    print(body.rstrip("\n") if seen[dom] <= int(sys.argv[3]) else "{}")
PY
else
    cp "$work/bodies.jsonl" "$work/acc-bodies.jsonl"
fi
python3 "$top/tests/bench/replay.py" "http://127.0.0.1:$port" "$work/acc-bodies.jsonl" >"$work/erd-answers.txt"
python3 "$py" erd-top "$work" "$work/erd-answers.txt" >"$work/erd-top.txt"
erd_acc=$(python3 "$py" score "$work" "$work/erd-top.txt")
ERD_BENCH_BODIES=$work/bodies.jsonl timeout $((duration + 60)) \
    wrk -t2 -c"$conns" -d"${duration}s" -s "$top/tests/bench/resolve.lua" "http://127.0.0.1:$port/v1/resolve" >"$work/wrk.txt"
erd_rps=$(sed -n 's/^ERD_BENCH requests=.* rps=\([0-9.]*\).*/\1/p' "$work/wrk.txt")
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "   erd: acc@1 $erd_acc, $erd_rps req/s"

# ---- PostgreSQL pg_trgm ----
mkdir -p "$work/pg/sock"
chown -R "$( [ "$(id -u)" -eq 0 ] && echo postgres || id -un)" "$work/pg"
asdb "$pgbin/initdb" -D "$work/pg/data" -A trust -U erd >/dev/null
asdb "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-c listen_addresses='' -k $work/pg/sock -c fsync=off -c synchronous_commit=off -c shared_buffers=256MB" \
    start >/dev/null
pgup=1
psqlc() { psql -X -q -h "$work/pg/sock" -U erd -d postgres -v ON_ERROR_STOP=1 "$@"; }
psqlc -c "CREATE EXTENSION pg_trgm"
for table in $tables; do
    psqlc -c "CREATE TABLE $table (id text, name text)" \
          -c "\\copy $table FROM '$work/names-$table.tsv'" \
          -c "CREATE INDEX ${table}_name_idx ON $table USING gist (name gist_trgm_ops)" \
          -c "ANALYZE $table"
done
for dom in video book; do
    psqlc -c "CREATE TABLE q_$dom (i int PRIMARY KEY, t text)" \
          -c "\\copy q_$dom FROM '$work/queries-$dom.tsv'" -c "ANALYZE q_$dom" \
          -c "CREATE TABLE qn_$dom (i int, h int, t text, PRIMARY KEY (i, h))" \
          -c "\\copy qn_$dom FROM '$work/nbest-$dom.tsv'" -c "ANALYZE qn_$dom"
done
# One statement per request.  n-best: each hypothesis's 5 nearest rows by
# the GiST index, an entity's best similarity per hypothesis (it may match by
# name and alias), summed over the hypotheses.  1-best: the 5 nearest rows.
pg_nbest_sql() {  # DOMAIN QUERY-NUMBER-EXPRESSION
    echo "SELECT r.id, sum(r.s) AS s FROM qn_$1 q CROSS JOIN LATERAL
      (SELECT k.id, max(k.sim) AS s FROM
        (SELECT id, 1 - (name <-> q.t) AS sim FROM $(table_of "$1") ORDER BY name <-> q.t LIMIT 5) k
       GROUP BY k.id) r
     WHERE q.i = $2 GROUP BY r.id ORDER BY s DESC, r.id LIMIT 5"
}
pg_1best_sql() {
    echo "SELECT id FROM $(table_of "$1") ORDER BY name <-> (SELECT t FROM q_$1 WHERE i = $2) LIMIT 5"
}
for dom in video book; do
    psqlc -At -F ' ' -c "SELECT '$dom', o.i, (SELECT x.id FROM ($(pg_nbest_sql "$dom" o.i)) x LIMIT 1)
        FROM q_$dom o ORDER BY o.i"
done >"$work/pg-nbest-top.txt"
for dom in video book; do
    psqlc -At -F ' ' -c "SELECT '$dom', q.i, r.id FROM q_$dom q CROSS JOIN LATERAL
        (SELECT id FROM $(table_of "$dom") ORDER BY name <-> q.t LIMIT 5) r ORDER BY q.i"
done >"$work/pg-1best-top.txt"
t=$(table_of video)
for form in nbest 1best; do
    plan=$(psqlc -At -c "EXPLAIN $(pg_${form}_sql video 1)" | grep -c "Index Scan using ${t}_name_idx" || true)
    [ "$plan" -ge 1 ] || echo "compare.sh: warning: pg_trgm $form query does not use the GiST index" >&2
done
pgrun() {  # FORM -> "acc rps"
    local form=$1 dom n acc rps
    acc=$(python3 "$py" score "$work" "$work/pg-$form-top.txt")
    for dom in video book; do
        n=$(wc -l <"$work/queries-$dom.tsv")
        printf '\\set i random(1, %d)\n%s;\n' "$n" "$(pg_${form}_sql "$dom" :i | tr '\n' ' ')" >"$work/pg-$form-$dom.sql"
    done
    pgbench -n -h "$work/pg/sock" -U erd -c "$conns" -j 2 -T "$duration" \
        -f "$work/pg-$form-video.sql@1" -f "$work/pg-$form-book.sql@1" postgres >"$work/pgbench-$form.txt" 2>&1 ||
        { cat "$work/pgbench-$form.txt" >&2; exit 1; }
    rps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench-$form.txt" | head -1)
    echo "$acc $rps"
}
res=$(pgrun nbest); read -r pgn_acc pgn_rps <<<"$res"
echo "   pg_trgm (n-best): acc@1 $pgn_acc, $pgn_rps req/s"
res=$(pgrun 1best); read -r pg1_acc pg1_rps <<<"$res"
echo "   pg_trgm (1-best): acc@1 $pg1_acc, $pg1_rps req/s"
asdb "$pgbin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null; pgup=

# ---- SQLite FTS5 ----
for form in nbest 1best; do
    line=$(python3 "$py" sqlite "$work" "$duration" 2 "$form")
    acc=${line#acc1=}; acc=${acc%% *}; rps=${line##*rps=}
    eval "sq_${form}_acc=\$acc sq_${form}_rps=\$rps"
    echo "   sqlite fts5 ($form): acc@1 $acc, $rps req/s"
done

echo
echo "== $(wc -l <"$work/bodies.jsonl") dev queries${COMPARE_CATALOG:+ against $(basename "$COMPARE_CATALOG")} (acc@1 from $( [ "$limit" -gt 0 ] && echo "the first $limit of each domain" || echo "all of them")), ${duration} s of load each at $conns concurrent clients; load now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   n-best rows get the same requests as erd (each query's whole n-best list);"
echo "   1-best rows only its first hypothesis"
printf '%-30s %8s %12s %14s\n' system acc@1 req/s "erd speed-up"
row() { awk -v n="$1" -v a="$2" -v r="$3" -v e="$erd_rps" 'BEGIN { printf "%-30s %8.3f %12.1f %13.1fx\n", n, a, r, e / r }'; }
row "erd (n-best)" "$erd_acc" "$erd_rps"
row "pg_trgm GiST KNN (n-best)" "$pgn_acc" "$pgn_rps"
row "sqlite FTS5 bm25 (n-best)" "$sq_nbest_acc" "$sq_nbest_rps"
row "pg_trgm GiST KNN (1-best)" "$pg1_acc" "$pg1_rps"
row "sqlite FTS5 bm25 (1-best)" "$sq_1best_acc" "$sq_1best_rps"
echo "   (erd: wrk; pg_trgm: pgbench, one statement per request; sqlite: Python sqlite3"
echo "    processes, whose own overhead is in its figure.  acc@1 counts a result right"
echo "    when it shares a normalised name or alias with the gold entity.)"
