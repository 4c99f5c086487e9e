"""What the Python integration tests share: TAP output, a scratch folder
with the mini catalog imported and built, and a real `erd serve` on a free
loopback port, stopped with SIGTERM.  (ERD_EXE, ERD_TEST_SRCDIR)"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.error, urllib.request

EXE = os.environ.get("ERD_EXE", "")
SRC = os.environ.get("ERD_TEST_SRCDIR", "")
MINI = os.path.join(SRC, "tests", "integration", "fixtures", "mini.jsonl")
TOKEN = "console-admin-token-0123456789"


class Tap:
    def __init__(self):
        self.n = self.failed = 0

    def ok(self, cond, what):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok" if cond else "not ok") + f" {self.n} - {what}", flush=True)
        return cond

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def erd(*args, env=None, cwd=None, timeout=300):
    """Runs erd; returns (exit code, stdout, stderr)."""
    p = subprocess.run([EXE, *args], capture_output=True, text=True, env=env, cwd=cwd,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def run_in_temp_dir(main, tap, prefix):
    """main(work) in a fresh folder, removed afterwards; then the TAP plan."""
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        main(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tap.done()


class Scratch:
    """A temporary folder (removed on exit) with mini imported and built as "mini"."""
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="erd-test-")
        self.db = os.path.join(self.dir, "erd.db")
        for cmd in (["import", "-q", "--db", self.db, "--catalog", "mini", MINI],
                    ["build", "-q", "--db", self.db, "--catalog", "mini"]):
            rc, _, err = erd(*cmd)
            if rc != 0:
                raise RuntimeError(f"erd {cmd[0]} failed: {err}")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """erd serve on db with the admin token set (a port taken meanwhile by a
    test running beside this one: another port)."""
    def __init__(self, db, extra_env=None):
        env = dict(os.environ, ERD_ADMIN_TOKEN=TOKEN, ERD_LOG_REQUESTS="false")
        env.update(extra_env or {})
        self.log = open(db + ".serve.log", "ab")
        for _ in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.proc = subprocess.Popen([EXE, "serve", "--db", db, "--listen", f"127.0.0.1:{self.port}"],
                                         stdout=subprocess.DEVNULL, stderr=self.log, env=env)
            deadline = time.time() + 60
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    if self.call("GET", "/readyz")[0] == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("erd serve did not become ready")
        raise RuntimeError("erd serve did not start")

    def call(self, method, path, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                ctype = r.headers.get("Content-Type", "")
                return r.status, json.loads(raw) if ctype.startswith("application/json") else raw
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self):
        """SIGTERM; the exit status (0 when it drained cleanly)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.log.close()
