#!/usr/bin/env python3
"""Every erd subcommand once, on the 46-book mini catalog (TAP): its exit
code and what it writes, its --help, and for the commands that read numbers
a malformed one refused with exit 2.  The commands that need a tool erd
cannot ship (flite, sox and pocketsphinx for simulate; WordNet for phrases
and train-semantic) are reported as skipped when it is missing.  Also checks
that config/erd.conf is `erd config --dump` under its header, and that
erd's own IVF searching every list answers as exact Flat.

usage: commands.py   (ERD_EXE, ERD_TEST_SRCDIR)
"""
import gzip, json, os, re, shutil, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erdtest  # noqa: E402
from erdtest import erd  # noqa: E402

tap = erdtest.Tap()
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ERD_")}
MODELS = os.path.join(erdtest.SRC, "phonetics", "models")
COMMANDS = ["import", "build", "serve", "catalog", "entity", "snapshot", "resolve", "eval",
            "config", "phrases", "simulate", "train", "adapt", "channel", "train-semantic",
            "tune", "calibrate", "rank-fit", "command-fit"]


def skip(what, why):
    tap.n += 1
    print(f"ok {tap.n} - {what} # SKIP {why}", flush=True)


def write_queries(path, ood=True):
    """One query per mini entity (its name, and its first word as a worse
    second hypothesis or, for every third, as the only one, so that some
    answers are wrong) and two without an entity: simulated-style input
    made from the catalog itself."""
    n = 0
    with open(erdtest.MINI, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            e = json.loads(line)
            name, first = e["name"].lower(), e["name"].lower().split()[0]
            nbest = [{"text": first, "score": 0.9}] if i % 3 == 0 else \
                    [{"text": name, "score": 0.8}, {"text": first, "score": 0.2}]
            out.write(json.dumps({"domain": "mini", "entity_id": e["id"], "nbest": nbest}) + "\n")
            n += 1
        for text in ("turn on the kitchen lights", "what time is it") if ood else ():
            out.write(json.dumps({"domain": "mini", "entity_id": None,
                                  "nbest": [{"text": text, "score": 0.9}]}) + "\n")
    return n


def write_pairs(path, n=200):
    with gzip.open(os.path.join(MODELS, "data", "sim-pairs-v1.jsonl.gz"), "rt", encoding="utf-8") as f, \
            open(path, "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            if i == n:
                break
            out.write(line)


def helps():
    for cmd in COMMANDS:
        rc, out, _ = erd(cmd, "--help")
        tap.ok(rc == 0 and out.startswith(f"usage: erd {cmd}"), f"erd {cmd} --help")
    for cmd, opt in (("eval", "--limit"), ("calibrate", "--limit"), ("calibrate", "--k"),
                     ("train", "--epochs"), ("simulate", "--jobs"), ("rank-fit", "--iterations"),
                     ("command-fit", "--alpha")):
        rc, _, err = erd(cmd, opt, "abc")
        tap.ok(rc == 2 and "abc" in err, f"erd {cmd} {opt} abc is refused with exit 2 ({err.strip()!r})")


def store_commands(s, tmp):
    db2 = os.path.join(tmp, "fresh.db")
    rc, _, err = erd("import", "-q", "--db", db2, "--catalog", "books", erdtest.MINI)
    tap.ok(rc == 0 and os.path.exists(db2), f"import ({err.strip()!r})")
    rc, _, err = erd("build", "-q", "--db", db2, "--catalog", "books")
    tap.ok(rc == 0, f"build ({err.strip()!r})")
    rc, out, _ = erd("catalog", "list", "--db", s.db)
    tap.ok(rc == 0 and "mini" in out, "catalog list names mini")
    rc, out, _ = erd("catalog", "describe", "mini", "--db", s.db)
    tap.ok(rc == 0 and "46" in out, "catalog describe mini counts its 46 entities")
    rc, out, _ = erd("entity", "get", "--catalog", "mini", "goodbooks:1", "--db", s.db)
    tap.ok(rc == 0 and "The Hunger Games" in out, "entity get goodbooks:1")
    snap = os.path.join(tmp, "mini.snap")
    rc, _, err = erd("snapshot", "--db", s.db, "--out", snap)
    tap.ok(rc == 0 and os.path.getsize(snap) > 0, f"snapshot writes a file ({err.strip()!r})")
    rc, out, _ = erd("resolve", "--db", s.db, "--catalog", "mini", "the hunger games")
    tap.ok(rc == 0 and "goodbooks:1" in out.split("\n", 1)[0] + out, "resolve finds The Hunger Games")
    srv = erdtest.Server(s.db)
    try:
        status, body = srv.call("POST", "/v1/resolve", {"catalog": "mini", "text": "the hunger games"})
        tap.ok(status == 200 and body["results"][0]["id"] == "goodbooks:1", "serve answers a resolve")
    finally:
        srv.stop()


def config_file():
    rc, out, _ = erd("config", "--dump", env=CLEAN_ENV)
    with open(os.path.join(erdtest.SRC, "config", "erd.conf"), encoding="utf-8") as f:
        conf = f.read()
    header = conf[:len(conf) - len(out)] if conf.endswith(out) else None
    tap.ok(rc == 0 and header is not None and
           all(not l.strip() or l.startswith("#") for l in header.splitlines()),
           "config/erd.conf is `erd config --dump` under a comment header")


def measuring_commands(s, tmp, queries, n_queries):
    closed = os.path.join(tmp, "closed.jsonl")
    write_queries(closed, ood=False)
    rc, out, err = erd("eval", "--db", s.db, "--queries", closed)
    row = [l.split() for l in out.splitlines() if l.startswith("mini") and "n-best" in l]
    tap.ok(rc == 0 and row and int(row[0][2]) == n_queries, f"eval counts {n_queries} queries ({err.strip()!r})")
    rc, out, _ = erd("eval", "--db", s.db, "--queries", closed, "--limit", "5", "--json")
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    tap.ok(rc == 0 and rows and rows[0]["queries"] == 5, "eval --limit 5 --json: five queries")
    cal = os.path.join(tmp, "cal.txt")
    rc, out, err = erd("calibrate", "--db", s.db, "--queries", queries, "--out", cal, "-k", "5",
                       "--open-set")
    tap.ok(rc == 0 and os.path.exists(cal) and "top model" in out, f"calibrate writes a calibration ({err.strip()[-200:]!r})")
    rank = os.path.join(tmp, "rank.json")
    rc, _, err = erd("rank-fit", "--db", s.db, "--queries", queries, "--out", rank, "--iterations", "10")
    tap.ok(rc == 0 and os.path.exists(rank), f"rank-fit writes a ranker ({err.strip()[-200:]!r})")
    rc, out, err = erd("tune", "--db", s.db, "--catalog", "mini", "--queries", closed,
                       "--semantic", "semantic:" + os.path.join(MODELS, "erd-semantic-v1.bin"),
                       "--grid", "0,1")
    tap.ok(rc == 0 and out.strip(), f"tune tries two weights ({err.strip()[-200:]!r})")


def training_commands(s, tmp):
    pairs = os.path.join(tmp, "pairs.jsonl")
    write_pairs(pairs)
    model = os.path.join(tmp, "model.bin")
    rc, _, err = erd("train", "-q", "--pairs", pairs, "--out", model, "--epochs", "1", "--threads", "1")
    tap.ok(rc == 0 and os.path.getsize(model) > 0, f"train writes a model ({err.strip()[-200:]!r})")
    both = os.path.join(tmp, "both.bin")
    rc, _, err = erd("train", "--pairs", pairs, "--out", both, "--epochs", "1", "--threads", "1",
                     "--second-pronunciation")
    more = re.search(r"(\d+) more pairs with a second pronunciation", err)
    tap.ok(rc == 0 and more and int(more.group(1)) > 0 and os.path.getsize(both) > 0,
           f"train --second-pronunciation pairs hypotheses with the CMU pronunciation too "
           f"({err.strip()[-300:]!r})")
    plain = os.path.join(tmp, "plain-voice.bin")
    rc, _, err = erd("train", "-q", "--pairs", pairs, "--out", plain, "--epochs", "1",
                     "--second-pronunciation", env=dict(os.environ, ERD_G2P_VOICE="en-us"))
    tap.ok(rc != 0 and "+cmu" in err and not os.path.exists(plain),
           f"--second-pronunciation under a voice without +cmu is refused ({err.strip()[-200:]!r})")
    channel = os.path.join(tmp, "channel.txt")
    rc, _, err = erd("channel", "-q", "--pairs", pairs, "--out", channel, "--rounds", "1")
    tap.ok(rc == 0 and os.path.getsize(channel) > 0, f"channel writes a channel ({err.strip()[-200:]!r})")
    nearer = os.path.join(tmp, "channel-nearer.txt")
    rc, _, err = erd("channel", "--pairs", pairs, "--out", nearer, "--rounds", "1",
                     "--second-pronunciation")
    got = re.search(r"(\d+) aligned with the CMU pronunciation", err)
    tap.ok(rc == 0 and got and int(got.group(1)) > 0 and " nearer " in open(nearer).read(),
           f"channel --second-pronunciation aligns some hypotheses with the CMU one ({err.strip()[-200:]!r})")
    adapted = os.path.join(tmp, "adapted.bin")
    rc, _, err = erd("adapt", "-q", "--db", s.db, "--catalog", "mini", "--pairs", pairs, "--out", adapted,
                     "--base", model, "--channel", channel, "--epochs", "1", "--threads", "1")
    tap.ok(rc == 0 and os.path.getsize(adapted) > 0, f"adapt writes a model ({err.strip()[-200:]!r})")


def command_table(s, tmp):
    """command-fit on a few hundred commands against the mini catalog's
    names; the rerank then gives a command a higher command feature than
    a title."""
    commands, names = os.path.join(tmp, "commands.txt"), os.path.join(tmp, "names.txt")
    with open(os.path.join(MODELS, "data", "ood-train-v2.txt"), encoding="utf-8") as f:
        lines = f.readlines()[:300]
    with open(commands, "w", encoding="utf-8") as out:
        out.writelines(lines)
    with open(erdtest.MINI, encoding="utf-8") as f, open(names, "w", encoding="utf-8") as out:
        out.writelines(json.loads(l)["name"] + "\n" for l in f)
    table = os.path.join(tmp, "command.json")
    rc, out, err = erd("command-fit", "--commands", commands, "--names", names, "--out", table,
                       "--min-count", "2", "--test-commands", commands, "--test-names", names)
    tap.ok(rc == 0 and os.path.exists(table) and "n-grams" in out and "AUROC" in out,
           f"command-fit writes a table and reports on held-out texts ({err.strip()[-200:]!r})")
    rc, _, err = erd("command-fit", "--commands", names, "--names", os.path.join(tmp, "none.txt"),
                     "--out", os.path.join(tmp, "no.json"))
    tap.ok(rc != 0 and not os.path.exists(os.path.join(tmp, "no.json")) and "none.txt" in err,
           f"command-fit without its names file fails and writes nothing ({err.strip()!r})")
    env = dict(CLEAN_ENV, ERD_CALIBRATION="off",
               ERD_RERANK=os.path.join(MODELS, "channel-v4.txt") + ",command=" + table)

    def command_feature(text):
        rc, out, err = erd("resolve", "--db", s.db, "--catalog", "mini", "--json", "--explain",
                           "-k", "1", text, env=env)
        if rc != 0:
            return None
        return json.loads(out)["results"][0]["explain"]["features"]["command"]
    title = json.loads(open(erdtest.MINI, encoding="utf-8").readline())["name"]
    cmd, name = command_feature("turn on the kitchen lights please"), command_feature(title)
    tap.ok(cmd is not None and name is not None and cmd > 0 > name,
           f"the command feature: {cmd} for a command, {name} for a title")


def tool_commands(tmp):
    if not os.path.isdir("/usr/share/wordnet"):
        skip("phrases", "WordNet (wordnet-base) is not installed")
        skip("train-semantic", "WordNet (wordnet-base) is not installed")
    else:
        rc, out, err = erd("phrases", "--count", "20", "--seed", "3")
        lines = out.splitlines()
        tap.ok(rc == 0 and len(lines) == 20 and len(set(lines)) == 20, f"phrases writes 20 distinct phrases ({err.strip()!r})")
        sem = os.path.join(tmp, "sem.bin")
        # the whole WordNet corpus however small the model: 10 minutes under
        # AddressSanitizer on a slow 2-core VM (most of it system time in the
        # sanitizer's allocator), seconds in a release build
        rc, _, err = erd("train-semantic", "--out", sem, "--words", "300", "--epochs", "1",
                         "--dim", "8", "--buckets", "10", "--retrofit", "0", "--threads", "1",
                         timeout=1000)
        tap.ok(rc == 0 and os.path.getsize(sem) > 0, f"train-semantic writes a model ({err.strip()[-200:]!r})")
    tools = [t for t in ("flite", "sox") if not shutil.which(t)]
    if tools or not os.path.isdir("/usr/share/pocketsphinx/model/en-us"):
        skip("simulate", f"missing {', '.join(tools) or 'the pocketsphinx model'}")
        return
    phrases = os.path.join(tmp, "phrases.txt")
    with open(phrases, "w") as f:
        f.write("the hunger games\n")
    out = os.path.join(tmp, "sim.jsonl")
    rc, _, err = erd("simulate", "-q", "--in", phrases, "--out", out, "--voices", "slt", "-j", "1")
    recs = [json.loads(l) for l in open(out)] if os.path.exists(out) else []
    tap.ok(rc == 0 and len(recs) == 1 and recs[0]["spoken"] == "the hunger games" and recs[0]["nbest"],
           f"simulate writes one record with an n-best list ({err.strip()[-200:]!r})")


def erd_ivf(tmp):
    """erd's own IVF end to end (one coarse level and two): built with every
    list searched and every vector rescored, it answers as exact Flat does,
    byte for byte; the
    file it writes is its own format (mapped by erd serve and resolve)."""
    out = {}
    for name, factory in (("flat", "Flat"), ("erd", "erdIVF4,SQ4|nprobe=4,rescore=1000"),
                          ("grouped", "erdIVF8_G2,SQ4|nprobe=8,gprobe=2,rescore=1000")):
        db = os.path.join(tmp, f"ivf-{name}.db")
        erd("import", "-q", "--db", db, "--catalog", "books", erdtest.MINI)
        rc, _, err = erd("build", "-q", "--db", db, "--catalog", "books", "--factory", factory)
        tap.ok(rc == 0, f"build --factory {factory} ({err.strip()!r})")
        out[name] = [erd("resolve", "--db", db, "--catalog", "books", "--json", "-k", "10", q)[1]
                     for q in ("the hunger games", "harry potter", "pride and prejudice", "the")]
    files = [f for f in os.listdir(tmp) if f.startswith("ivf-erd.db.books.") and f.endswith(".faiss")]
    head = open(os.path.join(tmp, files[0]), "rb").read(8) if len(files) == 1 else b""
    tap.ok(head == b"ERDIVF01", f"the erd IVF file is erd's own format ({head!r})")
    tap.ok(all(o.strip() for o in out["erd"]) and out["erd"] == out["flat"],
           "searching every list and rescoring every vector answers as Flat, byte for byte")
    tap.ok(out["grouped"] == out["flat"],
           "two levels, every group and list searched: the same answers as Flat, byte for byte")
    rc, _, err = erd("build", "-q", "--db", os.path.join(tmp, "ivf-erd.db"), "--catalog", "books",
                     "--factory", "erdIVF4,SQ5")
    tap.ok(rc != 0 and "erdIVF" in err, f"a malformed erd factory string is refused ({err.strip()!r})")
    ivf_search(tmp, out["flat"])


def ivf_search(tmp, flat_answers):
    """ivf_search sets an erd IVF's search parameters when it is loaded: an
    index built to scan one list answers as Flat once told to scan all of
    them; Flat indexes ignore it; a value out of range stops the command."""
    db = os.path.join(tmp, "ivf-narrow.db")
    erd("import", "-q", "--db", db, "--catalog", "books", erdtest.MINI)
    rc, _, err = erd("build", "-q", "--db", db, "--catalog", "books",
                     "--factory", "erdIVF4,SQ4|nprobe=1,rescore=1")
    tap.ok(rc == 0, f"build a one-list, one-rescore erd IVF ({err.strip()!r})")
    queries = ("the hunger games", "harry potter", "pride and prejudice", "the")

    def answers(path, search):
        env = dict(os.environ, ERD_IVF_SEARCH=search)
        return [erd("resolve", "--db", path, "--catalog", "books", "--json", "-k", "10", q,
                    env=env)[1] for q in queries]
    tap.ok(answers(db, "nprobe=4,rescore=1000") == flat_answers,
           "ivf_search nprobe=4,rescore=1000 on it: Flat's answers, byte for byte")
    tap.ok(answers(os.path.join(tmp, "ivf-flat.db"), "nprobe=1") == flat_answers,
           "a Flat index ignores ivf_search")
    env = dict(os.environ, ERD_IVF_SEARCH="nprobe=9999999")
    rc, out, err = erd("resolve", "--db", db, "--catalog", "books", "harry potter", env=env)
    tap.ok(rc != 0 and not out and "ivf_search" in err and "nprobe=1.." in err,
           f"nprobe out of range stops the command, saying why ({err.strip()!r})")
    env = dict(os.environ, ERD_IVF_SEARCH="nprobe=4,foo=2")
    rc, _, err = erd("resolve", "--db", db, "--catalog", "books", "harry potter", env=env)
    tap.ok(rc != 0 and "ivf_search" in err, f"an unknown parameter is refused ({err.strip()!r})")


def main():
    helps()
    config_file()
    with erdtest.Scratch() as s:
        queries = os.path.join(s.dir, "queries.jsonl")
        n = write_queries(queries)
        store_commands(s, s.dir)
        measuring_commands(s, s.dir, queries, n)
        training_commands(s, s.dir)
        command_table(s, s.dir)
        tool_commands(s.dir)
        erd_ivf(s.dir)
    tap.done()


main()
