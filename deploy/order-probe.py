#!/usr/bin/env python3
"""Would a learned order of the top results beat the rerank's?  A probe on
held-out simulated queries (never dev), for the next second stage.

Resolves every held-out query through a running erd serve with
"explain": true, keeps each of the top N results' open-set features (the
calibration's: alignment fit and coverage, word misses, first-stage cosine,
...), splits the queries by a hash of the spoken phrase (or by voice
engine), fits a listwise linear model (softmax over a query's N results,
maximising the probability of the right ones, L2 on standardised weights,
full-batch Adam) on one side and prints acc@1 of the rerank's order and of
the fitted order on both sides, by condition on the held-out side.

usage:
  deploy/order-probe.py dump --url http://127.0.0.1:PORT --catalog sim \\
      --queries QUERIES.jsonl --out FEATURES.jsonl [--k 10]
      (a query's "domain", when it has one, names its catalog; out-of-domain
      queries, "entity_id": null, are skipped)
  deploy/order-probe.py fit --features FEATURES.jsonl --test HELDOUT.jsonl \\
      [--top 5] [--split half|reverse|festival|flite|voice:flite:kal] [--drop margin,gap,log_rank]
      [--write ORDER.json --rerank RERANK_ID]

QUERIES.jsonl: `deploy/sim-matrix.py prepare`'s queries (qid, spoken,
nbest) against its catalog; HELDOUT.jsonl: the held-out records with their
voice and perturbation (`deploy/sim-matrix.py split --test`), for the split
by engine and the conditions.  A right result has the phrase's normalised
name, as `erd eval` counts it.
"""
import argparse
import collections
import hashlib
import http.client
import json
import math
import re
import sys
import urllib.parse


def norm(s):
    return re.sub(r"[^a-z0-9' ]+", " ", s.lower()).replace("'", "").split()


