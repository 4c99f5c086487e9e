#!/usr/bin/env python3
"""Hostile clients against a real `erd serve` (TAP), under both http_threading
modes where the connection handling differs:

- slowloris: a client trickling its headers (or its body) is closed at
  header_timeout_s (body_timeout_s) although it never goes idle; an address
  holding max_half_open_per_ip unfinished connections is refused at accept;
  a trickling crowd from one address leaves resolves from another served;
- a NUL or control byte in the path is 400 before routing, and acts on
  nothing;
- wrong or missing credentials are told at the headers, before any body
  and without 100 Continue;
- framing: two Content-Lengths, Content-Length with Transfer-Encoding -> one
  400; a transfer coding other than chunked -> 501, at once;
- DELETE of a catalog on a copied database leaves the original's index;
- a catalog whose index is missing or damaged is skipped and reported while
  the others serve, and is rebuilt through the admin API.

Loopback only; every wait is bounded.
"""
import glob, json, os, shutil, socket, sqlite3, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash as common  # noqa: E402  Server, ok, TOKEN, EXE, SRC

ok, EXE, SRC, TOKEN = common.ok, common.EXE, common.SRC, common.TOKEN
HEADER_S, BODY_S = 2, 3
FIRST = "The Hunger Games"  # in tests/integration/fixtures/mini.jsonl


def connect(port, src="127.0.0.1"):
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def exchange(port, data, src="127.0.0.1", wait=5.0):
    """Sends data, reads until the server closes or wait passes."""
    s = connect(port, src)
    s.sendall(data)
    out, end = b"", time.time() + wait
    s.settimeout(0.2)
    while time.time() < end:
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not b:
            break
        out += b
    s.close()
    return out


def status_lines(reply):
    return [l for l in reply.split(b"\r\n") if l.startswith(b"HTTP/1.")]


def closed_within(s, seconds, trickle=None, every=0.5):
    """Seconds until the server closes s (None if it stays open), sending
    one byte of trickle every `every` s meanwhile."""
    t0, i, nxt = time.time(), 0, time.time()
    s.settimeout(0.1)
    while time.time() - t0 < seconds:
        if trickle and time.time() >= nxt:
            try:
                s.send(trickle[i % len(trickle):][:1])
            except OSError:
                return time.time() - t0
            i, nxt = i + 1, nxt + every
        try:
            if s.recv(4096) == b"":
                return time.time() - t0
        except socket.timeout:
            pass
        except OSError:
            return time.time() - t0
    return None


def resolve(srv, catalog="mini", text=FIRST):
    return srv.call("POST", "/v1/resolve", json.dumps({"catalog": catalog, "text": text}))


