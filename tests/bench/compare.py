#!/usr/bin/env python3
"""Helpers of deploy/compare.sh: erd against PostgreSQL pg_trgm and SQLite
FTS5 on the same catalogs and spoken queries.

  compare.py prep DATA_DIR WORK [CATALOG]
                                   catalogs -> WORK/names-<table>.tsv (id, name;
                                   one row per name and alias), queries ->
                                   WORK/queries-<dom>.tsv (n, 1-best text),
                                   WORK/nbest-<dom>.tsv (n, h, text: every
                                   hypothesis of query n, h = 1 the best),
                                   WORK/gold.json and WORK/tables.txt ("<domain>
                                   <table> <catalog file>" lines).  Tables are
                                   the video and book catalogs, or with CATALOG
                                   one table "big" every query goes to
  compare.py score WORK RESULTS    acc@1 of "<domain> <n> <id>" rows (the top
                                   result of query n of that domain)
  compare.py erd-top WORK ANSWERS  turns tests/bench/replay.py answers (one per
                                   dev query, in order) into such rows
  compare.py sqlite WORK SECONDS PROCS nbest|1best
                                   FTS5 BM25 over the names: acc@1 of every
                                   query, then PROCS processes querying for
                                   SECONDS; prints "acc1=.. rps=.."

A result is right when it is the gold entity or shares a normalised name or
alias with it (catalogs hold duplicate titles), as `erd eval` counts.
erd gets each query's whole n-best list, as a voice assistant sends it.
The baselines are measured twice: on the same lists (each hypothesis looked
up, the lists fused: for FTS5 one MATCH of every hypothesis's words, for
pg_trgm the sum over hypotheses of each entity's best trigram similarity
among that hypothesis's 5 nearest rows), and on the first hypothesis alone.
"""
import json
import multiprocessing
import os
import re
import sqlite3
import sys
import time

WORD = re.compile(r"\w+", re.UNICODE)


def norm(s):
    return " ".join(WORD.findall(s.lower()))


def tsv_field(s):
    return s.replace("\t", " ").replace("\n", " ").replace("\\", "\\\\")


