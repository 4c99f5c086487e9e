#!/usr/bin/env python3
"""The shipped clients against a real erd serve (TAP):
deploy/clients/python/erd_client.py (resolve with an n-best list, explain,
admin calls, typed errors) and deploy/clients/js/erd-client.mjs under node
(resolve, and an error reply turned into ErdError).

usage: clients.py   (ERD_EXE, ERD_TEST_SRCDIR)
"""
import json, os, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erdtest  # noqa: E402

sys.path.insert(0, os.path.join(erdtest.SRC, "deploy", "clients", "python"))
import erd_client  # noqa: E402
from erd_client import Client  # noqa: E402

tap = erdtest.Tap()


def raises(cls, fn, what):
    try:
        fn()
    except cls as e:
        return tap.ok(True, f"{what}: {type(e).__name__} {e.status} {e.code}")
    except Exception as e:  # noqa: BLE001 - the wrong type is the failure reported
        return tap.ok(False, f"{what}: {type(e).__name__} {e}")
    return tap.ok(False, f"{what}: nothing raised")


def python_client(srv, db):
    anon = Client(srv.url)
    admin = Client(srv.url, token=erdtest.TOKEN, timeout=30)
    ans = anon.resolve("mini", [("the hunger gains", -1200), ("the hunger games", -1500), "hunger gang"], k=3)
    tap.ok(ans["results"][0]["id"] == "goodbooks:1" and len(ans["results"]) == 3,
           f"resolve with an n-best list and scores ({ans['results'][0]})")
    ex = anon.explain("mini", [("the hunger gains", -1200), ("the hunger games", -1500), "hunger gang"], k=3)
    tap.ok([r["id"] for r in ex["results"]] == [r["id"] for r in ans["results"]],
           "explain=True answers the same ranking")
    tap.ok(anon.healthz()["catalogs"] == ["mini"] and anon.readyz()["status"] == "ready", "healthz, readyz")

    raises(erd_client.UnknownCatalog, lambda: anon.resolve("nosuch", "gatsby"), "unknown catalog")
    raises(erd_client.BadRequest, lambda: anon.resolve("mini", "gatsby", k=0), "k=0")
    raises(erd_client.Unauthorized, lambda: Client(srv.url, token="wrong-token-0123456789").catalogs(),
           "admin call with a wrong token")
    raises(erd_client.Unauthorized, lambda: anon.metrics(), "metrics without a token")
    tap.ok("erd_http_requests_total" in admin.metrics(), "metrics with the admin token")

    tap.ok([c["name"] for c in admin.catalogs()] == ["mini"], "catalogs")
    admin.create_catalog("fresh")
    raises(erd_client.IndexNotBuilt, lambda: anon.resolve("fresh", "anything"),
           "a created, never built catalog")
    up = admin.bulk("fresh", [{"id": "a/1", "name": "The Velvet Submarine of Toronto"},
                              {"id": "a/2", "name": "Cobalt Lighthouse"},
                              {"id": "a/3"}])
    tap.ok(up["upserted"] == 2 and up["failed"] == 1, f"bulk upload counts a bad line ({up})")
    admin.upsert("fresh", {"id": "a/4", "name": "Saffron Carousel", "aliases": ["the carousel"]})
    tap.ok(admin.get_entity("fresh", "a/1")["name"] == "The Velvet Submarine of Toronto",
           "get an entity whose id holds a slash")
    admin.rebuild("fresh")
    st = admin.wait_rebuilt("fresh", timeout=120)
    tap.ok(st["state"] == "done", f"rebuild, waited for ({st})")
    ans = anon.resolve("fresh", "saffron carousel", k=1)
    tap.ok(ans["results"][0]["id"] == "a/4", f"the rebuilt catalog resolves ({ans})")
    d = admin.describe("fresh")
    tap.ok(d["entities"] == 3 and d["pending_changes"] == 0, f"describe ({d['entities']}, {d['pending_changes']})")
    admin.delete_entity("fresh", "a/2")
    raises(erd_client.NotFound, lambda: admin.get_entity("fresh", "a/2"), "a deleted entity")
    admin.delete_catalog("fresh")
    raises(erd_client.UnknownCatalog, lambda: admin.describe("fresh"), "a deleted catalog")


def js_client(srv):
    node = shutil.which("node") or shutil.which("nodejs")
    script = os.path.join(erdtest.SRC, "deploy", "clients", "js", "erd-client.mjs")
    if not node:
        tap.ok(True, "# SKIP node not installed (deploy/packages.txt lists nodejs)")
        return
    p = subprocess.run([node, script, srv.url, "mini", "the hunger gains", "the hunger games"],
                       capture_output=True, text=True, timeout=60)
    try:
        ans = json.loads(p.stdout)
    except ValueError:
        ans = {}
    tap.ok(p.returncode == 0 and ans.get("results", [{}])[0].get("id") == "goodbooks:1",
           f"node erd-client.mjs resolves ({p.stdout.strip()[:120]} {p.stderr.strip()[:200]})")
    p = subprocess.run([node, script, srv.url, "nosuch", "gatsby"], capture_output=True, text=True, timeout=60)
    tap.ok(p.returncode == 1 and "404 unknown_catalog" in p.stderr,
           f"an error reply becomes ErdError ({p.returncode}, {p.stderr.strip()})")
    # the module used as a library, with the admin token
    code = (f"import {{ ErdClient }} from {json.dumps('file://' + script)};"
            f"const erd = new ErdClient({json.dumps(srv.url)}, {{ token: process.env.ERD_TOKEN }});"
            "const cats = await erd.catalogs(); console.log(cats.map((c) => c.name).join(','));")
    p = subprocess.run([node, "--input-type=module", "-e", code], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, ERD_TOKEN=erdtest.TOKEN))
    tap.ok(p.returncode == 0 and p.stdout.strip() == "mini", f"ErdClient.catalogs() with the token ({p.stdout.strip()} {p.stderr.strip()[:200]})")


def main():
    with erdtest.Scratch() as s:
        srv = erdtest.Server(s.db)
        try:
            python_client(srv, s.db)
            js_client(srv)
        finally:
            tap.ok(srv.stop() == 0, "erd serve exits 0 on SIGTERM")
    tap.done()


if __name__ == "__main__":
    main()
