#!/usr/bin/env bash
# Freezes the running robust simulation (deploy/sim-robust.sh OUTDIR) into
# the repository: phonetics/models/data/sim-pairs-v4.jsonl.gz (complete
# records minus any naming an evaluation title) and its manifest.  Run it
# again as the simulation grows; each run replaces both.
#
# usage: deploy/sim-freeze.sh OUTDIR CATALOG.jsonl...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: sim-freeze.sh OUTDIR CATALOG.jsonl...}
shift
data=$top/phonetics/models/data
"$top/deploy/sim-snapshot.sh" "$data/sim-pairs-v4.jsonl.gz" "$out/pairs-v4.jsonl" "$@"
python3 "$top/deploy/sim-manifest.py" "$data/sim-pairs-v4.jsonl.gz" \
    "deploy/sim-robust.sh OUTDIR (erd simulate --seed 41 over erd phrases --seed 41 --count 100000, filtered)" \
    > "$data/sim-pairs-v4.manifest.json"
