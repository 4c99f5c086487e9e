#!/usr/bin/env python3
"""Slowloris against a loopback erd serve, while a client resolves.

Holds up to --conns connections from the --sources addresses (127.0.0.0/8
only), each sending a request line and then one header byte every
--interval seconds; a connection the server closes is opened again (at most
--conns a second).  Meanwhile a client on 127.0.0.1 resolves once a second
on a fresh connection.  Prints how many of the client's resolves succeeded
and what the attack held, as one JSON line; bounded by --seconds.

usage: deploy/slowloris.py --port P [--conns 300] [--seconds 60] [--interval 3]
           [--sources 127.0.0.50 | 127.0.0.2-11] [--catalog NAME] [--text T]
           [--token TOKEN] [--pid SERVER_PID]
"""
import argparse, ipaddress, json, selectors, socket, sys, threading, time
import urllib.error, urllib.request


def parse_sources(spec):
    """"127.0.0.2-11" or "127.0.0.50" or a comma list; loopback only."""
    out = []
    for part in spec.split(","):
        if "-" in part:
            base, hi = part.rsplit("-", 1)
            stem, lo = base.rsplit(".", 1)
            out += [f"{stem}.{i}" for i in range(int(lo), int(hi) + 1)]
        else:
            out.append(part)
    for a in out:
        if not ipaddress.ip_address(a).is_loopback:
            sys.exit(f"slowloris: {a} is not a loopback address")
    return out


def threads_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Attack:
    def __init__(self, port, sources, conns, interval):
        self.port, self.sources, self.want, self.interval = port, sources, conns, interval
        self.sel = selectors.DefaultSelector()
        self.socks = {}  # socket -> [next send time, bytes sent, accepted-and-alive]
        self.opened = self.closed_by_server = self.connect_failed = 0
        self.max_held = 0
        self.next_src = 0
        self.tokens, self.last = float(conns), time.time()

    def open_one(self, now):
        src = self.sources[self.next_src % len(self.sources)]
        self.next_src += 1
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((src, 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            self.connect_failed += 1
            return
        self.opened += 1
        self.socks[s] = [now, 0]
        self.sel.register(s, selectors.EVENT_READ)

    def drop(self, s):
        self.sel.unregister(s)
        del self.socks[s]
        s.close()

    def step(self, now):
        # refill, at most `want` new connections a second
        self.tokens = min(float(self.want), self.tokens + (now - self.last) * self.want)
        self.last = now
        while len(self.socks) < self.want and self.tokens >= 1:
            self.open_one(now)
            self.tokens -= 1
        for s, st in list(self.socks.items()):
            if now < st[0]:
                continue
            data = b"POST /v1/resolve HTTP/1.1\r\nHost: x\r\n" if st[1] == 0 else b"X-a: b\r\n"[(st[1] - 1) % 8:][:1]
            try:
                s.send(data)
                st[1] += 1
                st[0] = now + self.interval
            except BlockingIOError:
                st[0] = now + 0.05
            except OSError:
                self.closed_by_server += 1
                self.drop(s)
        for key, _ in self.sel.select(timeout=0.05):
            s = key.fileobj
            try:
                b = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if not b:  # closed (refused at accept, or a deadline passed)
                self.closed_by_server += 1
                self.drop(s)
        self.max_held = max(self.max_held, len(self.socks))

    def close(self):
        for s in list(self.socks):
            self.drop(s)


def resolver(port, catalog, text, token, stop, stats):
    body = json.dumps({"catalog": catalog, "text": text}).encode()
    while not stop.is_set():
        t0 = time.time()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/resolve", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Connection": "close"})
        if token:
            req.add_header("Authorization", "Bearer " + token)
        stats["tried"] += 1
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200 and json.loads(r.read()).get("results"):
                    stats["ok"] += 1
                else:
                    stats["bad"].append(f"status {r.status}")
        except (OSError, urllib.error.URLError, ValueError) as e:
            stats["bad"].append(type(e).__name__ + ": " + str(e)[:80])
        stats["ms"].append((time.time() - t0) * 1e3)
        stop.wait(max(0.0, 1.0 - (time.time() - t0)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--interval", type=float, default=3)
    ap.add_argument("--sources", default="127.0.0.50")
    ap.add_argument("--catalog", default="video")
    ap.add_argument("--text", default="toy story")
    ap.add_argument("--token", default="")
    ap.add_argument("--pid", type=int)
    a = ap.parse_args()
    if not 0 < a.conns <= 5000 or not 0 < a.seconds <= 600:
        sys.exit("slowloris: --conns 1..5000, --seconds up to 600")
    attack = Attack(a.port, parse_sources(a.sources), a.conns, a.interval)
    stats = {"tried": 0, "ok": 0, "bad": [], "ms": []}
    stop = threading.Event()
    client = None
    t_end = time.time() + a.seconds
    t_client = time.time() + min(5.0, a.seconds / 4)  # let the attack fill up first
    max_threads = 0
    while time.time() < t_end:
        now = time.time()
        attack.step(now)
        if client is None and now >= t_client:
            client = threading.Thread(target=resolver, args=(a.port, a.catalog, a.text, a.token, stop, stats))
            client.start()
        if a.pid:
            max_threads = max(max_threads, threads_of(a.pid) or 0)
    stop.set()
    if client:
        client.join()
    attack.close()
    ms = sorted(stats["ms"]) or [0]
    out = {"sources": len(attack.sources), "conns": a.conns, "seconds": a.seconds,
           "resolves": stats["tried"], "resolves_ok": stats["ok"],
           "ok_pct": round(100.0 * stats["ok"] / max(1, stats["tried"]), 2),
           "resolve_ms_p50": round(ms[len(ms) // 2], 1), "resolve_ms_max": round(ms[-1], 1),
           "attack_opened": attack.opened, "attack_closed_by_server": attack.closed_by_server,
           "attack_max_held": attack.max_held, "server_threads_max": max_threads or None,
           "failures": stats["bad"][:5]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
