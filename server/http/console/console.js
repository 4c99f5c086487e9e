// erd console.  Talks to the same API as any client: GET /healthz for the
// served catalogs, POST /v1/resolve, the admin routes under /v1/catalogs and
// GET /metrics.  The token lives in this page's memory only (never stored).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: "", samples: [], lastMetrics: null, timers: {} };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One call to the API; errors become ApiError with the server's code and message.
async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) {
    let code = "http_" + resp.status, message = text;
    try {
      const j = JSON.parse(text);
      if (j.error) { code = j.error.code; message = j.error.message; }
    } catch (_) { /* not JSON: keep the text */ }
    throw new ApiError(resp.status, code, message);
  }
  return resp.headers.get("Content-Type")?.startsWith("application/json") ? JSON.parse(text) : text;
}

function showError(box, err) {
  box.hidden = !err;
  box.textContent = err ? `${err.status || ""} ${err.code || ""}: ${err.message}` : "";
}

// ---- resolve playground

// "text | score" per line, best first; a line without "|" has no score.
function parseHypotheses(src) {
  const hyps = [];
  for (const raw of src.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const bar = line.lastIndexOf("|");
    const score = bar >= 0 ? Number(line.slice(bar + 1).trim()) : NaN;
    if (bar >= 0 && line.slice(bar + 1).trim() !== "" && !Number.isNaN(score))
      hyps.push({ text: line.slice(0, bar).trim(), score });
    else
      hyps.push({ text: line });
  }
  return hyps;
}

async function loadServedCatalogs() {
  const health = await api("GET", "/healthz");
  const sel = $("catalog"), keep = sel.value;
  sel.replaceChildren(...health.catalogs.map((c) => el("option", { value: c, text: c })));
  if (health.catalogs.includes(keep)) sel.value = keep;
  $("status").textContent = `serving ${health.catalogs.length} catalog${health.catalogs.length === 1 ? "" : "s"}`;
}

async function resolve(ev) {
  ev.preventDefault();
  const hyps = parseHypotheses($("hypotheses").value);
  const box = $("resolve-error");
  if (!hyps.length) { showError(box, { message: "type at least one hypothesis" }); return; }
  const req = { catalog: $("catalog").value, hypotheses: hyps, k: Number($("k").value) || 5, explain: true };
  const t0 = performance.now();
  $("resolve").disabled = true;
  try {
    const resp = await api("POST", "/v1/resolve", req);
    showError(box, null);
    drawResults(resp, hyps, performance.now() - t0);
  } catch (err) {
    showError(box, err);
    $("results-box").hidden = true;
  } finally {
    $("resolve").disabled = false;
  }
}

function drawResults(resp, hyps, ms) {
  const results = resp.results || [];
  $("results-box").hidden = false;
  const ex = resp.explain || {};
  // the rerank's budget may leave the least likely candidates of a long query unaligned
  const aligned = ex.reranked && Number.isInteger(ex.aligned) && Number.isInteger(ex.candidates)
    ? `; ${ex.aligned} of ${ex.candidates} candidates aligned` : "";
  $("results-meta").textContent =
    `${results.length} result${results.length === 1 ? "" : "s"} for ${hyps.length} hypothes${hyps.length === 1 ? "is" : "es"} in ${ms.toFixed(1)} ms${aligned}`;
  // "no match" when the server says so, or when it found nothing at all
  const noMatch = resp.no_match === true || resp.match === false || results.length === 0;
  $("no-match").hidden = !noMatch;
  const rows = results.map((r, i) => {
    const p = Math.max(0, Math.min(1, r.score));
    const bar = el("span", { class: "bar" });
    bar.style.width = `${(p * 8).toFixed(2)}rem`;
    return el("tr", { class: "result" },
      el("td", { class: "num", text: String(i + 1) }),
      el("td", { class: "name", text: r.name }),
      el("td", { class: "muted", text: r.id }),
      el("td", { class: "num" }, bar, `${(p * 100).toFixed(1)} %`));
  });
  $("results").tBodies[0].replaceChildren(...rows);
  drawExplain(results);
}

