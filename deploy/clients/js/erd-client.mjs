// A minimal erd client on fetch (Node 18+ or any browser), no dependencies.
//
//   import { ErdClient } from "./erd-client.mjs";
//   const erd = new ErdClient("http://127.0.0.1:8080", { token: process.env.ERD_TOKEN });
//   const { results } = await erd.resolve("books", [
//     { text: "harry potter and the sorcerers stone", score: -1200 },
//     { text: "harry potter in the sorcerer stone", score: -1500 }], { k: 3 });
//
// Error replies throw ErdError with .status, .code ("unknown_catalog",
// "index_not_built", ...) and .message from erd's {"error": {...}} body.
//
// As a script: node erd-client.mjs URL CATALOG TEXT [TEXT...]  (ERD_TOKEN
// for a token) prints the answer as JSON, or the error and exit status 1.

export class ErdError extends Error {
  constructor(status, code, message, requestId) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

export class ErdClient {
  constructor(url = "http://127.0.0.1:8080", { token, timeoutMs = 10000 } = {}) {
    this.url = url.replace(/\/+$/, "");
    this.token = token;
    this.timeoutMs = timeoutMs;
  }

  async call(method, path, body) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await resp.text();
    if (!resp.ok) {
      let code = `http_${resp.status}`, message = text;
      try { ({ code, message } = JSON.parse(text).error); } catch { /* not erd's JSON */ }
      throw new ErdError(resp.status, code, message, resp.headers.get("X-Request-Id"));
    }
    return resp.headers.get("Content-Type")?.startsWith("application/json") ? JSON.parse(text) : text;
  }

  // hypotheses: strings or {text, score}, best first
  resolve(catalog, hypotheses, { k, explain } = {}) {
    const hyps = (Array.isArray(hypotheses) ? hypotheses : [hypotheses])
      .map((h) => (typeof h === "string" ? { text: h } : h));
    const body = { catalog, hypotheses: hyps };
    if (k !== undefined) body.k = k;
    if (explain) body.explain = true;
    return this.call("POST", "/v1/resolve", body);
  }

  catalogs() { return this.call("GET", "/v1/catalogs").then((r) => r.catalogs); }
  upsert(catalog, entity) { return this.call("POST", `/v1/catalogs/${encodeURIComponent(catalog)}/entities`, entity); }
  rebuild(catalog) { return this.call("POST", `/v1/catalogs/${encodeURIComponent(catalog)}/rebuild`); }
  rebuildStatus(catalog) {
    return this.call("GET", `/v1/catalogs/${encodeURIComponent(catalog)}/rebuild`).then((r) => r.rebuild);
  }
}

// script entry point
if (import.meta.url === `file://${process.argv[1]}`) {
  const [url, catalog, ...texts] = process.argv.slice(2);
  if (!url || !catalog || texts.length === 0) {
    console.error("usage: node erd-client.mjs URL CATALOG TEXT [TEXT...]");
    process.exit(2);
  }
  const erd = new ErdClient(url, { token: process.env.ERD_TOKEN });
  try {
    console.log(JSON.stringify(await erd.resolve(catalog, texts, { k: 3 })));
  } catch (err) {
    console.error(`erd-client: ${err.message}`);
    process.exit(err instanceof ErdError ? 1 : 3);
  }
}
