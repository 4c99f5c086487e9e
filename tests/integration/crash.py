#!/usr/bin/env python3
"""kill -9 at random points, 20 rounds in a row (TAP).

Each round starts `erd serve` on the same database, checks that every write
acknowledged in earlier rounds is there and served (an upserted entity is
the top result for its name, a deleted one is never returned, the served
generation is the database's), then writes - single upserts and deletes,
bulk JSON-lines uploads, rebuilds, with background rebuilds triggered by
delta_max - and SIGKILLs the server at a random moment: during the writes,
during a rebuild it asked for, or while `erd build` or `erd import` runs
from the command line.  A write is acknowledged when its 2xx reply (or the
command's exit status 0) came back; one cut off by the kill may or may not
have landed, and is not checked either way.  A killed `erd import` must
have landed whole or not at all.  Last, the survivor is published with
`erd snapshot` and served by a replica (`erd serve --snapshot`), which must
swap to a newer snapshot live.

usage: crash.py  (ERD_EXE, ERD_TEST_SRCDIR; CRASH_ROUNDS, CRASH_SEED optional)
"""
import json, os, random, shutil, signal, sqlite3, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

from erdtest import free_port

EXE = os.environ["ERD_EXE"]
SRC = os.environ["ERD_TEST_SRCDIR"]
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "20"))
SEED = int(os.environ.get("CRASH_SEED", str(int(time.time()))))
TOKEN = "crash-admin-token-0123456789"
rng = random.Random(SEED)
n_test = 0
failed = 0


def ok(cond, what):
    global n_test, failed
    n_test += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + f" {n_test} - {what}", flush=True)
    return cond


ADJ = ["velvet", "granite", "cobalt", "saffron", "papaya", "obsidian", "tangerine", "marmalade",
       "lemonade", "quokka", "walrus", "zephyr", "juniper", "mahogany", "turquoise", "pumpkin",
       "cinnamon", "thunder", "glacier", "meadow", "harbor", "lantern", "orchid", "falcon",
       "copper", "willow", "ember", "cactus", "nebula", "biscuit"]
NOUN = ["cathedral", "submarine", "orchestra", "skyscraper", "butterfly", "carousel",
        "volcano", "parliament", "lighthouse", "accordion", "telescope", "waterfall",
        "labyrinth", "hurricane", "pyramid", "trombone", "avalanche", "monastery", "galaxy",
        "caravan", "chandelier", "fortress", "pendulum", "umbrella", "compass", "dinosaur",
        "giraffe", "mosaic", "locomotive", "symphony"]
PLACE = ["toronto", "nairobi", "helsinki", "valparaiso", "kyoto", "marrakesh", "reykjavik",
         "istanbul", "adelaide", "winnipeg", "havana", "lisbon", "manila", "cairo", "dublin",
         "seville", "madras", "oslo", "quebec", "zanzibar", "tbilisi", "bogota", "santiago",
         "montreal", "budapest", "kampala", "glasgow", "perth", "sapporo", "tangier"]
used_names = set()


def fresh_name():
    """Three words from three disjoint lists: no name is another's
    permutation, so the exact name is always the best match."""
    while True:
        name = f"{rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(PLACE)}"
        if name not in used_names:
            used_names.add(name)
            return name


