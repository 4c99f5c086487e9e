#!/usr/bin/env bash
# The bits/accuracy table of issue 15: n-best acc@1 / recall@5 of each
# encoder's vectors kept as float, bfloat16, or 8-, 4- and 2-bit codes (the
# shared scalar quantiser, phonetics/pho_quant.h, through the
# quant:BITS:SPEC encoder, searched exactly: the codes' own accuracy before
# any float rescoring), and through FAISS's SQ8 / PQ16 / PQ32 factories on
# the same float vectors.  Two query sets:
#   - held-out simulated: the records of sim-pairs-v3 and -v3-after no
#     shipped model was trained on (phrases never trained on either), as
#     n-best queries against a catalog of their phrases plus 10,000
#     generated distractors (phonetics/models/README.md, deploy/sim-matrix.py);
#   - dev (video + book, 1,000 queries): measured, never chosen on.
# A measurement, not a test.  The first stage alone by default
# (ERD_RERANK=off; set ERD_RERANK=on for the served two-stage path);
# calibration off (it does not change the order).
#
# usage: deploy/measure-bits.sh DATA_DIR [BUILD_DIR]   (DATA_DIR holds video/ book/ queries/)
# MODELS="LABEL=SPEC ..."  encoders (default: the shipped model and the --squash 4 one)
# CODES="float bf16 8 4 2" FACTORIES="SQ8 PQ16 PQ32"  rows per encoder (empty: none)
# WORK=DIR keeps the databases and query files there; with KEEP_DB=1 a later
# run reuses that database (its phonemes are cached) instead of importing again.
set -euo pipefail
data=$(cd "${1:?usage: measure-bits.sh DATA_DIR [BUILD_DIR]}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
erd=$top/${2:-build}/erd
if [ -n "${WORK:-}" ]; then
    work=$WORK
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/erd-bits.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi
export ERD_RERANK=${ERD_RERANK:-off} ERD_CALIBRATION=${ERD_CALIBRATION:-off}
models=${MODELS:-shipped=model:erd-siamese-v2.bin sq4=model:erd-siamese-v2-sq4.bin}
cd "$top"

# the held-out records, exactly as phonetics/models/README.md selects them
python3 - "$work/heldout.jsonl" <<'PY'
import gzip, json, sys
d = 'phonetics/models/data/'
rd = lambda f: gzip.open(d + f).read().decode().splitlines()
seen = set(rd('sim-pairs-v1.jsonl.gz') + rd('sim-pairs-v2.jsonl.gz'))
spoken = {json.loads(l)['spoken'].lower() for l in seen if l.strip()}
out = [l for l in rd('sim-pairs-v3.jsonl.gz') + rd('sim-pairs-v3-after.jsonl.gz')
       if l.strip() and l not in seen and json.loads(l)['spoken'].lower() not in spoken]
open(sys.argv[1], 'w').write('\n'.join(out) + '\n')
PY
deploy/sim-matrix.py prepare --test "$work/heldout.jsonl" --work "$work/sim" --erd "$erd"

db=$work/bits.db
if [ "${KEEP_DB:-0}" != 1 ] || [ ! -e "$db" ]; then # KEEP_DB=1: phonemes cached by a former run
    rm -f "$db" "$db"-wal "$db"-shm "$db".*.faiss
    "$erd" import -q --db "$db" --catalog sim "$work/sim/catalog.jsonl"
    for cat in video book; do
        "$erd" import -q --db "$db" --catalog "$cat" "$data/$cat/catalog.jsonl"
    done
fi

# n-best acc@1 and recall@5 of the "all" row (or the only domain's)
nbest() {
    python3 -c '
import json, sys
rows = [r for r in map(json.loads, sys.stdin) if r["mode"] == "n-best"]
r = next((r for r in rows if r["domain"] == "all"), rows[-1])
print("%.3f %.3f %d" % (r["acc1"], r["recall5"], r["queries"]))'
}

row() { # LABEL CODES SPEC FACTORY
    local s e sim dev
    s=$(date +%s)
    for cat in sim video book; do
        "$erd" build -q --db "$db" --catalog "$cat" --encoder "$3" --factory "$4"
    done
    sim=$("$erd" eval --db "$db" --queries "$work/sim/queries.jsonl" --json 2>/dev/null | nbest)
    dev=$("$erd" eval --db "$db" --queries "$data/queries/dev.jsonl" --json 2>/dev/null | nbest)
    e=$(date +%s)
    set -- "$1" "$2" "$3" "$4" $sim $dev
    printf '| %s | %s | %s | %s | %s | %s | %s |  %ss |\n' "$1" "$2" "$5" "$6" "$8" "$9" \
        "$7/${10}" $((e - s))
}

echo "rerank: $ERD_RERANK; held-out simulated: $(wc -l < "$work/sim/queries.jsonl") queries," \
     "catalog of $(wc -l < "$work/sim/catalog.jsonl") phrases"
echo '| encoder | vectors | held-out acc@1 | held-out R@5 | dev acc@1 | dev R@5 | queries | time |'
echo '|---|---|---:|---:|---:|---:|---:|---:|'
for m in $models; do
    label=${m%%=*} spec=${m#*=}
    for c in ${CODES-float bf16 8 4 2}; do
        case $c in
            float) row "$label" float "$spec" Flat ;;
            bf16) row "$label" bfloat16 "quant:bf16:$spec" Flat ;;
            *) row "$label" "$c-bit codes" "quant:$c:$spec" Flat ;;
        esac
    done
    for f in ${FACTORIES-SQ8 PQ16 PQ32}; do
        row "$label" "FAISS $f" "$spec" "$f"
    done
done
