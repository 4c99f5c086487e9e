#!/usr/bin/env bash
# What compressing the vectors costs in accuracy: builds the video catalog
# with a Flat index and with PQ / IVF-PQ ones and evaluates the spoken dev
# queries on each (first stage + rerank + calibration, in process).  A
# measurement for deploy/SCALE-OUT.md, not a test.
#
# usage: deploy/measure-pq.sh DATA_DIR [BUILD_DIR]   (DATA_DIR holds video/ queries/)
# FACTORIES="Flat PQ16 ..." overrides the list.
set -euo pipefail
data=$(cd "${1:?usage: measure-pq.sh DATA_DIR}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
erd=$top/${2:-build}/erd
work=$(mktemp -d "${TMPDIR:-/tmp}/erd-pq.XXXXXX")
trap 'rm -rf "$work"' EXIT

db=$work/pq.db
"$erd" import -q --db "$db" --catalog video "$data/video/catalog.jsonl"
printf '%-24s %10s %9s %13s %13s %10s\n' factory index_MB build_s 1best_acc@1 nbest_acc@1 nbest_R@5
for f in ${FACTORIES:-Flat PQ32 PQ16 IVF64,PQ32 IVF64,PQ16}; do
    s=$(date +%s.%N)
    "$erd" build -q --db "$db" --catalog video --factory "$f"
    e=$(date +%s.%N)
    size=$(stat -c %s "$db".video.*.faiss)
    "$erd" eval --db "$db" --queries "$data/queries/dev.jsonl" --domain video --json 2>/dev/null |
        python3 -c '
import json, sys
rows = {r["mode"]: r for r in map(json.loads, sys.stdin)}
one, nb = rows["1-best"], rows["n-best"]
f, size, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("%-24s %10.2f %9.1f %13.3f %13.3f %10.3f" % (f, size / 1e6, secs, one["acc1"], nb["acc1"], nb["recall5"]))' \
        "$f" "$size" "$(echo "$e - $s" | bc)"
done