class Server:
    def __init__(self, db, conf, log, snapshot=None):
        source = ["--snapshot", snapshot] if snapshot else ["--db", db]
        # a port taken between free_port and the bind (tests run side by
        # side) makes erd serve exit: try another
        for _ in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [EXE, "serve", *source, "--listen", f"127.0.0.1:{self.port}", "--config", conf],
                stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
            deadline = time.time() + 60
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    if self.call("GET", "/healthz", auth=False)[0] == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.kill9()
                raise RuntimeError("erd serve did not come up")
            print(f"# erd serve exited with {self.proc.returncode}; trying another port")
        raise RuntimeError("erd serve did not start")

    def call(self, method, path, body=None, auth=True, timeout=30):
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        if auth:
            req.add_header("Authorization", "Bearer " + TOKEN)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class State:
    """What was acknowledged: id -> name for live entities, ids deleted."""
    def __init__(self):
        self.live, self.deleted, self.unknown = {}, set(), set()
        self.lock = threading.Lock()

    def acked_upsert(self, eid, name):
        with self.lock:
            self.live[eid] = name
            self.deleted.discard(eid)
            self.unknown.discard(eid)

    def acked_delete(self, eid):
        with self.lock:
            self.live.pop(eid, None)
            self.deleted.add(eid)
            self.unknown.discard(eid)

    def cut_off(self, eid):
        with self.lock:
            self.live.pop(eid, None)
            self.deleted.discard(eid)
            self.unknown.add(eid)


def resolve_ids(srv, text):
    st, body = srv.call("POST", "/v1/resolve", json.dumps({"catalog": "mini", "text": text, "k": 5}),
                        auth=False)
    if st != 200:
        return None
    return [r["id"] for r in body["results"]]


