// The repowire dashboard: reads through the daemon's /v1 API with the
// session cookie, follows the event stream, and re-reads what an event
// touches. Every value is put in the page as text (never as HTML).
"use strict";

const STATES = ["queued", "dispatched", "running", "succeeded", "failed", "canceled", "timed_out"];
const PER_COLUMN = 50;
const EVENTS_KEPT = 500;
let lastSeq = 0;

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function showError(msg) {
  const e = document.getElementById("error");
  e.textContent = msg;
  e.hidden = !msg;
}

async function api(path, opts) {
  const init = Object.assign({ credentials: "same-origin" }, opts || {});
  if (init.method && init.method !== "GET") {
    init.headers = Object.assign({ "X-Repowire-Dashboard": "1" }, init.headers || {});
  }
  const r = await fetch(path, init);
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const m = body && body.code ? `${body.code}: ${body.message}` : `HTTP ${r.status}`;
    throw new Error(m);
  }
  return body;
}

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

async function loadPeers() {
  const peers = await api("/v1/peers");
  const body = document.querySelector("#peers tbody");
  body.replaceChildren(...peers.map((p) => {
    const status = p.ghost ? `${p.status} (ghost)` : p.stale ? `${p.status} (stale)` : p.status;
    const tr = el("tr", { className: "peer" },
      el("td", {}, p.circle),
      el("td", { className: "name" }, p.name),
      el("td", { className: `status status-${p.status}${p.ghost ? " ghost" : ""}` }, status),
      el("td", {}, p.role),
      el("td", {}, p.backend),
      el("td", {}, p.route),
      el("td", {}, age(p.last_seen_ms)));
    tr.dataset.name = p.name;
    tr.dataset.circle = p.circle;
    return tr;
  }));
  document.getElementById("peers-count").textContent = `(${peers.length})`;
}

async function loadPersonas() {
  const list = await api("/v1/personas");
  const body = document.querySelector("#personas tbody");
  body.replaceChildren(...list.map((p) => el("tr", {},
    el("td", {}, p.circle),
    el("td", {}, p.persona || "built-in"),
    el("td", {}, p.generation == null ? "" : p.generation),
    el("td", {}, p.decisions),
    el("td", {}, p.fallbacks),
    el("td", { className: p.last_error ? "error" : "" }, p.last_error || ""))));
}

async function jobAction(id, action) {
  try {
    const opts = { method: "POST" };
    if (action === "cancel") {
      opts.headers = { "Content-Type": "application/json" };
      opts.body = JSON.stringify({ reason: "canceled from the dashboard" });
    }
    await api(`/v1/jobs/${encodeURIComponent(id)}/${action}`, opts);
    showError("");
    scheduleLoad("jobs");
  } catch (e) {
    showError(`${action} ${id}: ${e.message}`);
  }
}

function jobCard(j) {
  const card = el("div", { className: "card job" },
    el("div", { className: "title" }, j.title),
    el("div", { className: "meta" }, `${j.job_id} · ${j.circle}`),
    el("div", { className: "meta" },
      `attempt ${j.attempts}/${j.max_attempts}` + (j.assignee ? ` · ${j.assignee}` : "")),
  );
  card.dataset.id = j.job_id;
  card.dataset.state = j.state;
  if (j.result_summary) card.append(el("div", { className: "meta result" }, j.result_summary));
  if (j.error) card.append(el("div", { className: "meta error" }, j.error));
  const actions = el("div", {});
  if (["queued", "dispatched", "running"].includes(j.state)) {
    actions.append(el("button", { className: "cancel", onclick: () => jobAction(j.job_id, "cancel") }, "cancel"));
  }
  if (["failed", "canceled", "timed_out"].includes(j.state)) {
    actions.append(el("button", { className: "retry", onclick: () => jobAction(j.job_id, "retry") }, "retry"));
  }
  card.append(actions);
  return card;
}

async function loadJobs() {
  const columns = await Promise.all(STATES.map((s) => api(`/v1/jobs?state=${s}&limit=${PER_COLUMN}`)));
  const board = document.getElementById("board");
  board.replaceChildren(...STATES.map((s, i) => {
    const jobs = columns[i];
    const more = jobs.length >= PER_COLUMN ? ` (first ${PER_COLUMN})` : ` (${jobs.length})`;
    const col = el("div", { className: "column" }, el("h3", {}, s.replace("_", " ") + more), ...jobs.map(jobCard));
    col.dataset.state = s;
    return col;
  }));
}

function matches(li) {
  const f = document.getElementById("filter").value.trim().toLowerCase();
  return !f || li.textContent.toLowerCase().includes(f);
}

function addEvent(e) {
  if (e.seq <= lastSeq) return;
  lastSeq = e.seq;
  const when = new Date(e.ts_ms).toLocaleTimeString();
  const li = el("li", { className: "event" },
    `${when} `, el("span", { className: "kind" }, e.kind), ` ${e.subject} `, JSON.stringify(e.payload));
  li.dataset.kind = e.kind;
  li.hidden = !matches(li);
  const list = document.getElementById("events");
  list.prepend(li);
  while (list.children.length > EVENTS_KEPT) list.lastElementChild.remove();
  if (e.kind.startsWith("peer_") || e.kind.startsWith("role_")) scheduleLoad("peers");
  if (e.kind.startsWith("job_")) scheduleLoad("jobs");
  if (e.kind.startsWith("persona_")) scheduleLoad("personas");
}

const loaders = { peers: loadPeers, jobs: loadJobs, personas: loadPersonas };
const pending = {};
function scheduleLoad(what) {
  if (pending[what]) return;
  pending[what] = setTimeout(async () => {
    pending[what] = null;
    try { await loaders[what](); } catch (e) { showError(`${what}: ${e.message}`); }
  }, 150);
}

// The event stream, read as text/event-stream frames (id, event, data).
async function follow() {
  const live = document.getElementById("live");
  for (;;) {
    try {
      const r = await fetch(`/v1/events/stream?since=${lastSeq}`, { credentials: "same-origin" });
      if (!r.ok) throw new Error(`event stream: HTTP ${r.status}`);
      live.textContent = "live";
      live.className = "live";
      const reader = r.body.getReader();
      const text = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += text.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) {
            try { const ev = JSON.parse(data); if (ev && ev.seq) addEvent(ev); } catch (_) { /* a lag notice */ }
          }
        }
      }
    } catch (e) {
      showError(e.message);
    }
    live.textContent = "reconnecting…";
    live.className = "live off";
    await new Promise((res) => setTimeout(res, 1000));
  }
}

async function start() {
  document.getElementById("filter").addEventListener("input", () => {
    for (const li of document.querySelectorAll("#events li")) li.hidden = !matches(li);
  });
  try {
    const recent = await api("/v1/events?tail=200");
    for (const e of recent.events) addEvent(e);
    await Promise.all([loadPeers(), loadJobs(), loadPersonas()]);
  } catch (e) {
    showError(e.message);
  }
  document.body.dataset.ready = "1";
  follow();
}

start();
