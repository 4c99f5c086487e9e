#!/usr/bin/env python3
"""Turns dev-format queries into ready /v1/resolve bodies for tests/bench/resolve.lua.

usage: bodies.py QUERIES.jsonl [DOMAIN=CATALOG ...] > bodies.jsonl

Each input line is a JSON object with "domain" and "nbest": [{"text", "score"}];
each output line is {"catalog": ..., "hypotheses": [...], "k": K} (K from
$ERD_BENCH_K, default 5).  A domain maps to the catalog of the same name unless
DOMAIN=CATALOG says otherwise; "*=CATALOG" sends every query to one catalog.
"""
import json
import os
import sys


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    mapping = {}
    for arg in argv[2:]:
        dom, sep, cat = arg.partition("=")
        if not sep or not dom or not cat:
            sys.stderr.write(f"bodies.py: bad mapping {arg!r} (want DOMAIN=CATALOG)\n")
            return 2
        mapping[dom] = cat
    k = int(os.environ.get("ERD_BENCH_K", "5"))
    n = 0
    with open(argv[1], encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            q = json.loads(line)
            dom = q.get("domain")
            nbest = q.get("nbest")
            if not isinstance(dom, str) or not isinstance(nbest, list) or not nbest:
                sys.stderr.write(f"bodies.py: {argv[1]}:{lineno}: no domain or nbest\n")
                return 65
            cat = mapping.get("*", mapping.get(dom, dom))
            hyps = [{"text": h["text"], "score": h["score"]} if "score" in h else {"text": h["text"]}
                    for h in nbest]
            sys.stdout.write(json.dumps({"catalog": cat, "hypotheses": hyps, "k": k},
                                        ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    if n == 0:
        sys.stderr.write(f"bodies.py: {argv[1]}: no queries\n")
        return 65
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
