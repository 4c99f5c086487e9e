#!/usr/bin/env python3
"""What a first-time user trips over (TAP), each checked against the real
erd binary: an imported but unbuilt catalog says how to build it (CLI and
HTTP 409); a taken port is named before any catalog loads; help texts print
the configuration table's defaults; a calibration that does not fit a
catalog is reported once, for that catalog, in full; a failed first import
leaves no database file; a ';'- or tab-separated CSV gets a hint and
--delimiter imports it; a catalog's G2P voice is recorded at build time,
applied to its queries, and changing it needs --g2p-voice.

usage: rough_edges.py   (ERD_EXE, ERD_TEST_SRCDIR)
"""
import json, os, re, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erdtest  # noqa: E402
from erdtest import erd  # noqa: E402

tap = erdtest.Tap()
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ERD_")}


def unbuilt(s):
    rc, _, err = erd("import", "-q", "--db", s.db, "--catalog", "unbuilt", erdtest.MINI)
    tap.ok(rc == 0, "a second catalog imported, not built")
    rc, out, err = erd("resolve", "--db", s.db, "--catalog", "unbuilt", "the great gatsby")
    want = f"run `erd build --db {s.db} --catalog unbuilt`"
    tap.ok(rc == 1 and "imported but not built" in err and want in err,
           f"erd resolve on it says how to build it ({err.strip()!r})")
    srv = erdtest.Server(s.db)
    try:
        status, body = srv.call("POST", "/v1/resolve", {"catalog": "unbuilt", "text": "gatsby"})
        tap.ok(status == 409 and body["error"]["code"] == "index_not_built" and want in body["error"]["message"],
               f"HTTP: 409 index_not_built with the build command ({status} {body})")
        status, body = srv.call("POST", "/v1/resolve", {"catalog": "nosuch", "text": "gatsby"})
        tap.ok(status == 404 and body["error"]["code"] == "unknown_catalog",
               f"a catalog that does not exist is still 404 unknown_catalog ({status})")
    finally:
        srv.stop()


def port_in_use(s):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        t0 = time.time()
        rc, _, err = erd("serve", "--db", s.db, "--listen", f"127.0.0.1:{port}", timeout=120)
    finally:
        taken.close()
    tap.ok(rc != 0 and f"port {port} is already in use" in err and "port 0" not in err,
           f"a taken port is named ({err.strip()!r})")
    tap.ok("loaded" not in err, f"and checked before any catalog loads ({time.time() - t0:.2f} s)")


def table_defaults():
    """key -> default, from `erd config --dump` with no file or variables."""
    rc, out, _ = erd("config", "--dump", env=CLEAN_ENV)
    return {k: d for d, k in re.findall(r"\(default: ([^;)]*)[^\n]*\n(\w+) ", out)}


def help_defaults():
    defaults = table_defaults()
    tap.ok(defaults.get("encoder", "").startswith("model:"), f"table default encoder ({defaults.get('encoder')})")
    for cmd, flag, key in (("build", "--encoder", "encoder"), ("build", "--factory", "faiss_factory"),
                           ("serve", "--listen", "listen"), ("resolve", "--k", "default_k")):
        rc, out, _ = erd(cmd, "--help", env=CLEAN_ENV)
        # the option's own entry (not the usage line; after its short name, if any), its
        # wrapped lines joined
        entry = re.search(r"^\s+(?:-\w, )?" + re.escape(flag) + r"\s.*(?:\n\s{8,}.*)*", out, re.M)
        line = " ".join(entry.group(0).split()) if entry else ""
        tap.ok(rc == 0 and f"(default from config: {defaults[key]})" in line,
               f"erd {cmd} --help: {flag} default is the table's {key} = {defaults[key]}")
    rc, out, _ = erd("build", "--help", env=CLEAN_ENV)
    tap.ok("baseline)" not in out, "erd build --help no longer says the default encoder is baseline")


def calibration_warning(s):
    rc, _, err = erd("import", "-q", "--db", s.db, "--catalog", "base", erdtest.MINI)
    rc2, _, err2 = erd("build", "-q", "--db", s.db, "--catalog", "base", "--encoder", "baseline")
    tap.ok(rc == 0 and rc2 == 0, f"a catalog built with the baseline encoder ({err}{err2})")
    rc, _, err = erd("resolve", "--db", s.db, "--catalog", "mini", "the great gatsby")
    tap.ok(rc == 0 and "warning" not in err, f"resolving another catalog prints no warning ({err.strip()!r})")
    rc, _, err = erd("resolve", "--db", s.db, "--catalog", "base", "the great gatsby")
    lines = [l for l in err.splitlines() if "warning" in l]
    tap.ok(rc == 0 and len(lines) == 1 and 'catalog "base"' in lines[0],
           f"resolving it warns once, naming the catalog ({lines})")
    tap.ok(lines and re.search(r"encoder baseline\S*, but the calibration \S+calibration-v13.txt was fitted", lines[0])
           and lines[0].endswith("set calibration off)"), "the warning is whole: encoder id and calibration file")
    srv = erdtest.Server(s.db)
    srv.stop()
    with open(s.db + ".serve.log") as f:
        log = [l for l in f if "warning" in l and "calibrat" in l]
    tap.ok(len(log) == 1 and 'catalog "base"' in log[0],
           f"erd serve warns once at start, for that catalog only ({log})")


