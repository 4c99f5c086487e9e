#!/usr/bin/env bash
# Fits the command table (index/vix_command.h) behind the open-set
# calibration's "command" feature: word and word-pair log-odds of
# utterances said to an assistant against title-like names and what a
# recogniser heard of them.  Refit the calibration after it
# (deploy/fit-calibration.sh): the feature's values change with the table.
#
# usage: deploy/fit-command.sh [BUILD_DIR]      (default build)
#   OUT   table to write (default phonetics/models/command-v1.json)
#   WORK  keep the work folder here (default a temporary one)
#   TEMPLATES=even  fit on every other template of deploy/gen-ood.py only and
#         report on commands of the other half (how the table does on
#         phrasings it never saw); the file written is then no default
#
# Data, never the evaluation sets:
#   - commands: 6,000 sentences of deploy/gen-ood.py --set v2 --seed 3 (none of them
#     in ood-train-v1/-v2 or ood-test-v1/-v2; the calibration's out-of-domain
#     utterances, ood-train-v2, come from templates kept apart from these,
#     so the calibration learns what the score says of phrasings the table
#     never saw);
#   - names: the committed synthetic title-like phrases and the simulation
#     records the shipped encoders trained on (sim-pairs-v1, -v2: each spoken
#     phrase and its five recognised hypotheses, hallucinated function words
#     and all);
#   - reported, not fitted: ood-test-v2 (400 utterances written by hand for
#     the purpose, in another style than the generator's templates) against
#     the hypotheses of sim-pairs-v3 (phrases no table or encoder saw).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
erd=$top/$build/erd
out=${OUT:-$top/phonetics/models/command-v1.json}
# shellcheck source=deploy/lib.sh
. "$top/deploy/lib.sh"
work_dir erd-fit-command
data=$top/phonetics/models/data
templates=${TEMPLATES:-all}

python3 "$top/deploy/gen-ood.py" --seed 3 --count 6000 --set v2 --templates "$templates" \
    --exclude "$data/ood-train-v1.txt" --exclude "$data/ood-test-v1.txt" \
    --exclude "$data/ood-train-v2.txt" --exclude "$data/ood-test-v2.txt" >"$work/commands.txt"
test_commands=$data/ood-test-v2.txt
if [ "$templates" != all ]; then
    other=$([ "$templates" = even ] && echo odd || echo even)
    python3 "$top/deploy/gen-ood.py" --seed 4 --count 400 --set v2 --templates "$other" >"$work/other.txt"
    test_commands=$work/other.txt
fi
python3 - "$data" "$work" <<'PY'
import gzip, json, sys
d, w = sys.argv[1] + '/', sys.argv[2] + '/'
def texts(name, limit=None):
    for i, line in enumerate(gzip.open(d + name, 'rt')):
        if limit is not None and i >= limit:
            break
        r = json.loads(line)
        yield r['spoken']
        for h in r['nbest']:
            yield h['text']
with open(w + 'names.txt', 'w') as f:
    for name in ('sim-pairs-v1.jsonl.gz', 'sim-pairs-v2.jsonl.gz'):
        f.writelines(t + '\n' for t in texts(name))
    f.writelines(gzip.open(d + 'synthetic-phrases-v2.txt.gz', 'rt'))
with open(w + 'test-names.txt', 'w') as f:
    f.writelines(t + '\n' for t in texts('sim-pairs-v3.jsonl.gz', 1000))
PY
"$erd" command-fit --commands "$work/commands.txt" --names "$work/names.txt" --out "$out" \
    --test-commands "$test_commands" --test-names "$work/test-names.txt"
