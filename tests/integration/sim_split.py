#!/usr/bin/env python3
"""deploy/sim-matrix.py split keeps every held-out phrase out of training
(TAP): records are split by a hash of the spoken phrase; --train-extra
records and --phrases lines that say a held-out phrase (in another case or
punctuation) are dropped, an --exclude-voice voice never trains, and
nothing else is lost.  Runs on the first records of the committed
simulation snapshots; no erd binary needed.

usage: sim_split.py   (ERD_TEST_SRCDIR)
"""
import gzip, json, os, re, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erdtest  # noqa: E402

tap = erdtest.Tap()
DATA = os.path.join(erdtest.SRC, "phonetics", "models", "data")
SPLIT = os.path.join(erdtest.SRC, "deploy", "sim-matrix.py")


def key(s):
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def head(name, n):
    with gzip.open(os.path.join(DATA, name), "rt", encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(work):
    recs = head("sim-pairs-v4.jsonl.gz", 400)
    with open(os.path.join(work, "v4.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    p = subprocess.run([sys.executable, SPLIT, "split", "--records", os.path.join(work, "v4.jsonl"),
                        "--test", os.path.join(work, "test.jsonl"), "--holdout", "0.3",
                        "--train", os.path.join(work, "probe.jsonl")],
                       capture_output=True, text=True)
    test = load(os.path.join(work, "test.jsonl"))
    held = {key(r["spoken"]) for r in test}
    tap.ok(p.returncode == 0 and 0 < len(test) < len(recs), f"split holds out {len(test)} of {len(recs)}")
    # older records: some say a held-out phrase, one in other case and punctuation
    old = head("sim-pairs-v1.jsonl.gz", 50)
    sayers = [dict(test[i], voice="flite:rms", spoken=s) for i, s in
              enumerate([test[0]["spoken"], test[1]["spoken"].upper() + "!"])]
    with open(os.path.join(work, "extra.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in old + sayers)
    phrases = [r["spoken"] for r in old[:10]] + [test[2]["spoken"].title()]
    with open(os.path.join(work, "phrases.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(phrases) + "\n")
    voice = next(r["voice"] for r in recs if key(r["spoken"]) not in held)
    p = subprocess.run([sys.executable, SPLIT, "split", "--records", os.path.join(work, "v4.jsonl"),
                        "--test", os.path.join(work, "test2.jsonl"), "--holdout", "0.3",
                        "--train", os.path.join(work, "train.jsonl"),
                        "--train-extra", os.path.join(work, "extra.jsonl"),
                        "--exclude-voice", voice,
                        "--phrases", os.path.join(work, "phrases.txt") + ":" +
                        os.path.join(work, "kept.txt")],
                       capture_output=True, text=True)
    if not tap.ok(p.returncode == 0, "split with --train-extra, --exclude-voice, --phrases"):
        print("# " + p.stderr.replace("\n", "\n# "))
    train = load(os.path.join(work, "train.jsonl"))
    tap.ok(load(os.path.join(work, "test2.jsonl")) == test, "the held-out side does not depend on the options")
    tap.ok(not any(key(r["spoken"]) in held for r in train), "no training record says a held-out phrase")
    tap.ok(not any(r.get("voice") == voice for r in train), f"the excluded voice {voice} never trains")
    expect = [r for r in old if key(r["spoken"]) not in held and r.get("voice") != voice] + \
             [r for r in recs if key(r["spoken"]) not in held and r.get("voice") != voice]
    tap.ok(train == expect, f"every other record trains, older ones first ({len(train)})")
    with open(os.path.join(work, "kept.txt"), encoding="utf-8") as f:
        kept = f.read().splitlines()
    tap.ok(kept == [s for s in phrases if key(s) not in held] and len(kept) == len(phrases) - 1,
           "--phrases drops the held-out phrase said in title case, keeps the rest in order")


erdtest.run_in_temp_dir(main, tap, "erd-sim-split-")
