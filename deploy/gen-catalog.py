#!/usr/bin/env python3
"""Writes a large synthetic catalog (JSON lines for `erd import`), reproducible
from a seed, with real catalogs mixed in so accuracy can still be measured.

usage: deploy/gen-catalog.py [--erd BIN] [--seed N] [--count M]
                             [--titles FILE] [--mix FILE ...] > catalog.jsonl

Generated names come from `erd phrases` (words of the CMU pronouncing
dictionary and WordNet, built into titles, person and place names and
multi-word phrases by templates; a pure function of the seed).  A share of
them (--derived, default 0.03) instead extends a real bundled title (--titles,
default deploy/demo/books.jsonl) with a subtitle or sequel marker, the
near-duplicates a growing catalog really gets ("Dune: The Silent Harbor",
"Dune Part 3").  Every --mix FILE (e.g. ../shared/data/video/catalog.jsonl)
is copied in unchanged, so the dev queries' gold entities stay findable.
Generated ids are "gen<seed>:<n>".
"""
import argparse
import json
import os
import random
import subprocess
import sys

SEQUEL = ["Part 2", "Part 3", "II", "III", "Returns", "Reloaded", "The Sequel", "Revisited",
          "The Beginning", "Redux"]


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--erd", default=os.path.join(top, "build", "erd"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000000)
    ap.add_argument("--derived", type=float, default=0.03)
    ap.add_argument("--titles", default=os.path.join(top, "deploy", "demo", "books.jsonl"))
    ap.add_argument("--mix", action="append", default=[])
    a = ap.parse_args()
    if a.count < 0 or not 0 <= a.derived <= 1:
        ap.error("--count must be >= 0 and --derived in [0, 1]")

    rng = random.Random(a.seed)
    titles = []
    with open(a.titles, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                titles.append(json.loads(line)["name"])
    if not titles:
        ap.error(f"{a.titles}: no titles")

    proc = subprocess.Popen([a.erd, "phrases", "--seed", str(a.seed), "--count", str(a.count),
                             "--show-kind"], stdout=subprocess.PIPE, text=True, encoding="utf-8")
    out = sys.stdout
    n = 0
    for line in proc.stdout:
        kind, _, phrase = line.rstrip("\n").partition("\t")
        if not phrase:
            continue
        name = phrase
        if rng.random() < a.derived:
            base = rng.choice(titles)
            if rng.random() < 0.5:
                name = f"{base}: {phrase}"
                kind = "derived-subtitle"
            else:
                name = f"{base} {rng.choice(SEQUEL)}"
                kind = "derived-sequel"
        out.write(json.dumps({"id": f"gen{a.seed}:{n}", "name": name, "aliases": [],
                              "attrs": {"generated": kind}}, ensure_ascii=False) + "\n")
        n += 1
    if proc.wait() != 0:
        sys.stderr.write("gen-catalog.py: erd phrases failed\n")
        return 1
    mixed = 0
    for path in a.mix:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    out.write(line if line.endswith("\n") else line + "\n")
                    mixed += 1
    sys.stderr.write(f"gen-catalog.py: {n} generated (seed {a.seed}) + {mixed} mixed in\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