def test_slowloris(srv, mode):
    port = srv.port
    s = connect(port, "127.0.0.2")
    s.sendall(b"POST /v1/resolve HTTP/1.1\r\nHost: x\r\n")
    t = closed_within(s, HEADER_S + 6, trickle=b"X-a: b\r\n")
    s.close()
    ok(t is not None and t < HEADER_S + 3,
       f"{mode}: headers trickled a byte every 0.5 s are cut at header_timeout_s ({t})")

    s = connect(port, "127.0.0.2")
    s.sendall(b"POST /v1/resolve HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    t = closed_within(s, BODY_S + 6, trickle=b"{")
    s.close()
    ok(t is not None and t < BODY_S + 3,
       f"{mode}: a body trickled a byte every 0.5 s is cut at body_timeout_s ({t})")

    held = [connect(port, "127.0.0.3") for _ in range(4)]
    time.sleep(0.3)
    extra = connect(port, "127.0.0.3")
    t = closed_within(extra, 2)
    ok(t is not None, f"{mode}: a 5th connection from an address holding 4 half-open ones is refused")
    st, body = common.Server.call(srv, "GET", "/healthz", auth=False)
    ok(st == 200, f"{mode}: another address is served meanwhile")
    for c in held + [extra]:
        c.close()

    att = subprocess.run([sys.executable, f"{SRC}/deploy/slowloris.py", "--port", str(port),
                          "--conns", "60", "--seconds", "8", "--interval", "0.5",
                          "--sources", "127.0.0.5", "--catalog", "mini", "--text", FIRST,
                          "--token", TOKEN], capture_output=True, text=True, timeout=60)
    res = json.loads(att.stdout.strip().splitlines()[-1]) if att.returncode == 0 else {}
    ok(res.get("resolves", 0) > 0 and res.get("resolves_ok") == res.get("resolves"),
       f"{mode}: 60 trickling connections from one address: every resolve from another "
       f"served ({res.get('resolves_ok')}/{res.get('resolves')})")
    ok(res.get("attack_closed_by_server", 0) > 0, f"{mode}: the trickling connections were closed")


def test_paths(srv):
    port = srv.port
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    st, _ = srv.call("GET", "/v1/catalogs/mini/entities/goodbooks:1")
    ok(st == 200, "entity goodbooks:1 exists")
    for path in (b"/v1/catalogs/mini/entities/goodbooks:1%00zzz", b"/v1/catalogs/mini/entities/goodbooks:1%0a"):
        r = exchange(port, b"DELETE " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        ok(r.startswith(b"HTTP/1.1 400") and b'"bad_request"' in r, f"DELETE {path.decode()} -> 400")
    st, _ = srv.call("GET", "/v1/catalogs/mini/entities/goodbooks:1")
    ok(st == 200, "goodbooks:1 was not deleted by the %00 / %0a requests")
    for path in (b"/v1/catalogs/mini%00x", b"/healthz%00x", b"/healthz%7f", b"/healthz%1b", b"/healthz?a=%00"):
        r = exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        ok(r.startswith(b"HTTP/1.1 400"), f"GET {path.decode()} -> 400 ({status_lines(r)[:1]})")
    r = exchange(port, b"GET /v1/catalogs/mini%2Fx HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    ok(r.startswith(b"HTTP/1.1 404"), "an escaped slash still decodes (404 for no such route)")


def test_auth_before_body(srv):
    port = srv.port
    big = b"Content-Length: 50000000\r\n"
    for name, authz in (("no token", b""), ("a wrong token", b"Authorization: Bearer not-the-token-0123456789\r\n")):
        r = exchange(port, b"POST /v1/catalogs/mini/bulk HTTP/1.1\r\nHost: x\r\n" + big + authz +
                     b"Expect: 100-continue\r\n\r\n", wait=3)
        ok(r.startswith(b"HTTP/1.1 401") and b"100 Continue" not in r,
           f"bulk with {name}: 401 at the headers, no 100 Continue ({status_lines(r)})")
    r = exchange(port, b"POST /v1/catalogs/mini/entities HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 1000\r\n\r\n", wait=3)
    ok(r.startswith(b"HTTP/1.1 401"), "upsert without a token: 401 before the body is sent")
    s = connect(port)
    s.sendall(b"POST /v1/catalogs/mini/bulk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
              TOKEN.encode() + b"\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    first = s.recv(4096)
    ok(first.startswith(b"HTTP/1.1 100"), "bulk with the admin token: 100 Continue")
    s.close()
    r = exchange(port, b"POST /v1/catalogs/mini/bulk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                 TOKEN.encode() + b"\r\nContent-Length: 70000000\r\nExpect: 100-continue\r\n\r\n", wait=3)
    ok(r.startswith(b"HTTP/1.1 413") and b"100 Continue" not in r and b"max_bulk_bytes" in r,
       "bulk over the default max_bulk_bytes (64 MiB): 413 at the headers, saying which limit")


def test_framing(srv):
    port = srv.port
    head = b"POST /v1/resolve HTTP/1.1\r\nHost: x\r\n"
    body = json.dumps({"catalog": "mini", "text": FIRST}).encode()
    cases = [
        ("two different Content-Lengths", b"Content-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(body) + body, 400),
        ("two equal Content-Lengths", b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)) + body, 400),
        ("Content-Length with Transfer-Encoding", b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body), 400),
        ("chunked twice", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("gzip, chunked", b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("identity", b"Transfer-Encoding: identity\r\n\r\n", 501),
    ]
    for name, rest, want in cases:
        t0 = time.time()
        r = exchange(port, head + rest, wait=4)
        lines = status_lines(r)
        ok(len(lines) == 1 and lines[0].startswith(b"HTTP/1.1 %d" % want) and time.time() - t0 < 3,
           f"{name}: one {want} at the headers ({lines})")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    r = exchange(port, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked, wait=4)
    ok(r.startswith(b"HTTP/1.1 200") and b"goodbooks:1" in r, "a chunked resolve still works")


def build(db, catalog, log):
    fixture = f"{SRC}/tests/integration/fixtures/mini.jsonl"
    return (subprocess.call([EXE, "import", "--db", db, "--catalog", catalog, fixture], stderr=log) == 0 and
            subprocess.call([EXE, "build", "--db", db, "--catalog", catalog, "-q"], stderr=log) == 0)


def index_files(db, catalog):
    return glob.glob(f"{db}.{catalog}.*.faiss")


def test_copied_delete(tmp, conf, log, cli_log):
    orig, copy = f"{tmp}/orig.db", f"{tmp}/copy.db"
    ok(build(orig, "mini", cli_log), "copied db: original built")
    src, dst = sqlite3.connect(orig), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    files = index_files(orig, "mini")
    srv = common.Server(copy, conf, log)
    st, _ = srv.call("DELETE", "/v1/catalogs/mini")
    ok(st == 200, "copied db: DELETE /v1/catalogs/mini on the copy")
    srv.kill9()
    ok(len(files) == 1 and all(os.path.exists(f) for f in files),
       "copied db: the original's index file is still there")
    srv = common.Server(orig, conf, log)
    st, body = resolve(srv)
    ok(st == 200 and body["results"] and body["results"][0]["id"] == "goodbooks:1",
       "copied db: the original still serves its catalog")
    srv.kill9()


def wait_served(srv, catalog, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        st, d = srv.call("GET", f"/v1/catalogs/{catalog}")
        if st == 200 and d["serving"]["served"]:
            return True
        time.sleep(0.1)
    return False


def test_broken_index(tmp, conf, log, cli_log):
    db = f"{tmp}/two.db"
    ok(build(db, "mini", cli_log) and build(db, "other", cli_log), "broken index: two catalogs built")
    for f in index_files(db, "other"):
        os.remove(f)
    srv = common.Server(db, conf, log)
    st, ready = srv.call("GET", "/readyz", auth=False)
    bad = [u["catalog"] for u in (ready or {}).get("unavailable", [])]
    ok(st == 200 and bad == ["other"], f"missing index: served, /readyz lists other ({st} {ready})")
    st, d = srv.call("GET", "/v1/catalogs/other")
    ok(st == 200 and not d["serving"]["served"] and "load_error" in d["serving"],
       f"missing index: describe says why ({d.get('serving', {}).get('load_error') if st == 200 else st})")
    st, body = resolve(srv)
    ok(st == 200 and body["results"][0]["id"] == "goodbooks:1", "missing index: mini still resolves")
    st, body = resolve(srv, "other")
    ok(st == 404 and "did not load" in body["error"]["message"], "missing index: other is refused with the reason")
    st, _ = srv.call("POST", "/v1/catalogs/other/rebuild")
    ok(st == 202 and wait_served(srv, "other"), "missing index: rebuilt through the admin API and served")
    st, body = resolve(srv, "other")
    ok(st == 200 and body["results"][0]["id"] == "goodbooks:1", "missing index: other resolves after the rebuild")
    st, ready = srv.call("GET", "/readyz", auth=False)
    ok(st == 200 and "unavailable" not in ready, "missing index: /readyz clean after the rebuild")
    srv.kill9()

    for f in index_files(db, "mini"):
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
    srv = common.Server(db, conf, log)
    st, ready = srv.call("GET", "/readyz", auth=False)
    bad = [u["catalog"] for u in (ready or {}).get("unavailable", [])]
    ok(st == 200 and bad == ["mini"], f"damaged index: served, /readyz lists mini ({bad})")
    st, body = resolve(srv, "other")
    ok(st == 200, "damaged index: other still resolves")
    srv.kill9()
    out = subprocess.run([EXE, "resolve", "--db", db, "--catalog", "other", FIRST],
                         capture_output=True, text=True, timeout=120)
    ok(out.returncode == 0 and "goodbooks:1" in out.stdout,
       f"damaged index: erd resolve on another catalog works (exit {out.returncode})")


def main():
    tmp = tempfile.mkdtemp(prefix="erd-hostile-")
    log, cli_log = f"{tmp}/serve.log", open(f"{tmp}/cli.log", "ab")
    try:
        db = f"{tmp}/erd.db"
        ok(build(db, "mini", cli_log), "erd import + build")
        for mode in ("connection", "pool"):
            conf = f"{tmp}/{mode}.conf"
            with open(conf, "w") as f:
                f.write(f"admin_token {TOKEN}\nlog_requests false\nhttp_threading {mode}\nthreads 2\n"
                        f"max_connections 64\nrequest_timeout_s 30\nheader_timeout_s {HEADER_S}\n"
                        f"body_timeout_s {BODY_S}\nmax_half_open_per_ip 4\n")
            srv = common.Server(db, conf, log)
            test_slowloris(srv, mode)
            if mode == "connection":
                test_paths(srv)
                test_auth_before_body(srv)
                test_framing(srv)
            srv.kill9()
        conf = f"{tmp}/connection.conf"
        test_copied_delete(tmp, conf, log, cli_log)
        test_broken_index(tmp, conf, log, cli_log)
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        common.report_abort("hostile test", e, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"1..{common.n_test}")
    return 1 if common.failed else 0


if __name__ == "__main__":
    sys.exit(main())
