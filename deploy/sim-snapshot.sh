#!/usr/bin/env bash
# Freezes simulated training pairs for the repository: the complete records
# of PAIRS (an erd simulate output, possibly still growing), minus every
# record whose spoken phrase is a name or alias of an evaluation catalog
# (compared as lower-case letters and digits), gzipped to OUT.  The shipped
# models must never have heard an evaluation title.  A PAIRS file ending in
# .txt is a phrase list (erd phrases), filtered line by line the same way.
#
# usage: deploy/sim-snapshot.sh OUT.jsonl.gz PAIRS.jsonl [CATALOG.jsonl ...]
set -euo pipefail
out=${1:?usage: sim-snapshot.sh OUT.jsonl.gz PAIRS.jsonl [CATALOG.jsonl ...]}
pairs=${2:?usage: sim-snapshot.sh OUT.jsonl.gz PAIRS.jsonl [CATALOG.jsonl ...]}
shift 2
python3 - "$pairs" "$@" <<'PY' | gzip -9n > "$out"
import json, re, sys

def key(s):
    return re.sub(r"[^a-z0-9]+", "", s.lower())

banned = set()
for path in sys.argv[2:]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            for name in [e.get("name", "")] + list(e.get("aliases") or []):
                if key(name):
                    banned.add(key(name))
kept = dropped = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        if not line.endswith("\n"):
            break  # a record still being written
        spoken = line.rstrip("\n") if sys.argv[1].endswith(".txt") else \
            json.loads(line).get("spoken", "")
        if key(spoken) in banned:
            dropped += 1
            continue
        sys.stdout.write(line)
        kept += 1
print(f"sim-snapshot: kept {kept} records, dropped {dropped} naming an evaluation title",
      file=sys.stderr)
PY
