#!/usr/bin/env python3
"""Posts every request body of a bodies file (tests/bench/bodies.py) to a
running erd serve, one at a time, and writes each response as one line:
"<line number> <id>:<score> ...".  Two runs against builds that should give
the same answers (a speed-only change) can then be compared with diff.

usage: replay.py URL BODIES.jsonl [TOKEN] > answers.txt
Only loopback URLs are accepted: this is a local measuring tool.
"""
import json
import sys
import urllib.parse
import urllib.request


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    url = argv[1].rstrip("/") + "/v1/resolve"
    host = urllib.parse.urlparse(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(f"replay.py: {host!r} is not a loopback address\n")
        return 2
    headers = {"Content-Type": "application/json"}
    if len(argv) > 3 and argv[3]:
        headers["Authorization"] = "Bearer " + argv[3]
    with open(argv[2], encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            req = urllib.request.Request(url, data=line.encode(), headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    res = json.load(r)
            except urllib.error.HTTPError as e:
                print(lineno, "status", e.code)
                continue
            items = res.get("results", [])
            print(lineno, " ".join(f"{x.get('id')}:{x.get('score'):.9g}" for x in items))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