def prep(data, work, catalog=None):
    names = {}
    if catalog:
        files = {"video": ("big", catalog), "book": ("big", catalog)}
    else:
        files = {d: (d, os.path.join(data, d, "catalog.jsonl")) for d in ("video", "book")}
    with open(os.path.join(work, "tables.txt"), "w", encoding="utf-8") as f:
        for dom, (table, path) in files.items():
            f.write(f"{dom} {table} {os.path.abspath(path)}\n")
    for table, path in sorted(set(files.values())):
        with open(path, encoding="utf-8") as f, \
                open(os.path.join(work, f"names-{table}.tsv"), "w", encoding="utf-8") as out:
            for line in f:
                if not line.strip():
                    continue
                e = json.loads(line)
                all_names = [e["name"]] + [a for a in e.get("aliases", []) if isinstance(a, str)]
                names[e["id"]] = sorted({norm(x) for x in all_names})
                for x in all_names:
                    out.write(f"{tsv_field(e['id'])}\t{tsv_field(x)}\n")
    gold = {"video": [], "book": []}
    outs = {d: open(os.path.join(work, f"queries-{d}.tsv"), "w", encoding="utf-8") for d in gold}
    nbest = {d: open(os.path.join(work, f"nbest-{d}.tsv"), "w", encoding="utf-8") for d in gold}
    doms = open(os.path.join(work, "domains.txt"), "w", encoding="utf-8")
    with open(os.path.join(data, "queries", "dev.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            q = json.loads(line)
            dom = q["domain"]
            doms.write(f"{dom}\n")  # one line per query, as bodies.py writes them
            if dom not in gold:
                continue
            n = len(gold[dom]) + 1
            outs[dom].write(f"{n}\t{tsv_field(q['nbest'][0]['text'])}\n")
            texts = []
            for hyp in q["nbest"]:
                if hyp["text"].strip() and hyp["text"] not in texts:
                    texts.append(hyp["text"])
            for h, text in enumerate(texts, 1):
                nbest[dom].write(f"{n}\t{h}\t{tsv_field(text)}\n")
            gold[dom].append(q["entity_id"])
    for o in list(outs.values()) + list(nbest.values()):
        o.close()
    doms.close()
    with open(os.path.join(work, "gold.json"), "w", encoding="utf-8") as f:
        json.dump({"gold": gold, "names": names}, f)


def load_gold(work):
    """Gold ids of the queries in WORK/queries-<dom>.tsv (possibly cut
    short), and every entity's normalised names."""
    with open(os.path.join(work, "gold.json"), encoding="utf-8") as f:
        g = json.load(f)
    gold = {}
    for dom, ids in g["gold"].items():
        with open(os.path.join(work, f"queries-{dom}.tsv"), encoding="utf-8") as f:
            gold[dom] = ids[:sum(1 for _ in f)]
    return gold, g["names"]


def right(names, gold_id, got_id):
    if got_id == gold_id:
        return True
    a, b = names.get(gold_id, []), names.get(got_id, [])
    return bool(set(a) & set(b))


def score(work, results):
    gold, names = load_gold(work)
    top = {}
    with open(results, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                top.setdefault((parts[0], int(parts[1])), parts[2])
    total = hits = 0
    for dom, ids in gold.items():
        for i, gid in enumerate(ids, 1):
            total += 1
            hits += right(names, gid, top.get((dom, i), ""))
    print(f"{hits / total:.3f}" if total else "nan")


def erd_top(work, answers):
    with open(os.path.join(work, "domains.txt"), encoding="utf-8") as f:
        doms = [line.strip() for line in f]
    seen = {}
    with open(answers, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            dom = doms[int(parts[0]) - 1]
            seen[dom] = seen.get(dom, 0) + 1
            top = parts[1].rsplit(":", 1)[0] if len(parts) > 1 and parts[1] != "status" else ""
            print(dom, seen[dom], top)


def fts_query(texts):
    """One FTS5 query: any word of any of the texts."""
    toks = []
    for text in texts:
        for t in WORD.findall(text.lower()):
            if t not in toks:
                toks.append(t)
    return " OR ".join('"' + t.replace('"', '') + '"' for t in toks) if toks else None


def table_map(work):
    with open(os.path.join(work, "tables.txt"), encoding="utf-8") as f:
        return dict(line.split()[:2] for line in f if line.strip())


def sqlite_open(work):
    path = os.path.join(work, "fts.db")
    fresh = not os.path.exists(path)
    db = sqlite3.connect(path)
    if fresh:
        for table in sorted(set(table_map(work).values())):
            db.execute(f"CREATE VIRTUAL TABLE {table} USING fts5(id UNINDEXED, name)")
            with open(os.path.join(work, f"names-{table}.tsv"), encoding="utf-8") as f:
                rows = (line.rstrip("\n").split("\t", 1) for line in f)
                db.executemany(f"INSERT INTO {table}(id, name) VALUES (?, ?)", rows)
        db.commit()
    return db


def load_queries(work, nbest):
    """(domain, n, table, FTS5 query) of every dev query: from its whole
    n-best list, or from its first hypothesis."""
    qs = []
    for dom, table in table_map(work).items():
        texts = {}
        name = f"nbest-{dom}.tsv" if nbest else f"queries-{dom}.tsv"
        with open(os.path.join(work, name), encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                texts.setdefault(int(parts[0]), []).append(parts[-1])
        with open(os.path.join(work, f"queries-{dom}.tsv"), encoding="utf-8") as f:
            count = sum(1 for _ in f)  # queries-<dom>.tsv may have been cut short
        for n in range(1, count + 1):
            qs.append((dom, n, table, fts_query(texts.get(n, []))))
    return qs


def sqlite_top(db, table, q):
    if not q:
        return ""
    row = db.execute(f"SELECT id FROM {table} WHERE {table} MATCH ? ORDER BY bm25({table}) "
                     "LIMIT 5", (q,)).fetchone()
    return row[0] if row else ""


def sqlite_worker(args):
    work, seconds, offset, nbest = args
    db = sqlite_open(work)
    qs = load_queries(work, nbest)
    n, i = 0, offset
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        _, _, table, q = qs[i % len(qs)]
        if q:
            db.execute(f"SELECT id FROM {table} WHERE {table} MATCH ? ORDER BY bm25({table}) "
                       "LIMIT 5", (q,)).fetchall()
        n += 1
        i += 1
    return n


def sqlite_run(work, seconds, procs, nbest):
    db = sqlite_open(work)
    qs = load_queries(work, nbest)
    rows = os.path.join(work, "sqlite-top.txt")
    with open(rows, "w", encoding="utf-8") as out:
        for dom, n, table, q in qs:
            out.write(f"{dom} {n} {sqlite_top(db, table, q)}\n")
    db.close()
    gold, names = load_gold(work)
    top = {}
    with open(rows, encoding="utf-8") as f:
        for line in f:
            p = line.split()
            top[(p[0], int(p[1]))] = p[2] if len(p) > 2 else ""
    hits = sum(right(names, gid, top.get((d, i), "")) for d, ids in gold.items()
               for i, gid in enumerate(ids, 1))
    total = sum(len(v) for v in gold.values())
    with multiprocessing.Pool(procs) as pool:
        t0 = time.monotonic()
        counts = pool.map(sqlite_worker, [(work, seconds, k * 397, nbest) for k in range(procs)])
        wall = time.monotonic() - t0
    print(f"acc1={hits / total:.3f} rps={sum(counts) / max(wall, seconds):.1f}")


def main(argv):
    if len(argv) >= 4 and argv[1] == "prep":
        prep(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    elif len(argv) >= 4 and argv[1] == "score":
        score(argv[2], argv[3])
    elif len(argv) >= 4 and argv[1] == "erd-top":
        erd_top(argv[2], argv[3])
    elif len(argv) >= 6 and argv[1] == "sqlite" and argv[5] in ("nbest", "1best"):
        sqlite_run(argv[2], float(argv[3]), int(argv[4]), argv[5] == "nbest")
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
