#!/usr/bin/env bash
# Imports the shared video and book catalogs, builds them and prints
# acc@1 / recall@5 / MRR on the dev queries, in process and through
# `erd serve` over HTTP.  A measurement, not a test.
#
# usage: deploy/eval-dev.sh DATA_DIR [BUILD_DIR]   (DATA_DIR holds video/ book/ queries/)
# ENCODER=SPEC builds with that encoder (e.g. model:phonetics/models/erd-siamese-v1.bin);
# ERD_* variables (ERD_RERANK=off, ...) reach every erd command.
set -euo pipefail
data=$(cd "${1:?usage: eval-dev.sh DATA_DIR}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
erd=$top/${2:-build}/erd
work_dir erd-eval

db=$work/eval.db
for cat in video book; do
    s=$(date +%s.%N)
    "$erd" import -q --db "$db" --catalog "$cat" "$data/$cat/catalog.jsonl"
    "$erd" build --db "$db" --catalog "$cat" ${ENCODER:+--encoder "$ENCODER"}
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" -v c="$cat" 'BEGIN { printf "import + build of %s: %.1f s\n", c, e - s }'
done

echo "== in process"
"$erd" eval --db "$db" --queries "$data/queries/dev.jsonl"

port=$(free_port)
ERD_LOG_REQUESTS=false "$erd" serve --db "$db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
wait_ready "$pid" "http://127.0.0.1:$port" "$work/serve.log"
echo "== over HTTP (erd serve)"
"$erd" eval --db "$db" --queries "$data/queries/dev.jsonl" --url "http://127.0.0.1:$port"
