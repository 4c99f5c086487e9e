#!/usr/bin/env python3
"""deploy/open_set.py, the generator of the calibration's open-set data (TAP):
extend renames about one entity in five to a longer title its old name is a
shortened form of (a subtitle after a colon, a head before one, a leading
article), keeping ids and order, never two entities on one normalised name,
the same output for the same seed; relatives adds near names that collide
with no catalog name; remove drops the gold entity of the hashed half with
every entity sharing its name.  No erd binary needed.

usage: open_set_tools.py   (ERD_TEST_SRCDIR)
"""
import json, os, random, re, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erdtest  # noqa: E402

tap = erdtest.Tap()
TOOL = os.path.join(erdtest.SRC, "deploy", "open_set.py")
WORDS = ("harbour lantern quiet meadow signal copper winter falcon orchard velvet "
         "granite thunder ribbon candle marble silver echo prairie summit willow").split()


def key(s):
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def run(*args):
    p = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)
    if p.returncode:
        print("# " + p.stderr.replace("\n", "\n# "))
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def shortened_forms(name):
    """What erd indexes a title under besides itself (vix_phrase_variants)."""
    forms = set()
    if ": " in name:
        head, tail = name.split(": ", 1)
        forms |= {head, tail}
    for art in ("The ", "A ", "An "):
        if name.startswith(art):
            forms.add(name[len(art):])
    return forms


def main(work):
    rnd = random.Random(5)
    names = set()
    while len(names) < 400:
        n = " ".join(rnd.choice(WORDS).title() for _ in range(rnd.randint(1, 4)))
        names.add(("The " if rnd.random() < 0.2 else "") + n)
    ents = [{"id": f"t:{i:04d}", "name": n} for i, n in enumerate(sorted(names))]
    cat = os.path.join(work, "catalog.jsonl")
    with open(cat, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e) + "\n" for e in ents)

    rc, ext = run("extend", cat, "11")
    tap.ok(rc == 0 and [e["id"] for e in ext] == [e["id"] for e in ents],
           "extend keeps every id, in order")
    renamed = [(a, b) for a, b in zip(ents, ext) if a["name"] != b["name"]]
    tap.ok(0.1 * len(ents) <= len(renamed) <= 0.3 * len(ents),
           f"about one in five renamed ({len(renamed)} of {len(ents)})")
    tap.ok(all(a["name"] in shortened_forms(b["name"]) for a, b in renamed),
           "each old name is a shortened form of its new one")
    kinds = {("head" if b["name"].startswith(a["name"] + ": ") else
              "tail" if b["name"].endswith(": " + a["name"]) else "article") for a, b in renamed}
    tap.ok(kinds == {"head", "tail", "article"}, f"all three kinds of longer title ({sorted(kinds)})")
    keys = [key(e["name"]) for e in ext]
    tap.ok(len(set(keys)) == len(keys), "no two entities share a normalised name")
    tap.ok(run("extend", cat, "11")[1] == ext and run("extend", cat, "12")[1] != ext,
           "the same seed gives the same catalog, another seed another")

    ext_path = os.path.join(work, "ext.jsonl")
    with open(ext_path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e) + "\n" for e in ext)
    rc, rel = run("relatives", ext_path, "7")
    tap.ok(rc == 0 and rel and not {key(r["name"]) for r in rel} & set(keys)
           and len({r["id"] for r in rel}) == len(rel),
           f"relatives: {len(rel)} near names, none a catalog name, ids distinct")

    queries = os.path.join(work, "queries.jsonl")
    with open(queries, "w", encoding="utf-8") as f:
        for e in ext[:100]:
            f.write(json.dumps({"qid": e["id"], "domain": "t", "entity_id": e["id"],
                                "nbest": [{"text": e["name"]}]}) + "\n")
    rc, kept = run("remove", ext_path, queries)
    rc2, kept_b = run("remove", "--other-half", ext_path, queries)
    gone = {e["id"] for e in ext[:100]} - {e["id"] for e in kept}
    gone_b = {e["id"] for e in ext[:100]} - {e["id"] for e in kept_b}
    tap.ok(rc == 0 and rc2 == 0 and gone and gone_b and not gone & gone_b
           and gone | gone_b == {e["id"] for e in ext[:100]},
           f"remove drops one half of the asked-for entities, --other-half the other ({len(gone)} + {len(gone_b)})")

    # ood: typed lines become one-hypothesis queries, simulate records their
    # n-best lists; either is left out when it is a catalog name
    spoken = [{"spoken": "turn off the lights", "nbest": [{"text": "turn of the lights", "score": -9},
                                                          {"text": "turn off the light", "score": -12}]},
              {"spoken": ext[0]["name"], "nbest": [{"text": "whatever", "score": -1}]}]
    stdin = "what time is it\n" + ext[1]["name"] + "\n" + "".join(json.dumps(r) + "\n" for r in spoken)
    p = subprocess.run([sys.executable, TOOL, "ood", "--catalog", ext_path, "a", "b"], input=stdin,
                       capture_output=True, text=True)
    out = [json.loads(line) for line in p.stdout.splitlines()]
    tap.ok(p.returncode == 0 and len(out) == 4 and all(q["entity_id"] is None for q in out)
           and [q["domain"] for q in out] == ["a", "b", "a", "b"]
           and out[0]["nbest"] == [{"text": "what time is it"}]
           and out[2]["nbest"] == spoken[0]["nbest"] and "2 left out" in p.stderr,
           f"ood: typed and spoken utterances, catalog names left out ({p.stderr.strip()!r})")


erdtest.run_in_temp_dir(main, tap, "erd-open-set-tools-")
