#!/usr/bin/env bash
# Held-out evaluation on simulated recogniser output, for choosing
# parameters without touching the dev queries.
#
# Splits `erd simulate` records by spoken phrase (a hash, so the same phrase
# always lands on the same side), learns the noise channel from the training
# side only, builds a catalog of the held-out spoken phrases plus generated
# distractors, writes the held-out records as queries in the dev format and
# runs `erd eval` once per rerank setting.  A measurement, not a test.
#
# usage: deploy/sim-eval.sh [BUILD_DIR] [RERANK_SPEC...]
#   RERANK_SPEC: off, or options appended to the learned channel file, e.g.
#   "weight=0.5,mode=local" (default: off and the defaults)
# environment:
#   PAIRS        comma-separated JSON lines files, .gz allowed (default: the
#                committed phonetics/models/data/sim-pairs-v1.jsonl.gz and
#                phonetics/models/channel-v1.pairs.jsonl.gz)
#   HOLDOUT      share of spoken phrases held out (default 0.25)
#   DISTRACTORS  generated phrases added to the catalog (default 10000, seed 99)
#   ENCODER      encoder spec for the build (default baseline)
#   WORK         keep the work folder here instead of a temporary one
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
erd=$top/$build/erd
pairs=${PAIRS:-$top/phonetics/models/data/sim-pairs-v1.jsonl.gz,$top/phonetics/models/channel-v1.pairs.jsonl.gz}
holdout=${HOLDOUT:-0.25}
distractors=${DISTRACTORS:-10000}
encoder=${ENCODER:-baseline}
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
work_dir erd-sim-eval
specs=("$@")
[ ${#specs[@]} -eq 0 ] && specs=(off "")

"$erd" phrases --seed 99 --count "$distractors" >"$work/distractors.txt"

python3 - "$work" "$holdout" "$pairs" <<'EOF'
import gzip, hashlib, json, re, sys
work, holdout, pairs = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(',')
# Complete lines only: a file may still be growing under a running simulation.
with open(f'{work}/all.jsonl', 'wb') as out:
    for p in pairs:
        data = (gzip.open(p) if p.endswith('.gz') else open(p, 'rb')).read()
        out.write(data[:data.rfind(b'\n') + 1])
def key(s):
    return re.sub(r'[^a-z0-9]+', ' ', s.lower()).strip()
def held(s):
    return int(hashlib.md5(key(s).encode()).hexdigest()[:8], 16) / 2**32 < holdout
ids, n_train, n_q = {}, 0, 0
with open(f'{work}/all.jsonl') as f, open(f'{work}/train.jsonl', 'w') as tr, \
        open(f'{work}/queries.jsonl', 'w') as q:
    for line in f:
        if not line.strip():
            continue
        r = json.loads(line)
        if not held(r['spoken']):
            tr.write(line if line.endswith('\n') else line + '\n')
            n_train += 1
            continue
        k = key(r['spoken'])
        if not k or not r['nbest']:
            continue
        if k not in ids:
            ids[k] = (f'sim:{len(ids):05d}', r['spoken'])
        q.write(json.dumps({'qid': f'sim-{n_q:05d}', 'domain': 'sim', 'entity_id': ids[k][0],
                            'spoken': r['spoken'], 'nbest': r['nbest']}) + '\n')
        n_q += 1
n_d = 0
with open(f'{work}/catalog.jsonl', 'w') as c:
    for k, (i, name) in ids.items():
        c.write(json.dumps({'id': i, 'name': name}) + '\n')
    seen = set(ids)
    for line in open(f'{work}/distractors.txt'):
        name = line.strip()
        if not name or key(name) in seen:
            continue
        seen.add(key(name))
        c.write(json.dumps({'id': f'distractor:{n_d:05d}', 'name': name}) + '\n')
        n_d += 1
print(f'sim-eval: {n_train} training records; {n_q} held-out queries over {len(ids)} '
      f'spoken phrases; catalog {len(ids)} + {n_d} distractors', file=sys.stderr)
EOF

"$erd" channel -q --pairs "$work/train.jsonl" --out "$work/channel.txt"
db=$work/sim.db
rm -f "$db" "$db"-* "$work"/*.faiss
"$erd" import -q --db "$db" --catalog sim "$work/catalog.jsonl"
"$erd" build --db "$db" --catalog sim --encoder "$encoder" >/dev/null

for spec in "${specs[@]}"; do
    if [ "$spec" = off ]; then
        full=off
    else
        full=$work/channel.txt${spec:+,$spec}
    fi
    echo "== rerank ${spec:-on (defaults)}  encoder $encoder"
    ERD_RERANK=$full "$erd" eval --db "$db" --queries "$work/queries.jsonl"
done