def cmd_dump(a):
    u = urllib.parse.urlparse(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("order-probe: only a loopback erd serve is probed")
    conn = http.client.HTTPConnection(u.hostname, u.port or 80)
    with open(a.queries, encoding="utf-8") as f, open(a.out, "w", encoding="utf-8") as out:
        for line in f:
            q = json.loads(line)
            if "entity_id" in q and q["entity_id"] is None:
                continue  # out of domain: no right result to order
            body = json.dumps({"catalog": q.get("domain", a.catalog), "hypotheses": q["nbest"],
                               "k": a.k, "explain": True})
            conn.request("POST", "/v1/resolve", body, {"Content-Type": "application/json"})
            r = json.loads(conn.getresponse().read())
            if "error" in r:
                sys.exit(f"order-probe: {q['qid']}: {r['error']}")
            res = [{"name": x["name"], "f": x["explain"]["features"]} for x in r["results"]]
            out.write(json.dumps({"qid": q["qid"], "spoken": q["spoken"], "res": res}) + "\n")


def half(spoken):
    return int(hashlib.md5(spoken.encode()).hexdigest(), 16) % 2


def condition(rec):
    p = rec.get("perturb", {})
    if not p.get("noise"):
        return "clean"
    if p.get("noise_type") == "babble":
        return "babble"
    snr = p.get("snr_db", 99)
    return "< 10 dB" if snr < 10 else "10-20 dB" if snr < 20 else ">= 20 dB"


def fit(train, dim, iters=250, lr=0.05, l2=1e-3, start=None):
    w = list(start) if start else [0.0] * dim
    m, v = [0.0] * dim, [0.0] * dim
    for it in range(1, iters + 1):
        g = [0.0] * dim
        for xs, ys in train:
            s = [sum(wd * xd for wd, xd in zip(w, x)) for x in xs]
            top = max(s)
            e = [math.exp(t - top) for t in s]
            z = sum(e)
            p = [t / z for t in e]
            py = sum(pi for pi, yi in zip(p, ys) if yi)
            for i, x in enumerate(xs):
                c = p[i] - (p[i] / py if ys[i] else 0)
                if c:
                    for d in range(dim):
                        g[d] += c * x[d]
        for d in range(dim):
            gd = g[d] / len(train) + l2 * w[d]
            m[d] = 0.9 * m[d] + 0.1 * gd
            v[d] = 0.999 * v[d] + 0.001 * gd * gd
            w[d] -= lr * (m[d] / (1 - 0.9 ** it)) / (math.sqrt(v[d] / (1 - 0.999 ** it)) + 1e-8)
    return w


def pick(w, xs):
    s = [sum(wd * xd for wd, xd in zip(w, x)) for x in xs]
    return max(range(len(xs)), key=lambda i: (s[i], -i))


def cmd_fit(a):
    rows = [json.loads(line) for line in open(a.features, encoding="utf-8")]
    recs = {}
    with open(a.test, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            recs[r["id"]] = r
    drop = set(filter(None, a.drop.split(",")))
    names = [n for n in sorted(rows[0]["res"][0]["f"]) if n not in drop] if rows else []
    sides = {
        "half": lambda q: half(q["spoken"]) == 0,
        "reverse": lambda q: half(q["spoken"]) == 1,
        "festival": lambda q: recs[q["qid"]]["voice"].startswith("festival:"),
        "flite": lambda q: not recs[q["qid"]]["voice"].startswith("festival:"),
    }
    if a.split.startswith("voice:"):  # leave one voice out: fitted without it, measured on it
        sides[a.split] = lambda q: recs[q["qid"]]["voice"] != a.split[6:]
    on_train = sides[a.split]
    lists = {True: [], False: []}
    for q in rows:
        gold = norm(q["spoken"])
        res = q["res"][:a.top]
        xs = [[r["f"][n] for n in names] for r in res]
        ys = [norm(r["name"]) == gold for r in res]
        lists[on_train(q)].append((q, xs, ys))
    dim = len(names)
    allx = [x for _, xs, _ in lists[True] for x in xs]
    mean = [sum(x[d] for x in allx) / len(allx) for d in range(dim)]
    scale = [math.sqrt(sum((x[d] - mean[d]) ** 2 for x in allx) / len(allx)) or 1.0
             for d in range(dim)]
    for side in lists.values():
        for i, (q, xs, ys) in enumerate(side):
            side[i] = (q, [[(x[d] - mean[d]) / scale[d] for d in range(dim)] for x in xs], ys)
    start = [1.0 if n == "score" else 0.0 for n in names]
    w = fit([(xs, ys) for _, xs, ys in lists[True] if any(ys) and len(xs) > 1], dim, start=start)
    for label, side in (("fitted on", lists[True]), ("held out", lists[False])):
        n = len(side)
        base = sum(ys[0] for _, xs, ys in side if xs)
        new = sum(ys[pick(w, xs)] for _, xs, ys in side if xs)
        print(f"{label:9s} {n:5d} queries: acc@1 rerank order {base / n:.4f}, "
              f"fitted order {new / n:.4f}")
    by = collections.defaultdict(lambda: [0, 0, 0])
    for q, xs, ys in lists[False]:
        if xs and q["qid"] in recs:
            c = by[condition(recs[q["qid"]])]
            c[0] += 1
            c[1] += ys[0]
            c[2] += ys[pick(w, xs)]
    for c, (n, base, new) in sorted(by.items()):
        print(f"  {c:9s} {n:5d}: {base / n:.3f} -> {new / n:.3f}")
    ranked = sorted(zip(names, w), key=lambda t: -abs(t[1]))
    print("largest weights:", ", ".join(f"{n} {x:+.2f}" for n, x in ranked[:10]))
    if a.write:
        model = {"format": "erd-order", "version": 1, "top": a.top, "rerank": a.rerank,
                 "features": names, "mean": mean, "scale": scale, "weights": w,
                 "provenance": (f"deploy/order-probe.py fit features={a.features.split('/')[-1]} "
                                f"split={a.split} top={a.top} drop={a.drop} "
                                f"lists={sum(1 for _, xs, ys in lists[True] if any(ys))}")}
        write_summed(model, a.write)
        print(f"wrote {a.write}")


def canonical(v):
    """jansson's json_dumps(JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17)),
    the text index/vix_jsonfile.c sums."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        t = "%.17g" % v
        if "." not in t and "e" not in t:
            t += ".0"
        if "e" in t:
            m, e = t.split("e")
            sign = "-" if e.startswith("-") else ""
            t = m + "e" + sign + (e.lstrip("+-").lstrip("0") or "0")
        return t
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=True)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    return "{" + ",".join(json.dumps(k) + ":" + canonical(v[k]) for k in sorted(v)) + "}"


def write_summed(model, path):
    h = 0xcbf29ce484222325
    for b in canonical(model).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    model = dict(model, checksum=f"fnv1a64:{h:016x}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {canonical(model[k])}"
                                     for k in sorted(model)) + "\n}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--url", required=True)
    d.add_argument("--catalog", default="sim")
    d.add_argument("--queries", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--k", type=int, default=10)
    f = sub.add_parser("fit")
    f.add_argument("--features", required=True)
    f.add_argument("--test", required=True)
    f.add_argument("--top", type=int, default=5)
    f.add_argument("--split", default="half",
                   help="half, reverse, festival, flite or voice:ENGINE:NAME (leave it out)")
    f.add_argument("--drop", default="margin,gap,log_rank")
    f.add_argument("--write", help="the fitted order as a model file (index/vix_order.h)")
    f.add_argument("--rerank", default="",
                   help="the rerank id the features came from (a calibration file's rerank line)")
    a = ap.parse_args()
    (cmd_dump if a.cmd == "dump" else cmd_fit)(a)


if __name__ == "__main__":
    main()