// Cost 0 is a match (green); substitutions and gaps go from yellow to red
// as their cost grows, so the eye finds where the recogniser went wrong.
function costColour(op, cost) {
  if (op === "match") return null;
  const c = Math.max(0, Math.min(1, (Number(cost) || 0) / 4));
  const hue = 45 - 45 * c;
  return `hsl(${hue}, 85%, ${op === "sub" ? 45 : 38}%)`;
}

// Per result, when the response carries it: explain.hypotheses[i].alignment
// = [{op: "match"|"sub"|"ins"|"del", hyp, ref, cost}, ...].
function drawExplain(results) {
  const out = $("explain");
  out.replaceChildren();
  for (const r of results) {
    const hypsX = r.explain && Array.isArray(r.explain.hypotheses) ? r.explain.hypotheses : [];
    hypsX.forEach((h, i) => {
      if (!Array.isArray(h.alignment)) return;
      const cells = h.alignment.map((a) => {
        const cell = el("div", { class: `cell op-${a.op}`, title: `${a.op} cost ${a.cost}` },
          el("span", { class: "hyp", text: a.op === "del" ? "·" : a.hyp || "" }),
          el("span", { class: "ref", text: a.op === "ins" ? "·" : a.ref || "" }));
        const colour = costColour(a.op, a.cost);
        if (colour) cell.style.background = colour;
        return cell;
      });
      out.append(el("div", { class: "align" },
        el("div", { class: "caption", text: `hypothesis ${i + 1}${h.text ? ` “${h.text}”` : ""} against ${r.name} (top: heard, bottom: name)` }),
        el("div", { class: "cells" }, ...cells)));
    });
  }
}

// ---- catalogs

function when(unix) {
  return unix ? new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "never";
}

function rebuildText(rb) {
  if (!rb || rb.state === "none") return el("span", { class: "muted", text: "none since start" });
  const text = rb.state === "running" ? `running since ${when(rb.started_at)}`
    : rb.state === "failed" ? `failed: ${rb.error || ""}`
    : `done ${when(rb.finished_at)} (${Number(rb.seconds).toFixed(2)} s, generation ${rb.generation})`;
  return el("span", { class: `rebuild state-${rb.state}`, text });
}

async function loadCatalogs() {
  const box = $("catalogs-error");
  if (!state.token) {
    $("catalogs").tBodies[0].replaceChildren();
    $("catalogs-note").hidden = false;
    return;
  }
  try {
    const list = await api("GET", "/v1/catalogs");
    const details = await Promise.all(list.catalogs.map((c) => api("GET", `/v1/catalogs/${encodeURIComponent(c.name)}`)));
    $("catalogs-note").hidden = true;
    showError(box, null);
    $("catalogs").tBodies[0].replaceChildren(...details.map(catalogRow));
  } catch (err) {
    showError(box, err);
  }
}

function catalogRow(d) {
  const btn = el("button", { type: "button", class: "small rebuild-btn", "data-catalog": d.name, text: "rebuild" });
  btn.addEventListener("click", () => rebuild(d.name, btn));
  if (d.rebuild && d.rebuild.state === "running") btn.disabled = true;
  const s = d.serving || {};
  return el("tr", { "data-catalog": d.name },
    el("td", { class: "name", text: d.name }),
    el("td", { class: "num", text: String(d.entities) }),
    el("td", { class: "num", text: s.served ? String(s.served_generation) : "not served" }),
    el("td", { class: "num", text: d.index ? String(d.index.generation) : "not built" }),
    el("td", { class: "num", text: String(d.pending_changes) }),
    el("td", { class: "muted", text: d.index ? d.index.encoder : "" }),
    el("td", {}, rebuildText(d.rebuild)),
    el("td", {}, btn));
}

async function rebuild(name, btn) {
  btn.disabled = true;
  const path = `/v1/catalogs/${encodeURIComponent(name)}/rebuild`;
  try {
    await api("POST", path);
    await loadCatalogs();
    // poll until the background build is swapped in (or fails), at most 10 minutes
    for (let i = 0; i < 1200; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const st = await api("GET", path);
      if (st.rebuild.state !== "running") break;
    }
    await loadCatalogs();
    await loadServedCatalogs();
  } catch (err) {
    showError($("catalogs-error"), err);
    btn.disabled = false;
  }
}

