#!/usr/bin/env python3
"""A small client for erd's HTTP API, standard library only (Python 3.8+).

    from erd_client import Client, UnknownCatalog
    erd = Client("http://127.0.0.1:8080", token="...")      # token optional
    answer = erd.resolve("books", [("harry potter and the sorcerers stone", -1200),
                                   ("harry potter in the sorcerer stone", -1500)], k=3)
    for r in answer["results"]:
        print(r["name"], r["score"])

Hypotheses are strings or (text, score) pairs, best first.  Every error
reply becomes an ErdError subclass chosen by HTTP status and erd's error
code (UnknownCatalog, IndexNotBuilt, Unauthorized, ...), carrying .status,
.code, .message and the request id.  Admin calls (catalogs, entities, bulk
uploads, rebuilds) need the admin token.  Run it as a script for a quick
resolve:  python3 erd_client.py --url URL --catalog books "text" ["text" ...]
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "ErdError", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
           "UnknownCatalog", "MethodNotAllowed", "Conflict", "IndexNotBuilt", "TooLarge",
           "ServerError", "Unavailable"]


class ErdError(Exception):
    """An error reply: {"error": {"code", "message"}} with its HTTP status."""

    def __init__(self, status, code, message, request_id=None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class BadRequest(ErdError): pass          # 400: malformed JSON, bad types, limits
class Unauthorized(ErdError): pass        # 401: missing or wrong token
class Forbidden(ErdError): pass           # 403: route not enabled, read-only replica
class NotFound(ErdError): pass            # 404
class UnknownCatalog(NotFound): pass      # 404 unknown_catalog
class MethodNotAllowed(ErdError): pass    # 405
class Conflict(ErdError): pass            # 409
class IndexNotBuilt(Conflict): pass       # 409 index_not_built: run erd build
class TooLarge(ErdError): pass            # 413
class ServerError(ErdError): pass         # 5xx
class Unavailable(ServerError): pass      # 503: busy or out of memory

_BY_CODE = {"unknown_catalog": UnknownCatalog, "index_not_built": IndexNotBuilt}
_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
              405: MethodNotAllowed, 409: Conflict, 413: TooLarge, 503: Unavailable}


def _error(status, body, request_id):
    try:
        err = json.loads(body)["error"]
        code, message = err["code"], err["message"]
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{status}", body.decode("utf-8", "replace")[:500]
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else ErdError)
    return cls(status, code, message, request_id)


class Client:
    def __init__(self, url="http://127.0.0.1:8080", token=None, timeout=10.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method, path, body=None, raw=None, content_type="application/json"):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
                if resp.headers.get("Content-Type", "").startswith("application/json"):
                    return json.loads(payload) if payload else None
                return payload.decode("utf-8")
        except urllib.error.HTTPError as e:
            raise _error(e.code, e.read(), e.headers.get("X-Request-Id")) from None

    @staticmethod
    def _seg(s):
        return urllib.parse.quote(str(s), safe="")

    # ---- resolve

    def resolve(self, catalog, hypotheses, k=None, explain=False):
        """hypotheses: a string, or a list of strings / (text, score) pairs,
        best first.  explain=True asks for the per-hypothesis evidence on
        servers that provide it (others ignore the field)."""
        if isinstance(hypotheses, str):
            hypotheses = [hypotheses]
        hyps = []
        for h in hypotheses:
            if isinstance(h, str):
                hyps.append({"text": h})
            elif isinstance(h, dict):
                hyps.append(h)
            else:
                text, score = h
                hyps.append({"text": text, "score": score})
        body = {"catalog": catalog, "hypotheses": hyps}
        if k is not None:
            body["k"] = k
        if explain:
            body["explain"] = True
        return self._call("POST", "/v1/resolve", body)

    def explain(self, catalog, hypotheses, k=None):
        """resolve with explain=True."""
        return self.resolve(catalog, hypotheses, k=k, explain=True)

    # ---- health

    def healthz(self):
        return self._call("GET", "/healthz")

    def readyz(self):
        return self._call("GET", "/readyz")

    def metrics(self):
        """Prometheus text (metrics or admin token)."""
        return self._call("GET", "/metrics")

    # ---- admin

    def catalogs(self):
        return self._call("GET", "/v1/catalogs")["catalogs"]

    def create_catalog(self, name):
        return self._call("POST", "/v1/catalogs", {"name": name})

    def describe(self, catalog):
        return self._call("GET", f"/v1/catalogs/{self._seg(catalog)}")

    def delete_catalog(self, catalog):
        return self._call("DELETE", f"/v1/catalogs/{self._seg(catalog)}")

    def upsert(self, catalog, entity):
        """entity: {"id", "name", "aliases"?, "attrs"?}"""
        return self._call("POST", f"/v1/catalogs/{self._seg(catalog)}/entities", entity)

    def get_entity(self, catalog, entity_id):
        return self._call("GET", f"/v1/catalogs/{self._seg(catalog)}/entities/{self._seg(entity_id)}")

    def delete_entity(self, catalog, entity_id):
        return self._call("DELETE", f"/v1/catalogs/{self._seg(catalog)}/entities/{self._seg(entity_id)}")

    def bulk(self, catalog, entities):
        """Uploads entities (an iterable of dicts) as JSON lines; the reply
        counts lines, upserted and failed, with the failed lines' errors."""
        lines = "".join(json.dumps(e) + "\n" for e in entities).encode()
        return self._call("POST", f"/v1/catalogs/{self._seg(catalog)}/bulk", raw=lines,
                          content_type="application/x-ndjson")

    def rebuild(self, catalog):
        """Starts a background rebuild (202); see rebuild_status / wait_rebuilt."""
        return self._call("POST", f"/v1/catalogs/{self._seg(catalog)}/rebuild")

    def rebuild_status(self, catalog):
        return self._call("GET", f"/v1/catalogs/{self._seg(catalog)}/rebuild")["rebuild"]

    def wait_rebuilt(self, catalog, timeout=600.0, poll=0.2):
        """Polls until the rebuild is no longer running; its final state
        ("done" or "failed"); TimeoutError past timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.rebuild_status(catalog)
            if st["state"] != "running":
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"rebuild of {catalog} still running after {timeout} s")
            time.sleep(poll)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="resolve one n-best list against erd")
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--token")
    ap.add_argument("--catalog", required=True)
    ap.add_argument("-k", type=int)
    ap.add_argument("text", nargs="+", help="hypotheses, best first")
    a = ap.parse_args(argv)
    try:
        answer = Client(a.url, a.token).resolve(a.catalog, a.text, k=a.k)
    except ErdError as e:
        print(f"erd_client: {e}", file=sys.stderr)
        return 1
    for i, r in enumerate(answer["results"], 1):
        print(f"{i}\t{r['score']:.4f}\t{r['id']}\t{r['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
