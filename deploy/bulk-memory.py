#!/usr/bin/env python3
"""Memory of a large bulk upload into a loopback erd serve.

Copies DB to a scratch folder, starts erd serve on it, creates catalog
NAME, streams FILE (JSON lines) to POST /v1/catalogs/NAME/bulk and samples
the server's RSS every 0.2 s: during the upload, during the rebuilds that
fold the upload into the index, and for --settle seconds after the last
one.  Then starts a fresh erd serve on the result and reads its RSS once
loaded.  Prints one JSON line: peak RSS (VmHWM), RSS --settle s after the
rebuild, the fresh start's RSS, and the line accounting (lines sent, the
reply's lines/upserted/failed, entities the catalog holds).

usage: deploy/bulk-memory.py --erd build/erd --db erd.db --file bulk.jsonl
           [--name bulk] [--settle 60] [--config FILE] [--keep DIR]
"""
import argparse, http.client, json, os, shutil, socket, subprocess, sys, tempfile, threading, time

TOKEN = "bulk-memory-admin-token-0123456789"


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(port, method, path, body=None, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers={"Authorization": "Bearer " + TOKEN})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data or b"null")


def start(erd, db, conf, log):
    port = free_port()
    p = subprocess.Popen([erd, "serve", "--db", db, "--config", conf, "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    end = time.time() + 300
    while time.time() < end and p.poll() is None:
        try:
            if call(port, "GET", "/healthz", timeout=2)[0] == 200:
                return p, port
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit(f"bulk-memory: erd serve did not start; see {log}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--erd", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--name", default="bulk")
    ap.add_argument("--settle", type=float, default=60)
    ap.add_argument("--config", default="")
    ap.add_argument("--keep", default="")
    a = ap.parse_args()
    tmp = a.keep or tempfile.mkdtemp(prefix="erd-bulkmem-")
    os.makedirs(tmp, exist_ok=True)
    db = os.path.join(tmp, "erd.db")
    for f in os.listdir(os.path.dirname(os.path.abspath(a.db))):
        src = os.path.join(os.path.dirname(os.path.abspath(a.db)), f)
        if f.startswith(os.path.basename(a.db)) and os.path.isfile(src):
            shutil.copy(src, os.path.join(tmp, "erd.db" + f[len(os.path.basename(a.db)):]))
    conf, log = os.path.join(tmp, "erd.conf"), os.path.join(tmp, "serve.log")
    with open(conf, "w") as f:
        f.write(f"admin_token {TOKEN}\nlog_requests false\n")
        if a.config:
            f.write(open(a.config).read())
    p, port = start(a.erd, db, conf, log)
    rss_start = rss_kb(p.pid)
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.time() - t_start, rss_kb(p.pid), rss_kb(p.pid, "RssAnon"),
                            rss_kb(p.pid, "RssFile")))
            stop.wait(0.2)

    t_start = time.time()
    th = threading.Thread(target=sample)
    th.start()
    call(port, "POST", "/v1/catalogs", json.dumps({"name": a.name}))
    lines_sent = sum(1 for l in open(a.file, "rb") if l.strip())
    t0 = time.time()
    with open(a.file, "rb") as body:
        st, reply = call(port, "POST", f"/v1/catalogs/{a.name}/bulk", body=body)
    t_upload = time.time() - t0
    rss_after_upload = rss_kb(p.pid)
    # everything served, no rebuild running
    end = time.time() + 1800
    desc = {}
    while time.time() < end:
        _, desc = call(port, "GET", f"/v1/catalogs/{a.name}")
        if desc["rebuild"]["state"] != "running" and not desc["serving"].get("held") and \
                desc["serving"]["served_generation"] == desc["generation"]:
            break
        time.sleep(0.5)
    t_folded = time.time() - t0
    time.sleep(a.settle)
    rss_settled = rss_kb(p.pid)
    peak = rss_kb(p.pid, "VmHWM")
    stop.set()
    th.join()
    _, desc = call(port, "GET", f"/v1/catalogs/{a.name}")
    p.terminate()
    p.wait()
    q, qport = start(a.erd, db, conf, log)
    time.sleep(5)
    rss_fresh = rss_kb(q.pid)
    q.terminate()
    q.wait()
    out = {"file_mb": round(os.path.getsize(a.file) / 1e6, 1), "lines_sent": lines_sent,
           "status": st, "reply": {k: reply.get(k) for k in ("lines", "upserted", "created", "failed")} if isinstance(reply, dict) else reply,
           "entities": desc.get("entities"), "upload_s": round(t_upload, 1), "folded_s": round(t_folded, 1),
           "rss_start_mb": round(rss_start / 1024), "rss_after_upload_mb": round(rss_after_upload / 1024),
           "peak_rss_mb": round(peak / 1024), "rss_settled_mb": round(rss_settled / 1024),
           "rss_fresh_mb": round(rss_fresh / 1024),
           "settled_vs_fresh": round(rss_settled / max(1, rss_fresh), 3),
           "rebuilds_seen": desc.get("rebuild", {}).get("generation")}
    if isinstance(reply, dict) and reply.get("error"):
        out["error"] = reply["error"]
    print(json.dumps(out))
    if a.keep:  # the RSS trace, "seconds rss_kb anon_kb file_kb" per sample
        with open(os.path.join(tmp, "rss.txt"), "w") as f:
            f.writelines(f"{t:.1f} {kb} {anon} {fil}\n" for t, kb, anon, fil in samples)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