// ---- metrics: request rate and resolve p99 from the Prometheus text

function parseMetrics(text) {
  let requests = 0;
  const buckets = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("erd_http_requests_total{")) {
      requests += Number(line.slice(line.lastIndexOf(" ") + 1));
    } else if (line.startsWith('erd_http_request_duration_seconds_bucket{route="/v1/resolve"')) {
      const le = /le="([^"]+)"/.exec(line)[1];
      buckets.push({ le: le === "+Inf" ? Infinity : Number(le), n: Number(line.slice(line.lastIndexOf(" ") + 1)) });
    }
  }
  return { t: performance.now() / 1000, requests, buckets };
}

// p99 of the requests between two scrapes: the first bucket whose share of
// the new observations reaches 99 %.
function p99(prev, cur) {
  const total = cur.buckets.length ? cur.buckets[cur.buckets.length - 1].n - (prev.buckets[prev.buckets.length - 1]?.n || 0) : 0;
  if (total <= 0) return null;
  for (let i = 0; i < cur.buckets.length; i++) {
    const n = cur.buckets[i].n - (prev.buckets[i]?.n || 0);
    if (n >= 0.99 * total) return cur.buckets[i].le === Infinity ? null : cur.buckets[i].le * 1000;
  }
  return null;
}

async function pollMetrics() {
  if (!state.token) return;
  try {
    const m = parseMetrics(await api("GET", "/metrics"));
    $("metrics-note").hidden = true;
    const prev = state.lastMetrics;
    state.lastMetrics = m;
    if (!prev) return;
    const rate = (m.requests - prev.requests) / Math.max(1e-3, m.t - prev.t);
    const p = p99(prev, m);
    state.samples.push({ rate, p99: p });
    if (state.samples.length > 90) state.samples.shift();
    $("rate").textContent = rate.toFixed(1);
    // a histogram gives the bucket bound the 99th percentile falls under
    $("p99").textContent = p === null ? "–" : `≤ ${p.toFixed(p < 10 ? 2 : 0)}`;
    drawChart();
  } catch (err) {
    $("metrics-note").hidden = false;
    $("metrics-note").textContent = `metrics: ${err.message}`;
  }
}

// The last 90 scrapes (3 minutes), spread over the width, each series
// scaled to its own maximum, which is written in its colour at the top.
function drawChart() {
  const c = $("chart"), g = c.getContext("2d"), w = c.width, h = c.height, pad = 6, top = 22;
  g.clearRect(0, 0, w, h);
  g.font = "12px system-ui, sans-serif";
  const line = (key, colour, label, x0) => {
    const vals = state.samples.map((s) => s[key]);
    const max = Math.max(1e-9, ...vals.filter((v) => v !== null));
    g.fillStyle = colour;
    g.fillText(`${label} max ${max < 10 ? max.toFixed(2) : max.toFixed(0)}`, x0, 14);
    if (vals.length < 2) return;
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    vals.forEach((v, i) => {
      const x = pad + (i / (vals.length - 1)) * (w - 2 * pad), y = h - pad - ((v || 0) / max) * (h - pad - top);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  };
  line("rate", "#2458d6", "requests/s", pad);
  line("p99", "#b26a00", "p99 ms", 160);
}

// ---- wiring

function setToken(value) {
  state.token = value.trim();
  state.lastMetrics = null;
  loadCatalogs();
  pollMetrics();
}

function start() {
  $("resolve-form").addEventListener("submit", resolve);
  $("token").addEventListener("change", (e) => setToken(e.target.value));
  $("refresh").addEventListener("click", () => { loadServedCatalogs(); loadCatalogs(); });
  loadServedCatalogs().catch((err) => { $("status").textContent = `unreachable: ${err.message}`; });
  state.timers.metrics = setInterval(pollMetrics, 2000);
}

start();
