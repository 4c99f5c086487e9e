#!/usr/bin/env bash
# The open-set measurement of issue 11, through `erd serve` with the default
# model and configuration.  A measurement on the dev queries, never a way to
# choose anything.
#
#   1. Open set: from each shared catalog, the entities of half of the dev
#      queries (md5 of the gold id) are removed together with every entity
#      sharing a normalised name with them (deploy/open_set.py remove); all
#      1,000 queries are resolved n-best.  Printed: AUROC of the top score,
#      right answers against queries whose entity is gone; the share of
#      those rejected at the threshold that keeps 90 % of the right answers;
#      what "match" says under the default threshold.
#   2. Full catalogs: acc@1 of the 1,000 queries without a threshold and
#      counting only right answers with "match": true; and the 400
#      out-of-domain test utterances (phonetics/models/data/ood-test-v1.txt,
#      never trained on) sent to each catalog as one text: the share answered
#      "match": false; likewise the 400 written by hand (ood-test-v2.txt),
#      in other words than the generator's templates, typed and spoken
#      (ood-test-v2-spoken.jsonl.gz: erd simulate --seed 7 --jobs 1 --voices
#      slt,rms,awb,kal16,festival:ked_diphone --noise-prob 0.3, 5-best).
#
# usage: deploy/eval-open-set.sh DATA_DIR [BUILD_DIR]   (DATA_DIR holds video/ book/ queries/)
# ERD_* variables reach every erd command.
set -euo pipefail
data=$(cd "${1:?usage: eval-open-set.sh DATA_DIR [BUILD_DIR]}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
erd=$top/${2:-build}/erd
work_dir erd-open-set

for cat in video book; do
    python3 "$top/deploy/open_set.py" remove "$data/$cat/catalog.jsonl" \
        "$data/queries/dev.jsonl" >"$work/$cat-open.jsonl"
    for kind in full open; do
        src=$data/$cat/catalog.jsonl
        [ $kind = open ] && src=$work/$cat-open.jsonl
        "$erd" import -q --db "$work/$kind.db" --catalog "$cat" "$src"
        "$erd" build -q --db "$work/$kind.db" --catalog "$cat"
    done
done
python3 "$top/deploy/open_set.py" ood video book <"$top/phonetics/models/data/ood-test-v1.txt" \
    | cat "$data/queries/dev.jsonl" - >"$work/dev-ood.jsonl"

# serve DB, then erd eval --open-set QUERIES over HTTP
serve_eval() {
    local db=$1 queries=$2 port
    port=$(free_port)
    ERD_LOG_REQUESTS=false "$erd" serve --db "$db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
    pid=$!
    wait_ready "$pid" "http://127.0.0.1:$port" "$work/serve.log"
    "$erd" eval --open-set --db "$db" --queries "$queries" --url "http://127.0.0.1:$port"
    kill "$pid"
    wait "$pid" || true
    pid=
}
echo "== open set: half of the dev queries' entities removed"
serve_eval "$work/open.db" "$data/queries/dev.jsonl"
echo "== full catalogs: dev queries and out-of-domain utterances (ood-test-v1)"
serve_eval "$work/full.db" "$work/dev-ood.jsonl"
# the hand-written utterances, in other words than any template's
python3 "$top/deploy/open_set.py" ood video book <"$top/phonetics/models/data/ood-test-v2.txt" \
    >"$work/ood-v2.jsonl"
echo "== full catalogs: out-of-domain utterances written by hand (ood-test-v2)"
serve_eval "$work/full.db" "$work/ood-v2.jsonl"
# the same, spoken by five voices and recognised (n-best)
gzip -dc "$top/phonetics/models/data/ood-test-v2-spoken.jsonl.gz" |
    python3 "$top/deploy/open_set.py" ood video book >"$work/ood-v2-spoken.jsonl"
echo "== full catalogs: those utterances spoken (ood-test-v2-spoken, n-best)"
serve_eval "$work/full.db" "$work/ood-v2-spoken.jsonl"
