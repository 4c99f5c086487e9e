#!/usr/bin/env python3
"""Explanations of 20 dev queries checked against the numbers they explain (TAP).

Imports and builds the shared video and book catalogs (../shared/data next
to the source tree, or $ERD_DATA), starts `erd serve` on loopback and
resolves the first 10 dev queries of each domain with "explain": true.  For
every result and hypothesis: the alignment's step costs add up to the
hypothesis's cost, and cost -> pair score (exp(-max(0, cost) / (phones *
temperature)), times 0.98 for a short form) -> weighted mean -> blend with
the first-stage cosine gives the reported rerank score; the alignment
walks the hypothesis's and the phrase's phones in order; the hypothesis's
phones are those POST /v1/analyze gives for its text, and a matched name's
or alias's those it gives for that text (its "second" when the CMU
pronunciation matched); the top result's
rerank score is the highest.  The queries are only measured against
themselves: nothing is tuned here.  Exits 77 (skip) when the data is absent.

usage: explain_dev.py  (ERD_EXE, ERD_TEST_SRCDIR; ERD_DATA optional)
"""
import json, math, os, socket, subprocess, sys, tempfile, time, urllib.request

EXE = os.environ["ERD_EXE"]
SRC = os.environ["ERD_TEST_SRCDIR"]
DATA = os.environ.get("ERD_DATA", os.path.join(SRC, "..", "shared", "data"))
PER_DOMAIN = 10
n_test = failed = 0


def ok(cond, what):
    global n_test, failed
    n_test += 1
    failed += not cond
    print(("ok" if cond else "not ok") + f" {n_test} - {what}", flush=True)
    return cond


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_hypothesis(res, hyp, ana, temperature):
    """Cost chain of one hypothesis; returns its pair score (None on failure)."""
    steps = hyp["alignment"]
    total = sum(s["cost"] for s in steps)
    good = abs(total - hyp["cost"]) <= 1e-3 * (1 + abs(hyp["cost"]))
    heard = [s["hyp"] for s in steps if s["op"] != "del"]
    said = [s["ref"] for s in steps if s["op"] != "ins"]
    good &= heard == hyp["phones"] and said == hyp["phrase"]["phones"]
    good &= all(s["hyp"] == s["ref"] for s in steps if s["op"] == "match")
    n = max(1, len(hyp["phones"]))
    score = math.exp(-max(0.0, total) / (n * temperature))
    if hyp["phrase"]["derived"]:
        score *= 0.98
    good &= abs(score - hyp["score"]) <= 1e-4
    good &= hyp["phones"] == ana["phones"][:96]
    return score if good else None


def check_query(port, q):
    body = {"catalog": q["domain"], "hypotheses": q["nbest"], "k": 5, "explain": True}
    ans = post(port, "/v1/resolve", body)
    ex = ans["explain"]
    w, temp = ex["rerank_weight"], ex["temperature"]
    analyzed = [post(port, "/v1/analyze", {"text": h["text"], "catalog": q["domain"]})
                for h in ex["hypotheses"]]
    phones_ok = all(h["phones"] == a["phones"][:96] and h["text"] == a["text"]
                    for h, a in zip(ex["hypotheses"], analyzed))
    ok(phones_ok, f"{q['qid']}: every hypothesis's phones and text equal /v1/analyze's")
    worst = 0.0
    chains_ok = True
    for res in ans["results"]:
        e = res["explain"]
        acc = wsum = 0.0
        for hyp, ana in zip(e["hypotheses"], analyzed):
            wsum += hyp["weight"]
            if "phrase" not in hyp:
                continue
            s = check_hypothesis(res, hyp, ana, temp)
            if s is None:
                chains_ok = False
                continue
            acc += hyp["weight"] * s
        second = acc / wsum
        rerank = min(1.0, max(0.0, (1 - w) * e["first_stage_cosine"] + w * second))
        worst = max(worst, abs(rerank - e["rerank_score"]), abs(second - e["alignment_score"]))
    ok(chains_ok and worst <= 1e-4,
       f"{q['qid']}: step costs add up to each hypothesis's cost and score, and those to every "
       f"result's rerank score (largest difference {worst:.2e})")
    phrases_ok, said, cmu = True, {}, set()
    for res in ans["results"]:
        for hyp in res["explain"]["hypotheses"]:
            ph = hyp.get("phrase")
            if not ph or ph["derived"] or not ph["text"] or ph["kind"] == "unknown":
                continue
            if ph["text"] not in said:
                said[ph["text"]] = post(port, "/v1/analyze", {"text": ph["text"], "catalog": q["domain"]})
            ana = said[ph["text"]]
            if "CMU" in ph["kind"]:
                cmu.add(ph["text"])
            want = ana.get("second", {}).get("phones") if "CMU" in ph["kind"] else ana["phones"]
            phrases_ok &= bool(want) and ph["phones"] == want[:len(ph["phones"])] and len(ph["phones"]) > 0
    ok(phrases_ok, f"{q['qid']}: every matched name's phones are /v1/analyze's for its text "
       f"({len(said)} names, {len(cmu)} matched in the CMU pronunciation: analyze's \"second\")")
    ranked = [r["explain"]["rerank_score"] for r in ans["results"]]
    # the order model (order= in the rerank) places the top results by its
    # own score; any after them follow the rerank, below all of those
    placed = [r["explain"]["order_score"] for r in ans["results"] if "order_score" in r["explain"]]
    n_placed = len(placed)
    order_ok = (placed == sorted(placed, reverse=True) and
                all("order_score" in r["explain"] for r in ans["results"][:n_placed]) and
                (not placed or not ranked[n_placed:] or min(ranked[:n_placed]) >= max(ranked[n_placed:])))
    ranked = ranked[n_placed:]
    # the rerank's budget may leave the first stage's least likely
    # candidates unaligned, never the 32 best nor a result
    aligned_ok = (min(32, ex["candidates"]) <= ex["aligned"] <= ex["candidates"] and
                  len(ans["results"]) <= ex["aligned"])
    ok(order_ok and ranked == sorted(ranked, reverse=True) and aligned_ok and ans["match"] == (
        bool(ans["results"]) and ans["results"][0]["score"] >= ans["threshold"]),
       f"{q['qid']}: results in order ({n_placed} placed by the order model, the rest by the "
       f"rerank), {ex['aligned']} of {ex['candidates']} candidates "
       f"aligned, match follows the threshold")


def main():
    queries = os.path.join(DATA, "queries", "dev.jsonl")
    if not all(os.path.exists(p) for p in
               [queries] + [os.path.join(DATA, c, "catalog.jsonl") for c in ("video", "book")]):
        print(f"1..0 # SKIP no shared data at {DATA}")
        return 77
    picked = {"video": [], "book": []}
    for line in open(queries):
        q = json.loads(line)
        if q["domain"] in picked and len(picked[q["domain"]]) < PER_DOMAIN:
            picked[q["domain"]].append(q)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "dev.db")
        for cat in picked:
            for args in (["import", "-q", "--db", db, "--catalog", cat,
                          os.path.join(DATA, cat, "catalog.jsonl")],
                         ["build", "-q", "--db", db, "--catalog", cat]):
                subprocess.run([EXE, *args], check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        log = open(os.path.join(tmp, "serve.log"), "wb")
        proc = subprocess.Popen([EXE, "serve", "--db", db, "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=log,
                                env=dict(os.environ, ERD_LOG_REQUESTS="false"))
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            print(f"1..{3 * 2 * PER_DOMAIN}")
            for cat in picked:
                for q in picked[cat]:
                    check_query(port, q)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
