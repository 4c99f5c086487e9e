#!/usr/bin/env bash
# Fits the learned second-stage ranker (phonetics/models/ranker-v1.json)
# from committed data, never the dev queries: the simulated records no
# shipped encoder or channel was trained on (in sim-pairs-v3 or
# sim-pairs-v3-after but not v1/v2, 4,676 records, their phrases never
# trained on), as a catalog of their phrases plus 10,000 generated
# distractors and queries in the dev format; erd rank-fit fits on the
# queries of one half of the phrases and prints top-1 accuracy on the other
# half beside the hand-set blend.
#
# usage: deploy/fit-ranker.sh [OUT.json] [BUILD_DIR]
# The rerank it is fitted under is the configured one (ERD_RERANK), without
# any ranker= item; the file must then sit beside that channel file.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/phonetics/models/ranker-v1.json}
erd=$top/${2:-build}/erd
work=$(mktemp -d "${TMPDIR:-/tmp}/erd-fit-ranker.XXXXXX")
trap 'rm -rf "$work"' EXIT
d=$top/phonetics/models/data

python3 - "$d" "$work/heldout.jsonl" <<'PY'
import gzip, json, sys
d, out = sys.argv[1], sys.argv[2]
rd = lambda f: gzip.open(f'{d}/{f}').read().decode().splitlines()
seen = set(rd('sim-pairs-v1.jsonl.gz') + rd('sim-pairs-v2.jsonl.gz'))
spoken = {json.loads(l)['spoken'].lower() for l in seen if l.strip()}
keep = [l for l in rd('sim-pairs-v3.jsonl.gz') + rd('sim-pairs-v3-after.jsonl.gz')
        if l.strip() and l not in seen and json.loads(l)['spoken'].lower() not in spoken]
open(out, 'w').write('\n'.join(keep) + '\n')
PY
python3 "$top/deploy/sim-matrix.py" prepare --test "$work/heldout.jsonl" --work "$work" --erd "$erd"
"$erd" import -q --db "$work/sim.db" --catalog sim "$work/catalog.jsonl"
"$erd" build -q --db "$work/sim.db" --catalog sim
"$erd" rank-fit --db "$work/sim.db" --queries "$work/queries.jsonl" --out "$out"