def failed_import():
    with tempfile.TemporaryDirectory() as d:
        bad = os.path.join(d, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"id": "1", "name": "fine"}\n{"id": "2"}\n')
        rc, _, err = erd("import", "--catalog", "x", bad, cwd=d, env=CLEAN_ENV)
        tap.ok(rc == 65 and not os.path.exists(os.path.join(d, "erd.db")),
               f"a failed import without --db leaves no ./erd.db ({rc}, {os.listdir(d)})")
        db = os.path.join(d, "kept.db")
        rc, _, _ = erd("import", "-q", "--db", db, "--catalog", "x", erdtest.MINI)
        rc2, _, _ = erd("import", "-q", "--db", db, "--catalog", "x", bad)
        rc3, out, _ = erd("catalog", "list", "--db", db)
        tap.ok(rc == 0 and rc2 == 65 and os.path.exists(db) and "x" in out,
               "a failed import into an existing database keeps it and its data")


def delimiter():
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "d.db")
        for sep, arg, shown in ((";", ";", "';'"), ("\t", "tab", "'\\t'")):
            path = os.path.join(d, "e.csv")
            with open(path, "w") as f:
                f.write(sep.join(["id", "name", "year"]) + "\n")
                f.write(sep.join(["1", "The Hunger Games", "2008"]) + "\n")
                f.write(sep.join(["2", "Twilight, a saga", "2005"]) + "\n")
            rc, _, err = erd("import", "--db", db, "--catalog", "c", path)
            tap.ok(rc == 65 and f"--delimiter {shown}" in err,
                   f"a {arg!r}-separated file gets a hint ({err.strip()!r})")
            rc, _, err = erd("import", "--db", db, "--catalog", "c", "--delimiter", arg, path)
            tap.ok(rc == 0 and "2 records" in err, f"--delimiter {arg} imports it ({err.strip()!r})")
        rc, out, _ = erd("entity", "get", "--db", db, "--catalog", "c", "2")
        tap.ok('"Twilight, a saga"' in out, f"a comma inside a ';' or tab field is kept ({out.strip()!r})")
        rc, _, err = erd("import", "--db", db, "--catalog", "c", "--delimiter", '"', path)
        tap.ok(rc == 2, "a quote is refused as delimiter")


def g2p_voice(s):
    """A catalog built in German is queried in German, by the CLI, by the
    server and after a background rebuild, whatever g2p_voice says; building
    it again in another voice needs --g2p-voice."""
    queries = ["the hunger games", "harry potter and the sorcerers stone", "twilight"]
    def answers(catalog, env=None):
        out = []
        for q in queries:
            rc, o, e = erd("resolve", "--db", s.db, "--catalog", catalog, "--json", "-k", "3", q,
                           env=dict(CLEAN_ENV, **(env or {})))
            out.append(o if rc == 0 else e)
        return out
    rc, _, err = erd("import", "-q", "--db", s.db, "--catalog", "deutsch", erdtest.MINI)
    rc2, _, err2 = erd("build", "-q", "--db", s.db, "--catalog", "deutsch",
                       env=dict(CLEAN_ENV, ERD_G2P_VOICE="de"))
    tap.ok(rc == 0 and rc2 == 0, f"a catalog built with g2p_voice de ({err}{err2})")
    german = answers("deutsch", {"ERD_G2P_VOICE": "de"})
    tap.ok(german != answers("mini", {"ERD_G2P_VOICE": "de"}), "the voice changes the scores")
    tap.ok(answers("deutsch") == german,
           "erd resolve with the default g2p_voice (en-us+cmu) answers in the catalog's voice, de")
    srv = erdtest.Server(s.db, {"ERD_G2P_VOICE": "en-us"})
    try:
        status, body = srv.call("POST", "/v1/resolve", {"catalog": "deutsch", "text": queries[0], "k": 3})
        cli = json.loads(german[0])["results"]
        same = status == 200 and [(r["id"], round(r["score"], 4)) for r in body["results"]] == \
            [(r["id"], round(r["score"], 4)) for r in cli]
        tap.ok(same, f"erd serve (g2p_voice en-us) answers in de too ({body})")
        status, _ = srv.call("POST", "/v1/catalogs/deutsch/rebuild", token=erdtest.TOKEN)
        for _ in range(600):
            st = srv.call("GET", "/v1/catalogs/deutsch/rebuild", token=erdtest.TOKEN)[1]["rebuild"]
            if st["state"] != "running":
                break
            time.sleep(0.1)
        tap.ok(status == 202 and st["state"] == "done", f"a background rebuild ({st['state']})")
    finally:
        srv.stop()
    tap.ok(answers("deutsch") == german, "the rebuild kept the catalog's voice")
    rc, _, err = erd("build", "-q", "--db", s.db, "--catalog", "deutsch", env=CLEAN_ENV)
    tap.ok(rc == 1 and 'G2P voice "de"' in err and "--g2p-voice en-us+cmu" in err,
           f"building it in another voice is refused ({err.strip()!r})")
    tap.ok(answers("deutsch") == german, "and changes nothing")
    rc, _, err = erd("build", "-q", "--db", s.db, "--catalog", "deutsch", "--g2p-voice", "en-us",
                     env=CLEAN_ENV)
    tap.ok(rc == 0 and answers("deutsch") != german, f"--g2p-voice en-us changes it ({err.strip()!r})")


def main():
    with erdtest.Scratch() as s:
        unbuilt(s)
        port_in_use(s)
        calibration_warning(s)
        g2p_voice(s)
    help_defaults()
    failed_import()
    delimiter()
    tap.done()


if __name__ == "__main__":
    main()