def stored(db):
    """ext_id -> name of every entity of mini, read from the database itself."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(con.execute("SELECT e.ext_id, e.name FROM entities e JOIN catalogs c"
                                " ON c.id = e.catalog_id WHERE c.name = 'mini'"))
    finally:
        con.close()


def verify(srv, db, state, recent, what, report=True):
    """Every acknowledged write is in the database; the recent ones (the
    last round's, those a kill could have hit) and a sample of the older
    ones are served as written; deletions are neither stored nor served."""
    bad = []
    with state.lock:
        live, deleted = dict(state.live), set(state.deleted)
    rows = stored(db)
    for eid, name in live.items():
        if rows.get(eid) != name:
            bad.append(f"acknowledged {eid} ({name}) stored as {rows.get(eid)!r}")
    for eid in deleted:
        if eid in rows:
            bad.append(f"acknowledged deletion of {eid} lost")
    older = [e for e in live if e not in recent]
    check = [e for e in recent if e in live] + rng.sample(older, min(40, len(older)))
    for eid in check:
        ids = resolve_ids(srv, live[eid])
        if not ids or ids[0] != eid:
            bad.append(f"{eid} ({live[eid]}) not the top result: {ids}")
    for eid in [e for e in recent if e in deleted]:
        if eid in (resolve_ids(srv, recent[eid]) or []):
            bad.append(f"deleted {eid} ({recent[eid]}) still returned")
    st, desc = srv.call("GET", "/v1/catalogs/mini")
    served = desc["serving"]["served_generation"] if st == 200 else None
    if st != 200 or served != desc["generation"]:
        bad.append(f"served generation {served} != database generation {desc.get('generation')}")
    for b in bad[:10]:
        print("# " + b)
    if not report:
        return not bad
    return ok(not bad, f"{what}: {len(live)} acknowledged entities stored ({len(check)} checked "
                       f"served), {len(deleted)} deletions hold, served generation = database "
                       f"generation ({len(bad)} problems)")


def writer(srv, state, stop, recent):
    """Random writes, paced, until stop is set or the server dies; every
    id touched goes into recent (id -> name)."""
    while not stop.is_set():
        op = rng.random()
        try:
            if op < 0.45:
                eid, name = f"c{rng.randrange(1 << 30):x}", fresh_name()
                recent[eid] = name
                state.cut_off(eid)
                st, _ = srv.call("POST", "/v1/catalogs/mini/entities",
                                 json.dumps({"id": eid, "name": name}))
                if st == 200:
                    state.acked_upsert(eid, name)
            elif op < 0.65:
                with state.lock:
                    victims = list(state.live.items())
                if not victims:
                    continue
                eid, name = rng.choice(victims)
                recent[eid] = name
                state.cut_off(eid)
                st, _ = srv.call("DELETE", f"/v1/catalogs/mini/entities/{eid}")
                if st == 200:
                    state.acked_delete(eid)
            elif op < 0.9:
                batch = [(f"b{rng.randrange(1 << 30):x}", fresh_name()) for _ in range(rng.randint(3, 15))]
                for eid, name in batch:
                    recent[eid] = name
                    state.cut_off(eid)
                lines = "".join(json.dumps({"id": e, "name": n}) + "\n" for e, n in batch)
                st, body = srv.call("POST", "/v1/catalogs/mini/bulk", lines)
                if st == 200 and body["upserted"] == len(batch):
                    for eid, name in batch:
                        state.acked_upsert(eid, name)
            else:
                srv.call("POST", "/v1/catalogs/mini/rebuild", "")
            time.sleep(rng.uniform(0.0, 0.03))
        except (OSError, ValueError):
            return  # the server is gone


def wait_rebuild_running(srv, timeout=2.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st, body = srv.call("POST", "/v1/catalogs/mini/rebuild", "")
        if st in (202, 503):
            return True
        time.sleep(0.01)
    return False


def test_replica(tmp, db, conf, log, state, cli_log):
    """The survivor is published: a replica serves the snapshot, refuses
    writes, and swaps to a newer snapshot live."""
    snap = f"{tmp}/published.erd"
    ok(subprocess.call([EXE, "snapshot", "--db", db, "--out", snap], stderr=cli_log) == 0,
       "erd snapshot of the crash-tested database")
    rep = Server(None, conf, log, snapshot=snap)
    with state.lock:
        sample = rng.sample(list(state.live.items()), min(20, len(state.live)))
    right = sum(1 for eid, name in sample if (resolve_ids(rep, name) or [None])[0] == eid)
    ok(right == len(sample), f"replica serves the snapshot ({right} of {len(sample)} sampled entities)")
    st, _ = rep.call("POST", "/v1/catalogs/mini/entities", json.dumps({"id": "r", "name": "r"}))
    ok(st == 403, f"replica refuses admin writes ({st})")
    name = fresh_name()
    ok(subprocess.call([EXE, "entity", "upsert", "--db", db, "--catalog", "mini",
                        json.dumps({"id": "after-snapshot", "name": name})],
                       stdout=subprocess.DEVNULL, stderr=cli_log) == 0, "primary writes more")
    ok(subprocess.call([EXE, "snapshot", "--db", db, "--out", snap], stderr=cli_log) == 0,
       "a newer snapshot published over the old one")
    seen, t0 = False, time.time()
    while not seen and time.time() - t0 < 10:
        seen = (resolve_ids(rep, name) or [None])[0] == "after-snapshot"
        time.sleep(0.05)
    ok(seen, f"replica swapped to the newer snapshot live ({time.time() - t0:.2f} s)")
    rep.kill9()


def report_abort(what, e, log):
    """A test that stopped on an exception fails, with the server's last words."""
    ok(False, f"{what} aborted: {e!r}")
    try:
        print("# serve log tail:\n" + "".join("#   " + l for l in open(log).readlines()[-15:]))
    except OSError:
        pass


def main():
    print(f"# seed {SEED}", flush=True)
    tmp = tempfile.mkdtemp(prefix="erd-crash-")
    db, conf, log = f"{tmp}/erd.db", f"{tmp}/erd.conf", f"{tmp}/serve.log"
    with open(conf, "w") as f:
        f.write(f"admin_token {TOKEN}\nlog_requests false\nsync_interval_ms 100\ndelta_max 60\n"
                "threads 4\nmax_connections 64\n")
    fixture = f"{SRC}/tests/integration/fixtures/mini.jsonl"
    cli_log = open(f"{tmp}/cli.log", "ab")
    ok(subprocess.call([EXE, "import", "--db", db, "--catalog", "mini", fixture], stderr=cli_log) == 0,
       "erd import")
    t0 = time.time()
    ok(subprocess.call([EXE, "build", "--db", db, "--catalog", "mini", "-q"], stderr=cli_log) == 0,
       "erd build")
    build_s = time.time() - t0
    # how long an import of 2000 lines takes, so kills land inside one
    timing = f"{tmp}/timing.jsonl"
    with open(timing, "w") as f:
        f.writelines(json.dumps({"id": f"t{i}", "name": f"timing {i}"}) + "\n" for i in range(2000))
    t0 = time.time()
    subprocess.call([EXE, "import", "--db", db, "--catalog", "timing", timing], stderr=cli_log)
    import_s = time.time() - t0
    print(f"# erd build {build_s:.3f} s, erd import of 2000 lines {import_s:.3f} s", flush=True)
    state = State()
    try:
        srv = Server(db, conf, log)
        # the checker must be able to fail: a write that never happened
        ghost = State()
        ghost.acked_upsert("never-written", "quokka quokka quokka")
        print("# negative control (expected to report problems):")
        caught = not verify(srv, db, ghost, {"never-written": "quokka quokka quokka"}, "control",
                            report=False)
        ok(caught, "negative control: a write that never happened is reported missing")
        srv.kill9()
        kinds = {"writes": 0, "rebuild": 0, "cli-build": 0, "cli-import": 0}
        for rnd in range(1, ROUNDS + 1):
            kind = ["writes", "rebuild", "writes", "cli-build", "writes", "cli-import"][rnd % 6]
            kinds[kind] += 1
            if kind.startswith("cli-"):
                recent = {}
                if kind == "cli-build":
                    argv = [EXE, "build", "--db", db, "--catalog", "mini", "-q"]
                    delay = rng.uniform(0.0, 1.3 * build_s)
                else:
                    batch = [(f"i{rng.randrange(1 << 30):x}", fresh_name()) for _ in range(2000)]
                    recent = {e: n for e, n in rng.sample(batch, 20)}
                    delay = rng.uniform(0.0, 1.3 * import_s)
                    path = f"{tmp}/import-{rnd}.jsonl"
                    with open(path, "w") as f:
                        f.writelines(json.dumps({"id": e, "name": n}) + "\n" for e, n in batch)
                    for eid, _ in batch:
                        state.cut_off(eid)
                    argv = [EXE, "import", "--db", db, "--catalog", "mini", path]
                p = subprocess.Popen(argv, stderr=cli_log)
                time.sleep(delay)
                p.send_signal(signal.SIGKILL)
                rc = p.wait()
                if kind == "cli-import":
                    if rc == 0:
                        for eid, name in batch:
                            state.acked_upsert(eid, name)
                    rows = stored(db)
                    landed = sum(1 for eid, _ in batch if eid in rows)
                    ok(landed in (0, len(batch)),
                       f"round {rnd}: the killed import landed whole or not at all "
                       f"({landed} of {len(batch)} rows)")
                srv = Server(db, conf, log)
                verify(srv, db, state, recent, f"round {rnd}: after kill -9 of erd {kind[4:]} "
                                   f"({'finished first' if rc == 0 else 'killed'})")
                srv.kill9()
                continue
            srv = Server(db, conf, log)
            stop = threading.Event()
            recent = {}
            th = threading.Thread(target=writer, args=(srv, state, stop, recent))
            th.start()
            if kind == "rebuild":
                time.sleep(rng.uniform(0.05, 0.3))
                wait_rebuild_running(srv)
                time.sleep(rng.uniform(0.0, 0.15))
            else:
                time.sleep(rng.uniform(0.05, 0.8))
            srv.kill9()
            stop.set()
            th.join()
            srv = Server(db, conf, log)
            verify(srv, db, state, recent, f"round {rnd}: restarted after kill -9 during {kind}")
            srv.kill9()
        print(f"# rounds by kill point: {kinds}; {len(state.live)} acknowledged entities live, "
              f"{len(state.deleted)} deletions, {len(state.unknown)} cut off by a kill")
        test_replica(tmp, db, conf, log, state, cli_log)
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        report_abort("crash test", e, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"1..{n_test}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
