// The repowire dashboard: reads through the daemon's /v1 API with the
// session cookie, follows the event stream, and re-reads what an event
// touches. Every value is put in the page as text (never as HTML).
"use strict";

const STATES = ["queued", "dispatched", "running", "succeeded", "failed", "canceled", "timed_out"];
const PER_COLUMN = 50;
const EVENTS_KEPT = 500;
let lastSeq = 0;

// The session's key: handed over once in the address's fragment by the
// login, kept in this tab's sessionStorage (per origin: other servers on
// this host never see it), and sent with every request; the cookie alone
// opens nothing but the page.
const KEY = (() => {
  const m = location.hash.match(/^#key=(rw_[0-9a-f]+)$/);
  if (m) {
    sessionStorage.setItem("repowire-dashboard-key", m[1]);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("repowire-dashboard-key") || "";
})();

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
  init.headers = Object.assign({ "X-Repowire-Dashboard": KEY }, init.headers || {});
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

async function asPeer(peer, method, path, body) {
  return api(path, {
    method,
    headers: Object.assign({ "X-Repowire-As": `${peer.name}@${peer.circle}` },
      body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function roleAction(p) {
  try {
    if (p.role === "orchestrator") await asPeer(p, "POST", "/v1/roles/orchestrator/release");
    else await asPeer(p, "POST", "/v1/roles/orchestrator/claim", { force: true });
    showError("");
    scheduleLoad("peers");
  } catch (e) {
    showError(`role of ${p.name}: ${e.message}`);
  }
}

let peersNow = [];
let loads = {};
function fillNoteForm() {
  for (const id of ["note-from", "note-to"]) {
    const sel = document.getElementById(id);
    const keep = sel.value;
    sel.replaceChildren(...peersNow.map((p) => el("option", { value: `${p.name}@${p.circle}` }, `${p.name}@${p.circle}`)));
    if (keep) sel.value = keep;
  }
}

async function sendNote() {
  const from = document.getElementById("note-from").value;
  const to = document.getElementById("note-to").value;
  const text = document.getElementById("note-text").value;
  const peer = peersNow.find((p) => `${p.name}@${p.circle}` === from);
  if (!peer || !to || !text) { showError("a note needs a sender, a recipient and a text"); return; }
  try {
    const r = await asPeer(peer, "POST", "/v1/notify", { to, text });
    document.getElementById("note-sent").textContent = `sent ${r.delivery_id}`;
    document.getElementById("note-text").value = "";
    showError("");
  } catch (e) {
    showError(`note: ${e.message}`);
  }
}

async function loadPeers() {
  const peers = await api("/v1/peers");
  peersNow = peers;
  fillNoteForm();
  const body = document.querySelector("#peers tbody");
  body.replaceChildren(...peers.map((p) => {
    const status = p.ghost ? `${p.status} (ghost)` : p.stale ? `${p.status} (stale)` : p.status;
    const tr = el("tr", { className: "peer" },
      el("td", {}, p.circle),
      el("td", { className: "name" }, p.name),
      el("td", { className: `status status-${p.status}${p.ghost ? " ghost" : ""}` }, status),
      el("td", {}, p.role),
      el("td", {}, p.backend),
      el("td", { className: "load" }, loads[p.peer_id] || 0),
      el("td", {}, p.route),
      el("td", {}, age(p.last_seen_ms)),
      el("td", {}, el("button", { className: "role", onclick: () => roleAction(p) },
        p.role === "orchestrator" ? "release role" : "make orchestrator")));
    tr.dataset.name = p.name;
    tr.dataset.role = p.role;
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

async function loadOverview() {
  const o = await api("/v1/dashboard/overview");
  const changed = JSON.stringify(o.loads) !== JSON.stringify(loads);
  loads = o.loads;
  if (changed) scheduleLoad("peers");
  document.getElementById("asks-count").textContent = `(${o.asks.length}${o.asks.length >= 200 ? "+" : ""})`;
  document.getElementById("asks").replaceChildren(...o.asks.map((a) => {
    const li = el("li", { className: a.overdue ? "ask overdue" : "ask" },
      el("span", { className: "meta" }, `${new Date(a.created_at_ms).toLocaleTimeString()} · ${a.circle} · `),
      `${a.from} → ${a.to}: `, a.text.length > 160 ? a.text.slice(0, 160) + "…" : a.text,
      el("span", { className: "meta" }, ` (${a.state}, ${a.correlation_id})`));
    if (a.overdue) li.append(el("span", { className: "badge" }, "overdue"));
    li.dataset.id = a.correlation_id;
    return li;
  }));
  document.querySelector("#reviews tbody").replaceChildren(...o.reviews.map((r) => {
    const tr = el("tr", { className: "review" },
      el("td", {}, r.circle), el("td", {}, r.ref), el("td", {}, r.title), el("td", {}, r.author),
      el("td", {}, r.reviewers.map((x) => `${x.reviewer}: ${x.verdict || x.my_action}`).join(", ")),
      el("td", {}, age(r.updated_at_ms)));
    tr.dataset.ref = r.ref;
    return tr;
  }));
}

async function loadSchedules() {
  const list = await api("/v1/schedules?all=true");
  document.querySelector("#schedules tbody").replaceChildren(...list.map((x) => {
    const tr = el("tr", { className: "schedule" },
      el("td", {}, x.circle), el("td", {}, x.schedule_id), el("td", {}, x.kind), el("td", {}, x.to),
      el("td", {}, x.cron ? `${x.cron} (${x.tz})` : x.fire_at_ms ? new Date(x.fire_at_ms).toLocaleString() : ""),
      el("td", {}, !x.enabled ? "paused" : x.next_fire_ms ? new Date(x.next_fire_ms).toLocaleString() : "—"),
      el("td", {}, x.fire_count));
    tr.dataset.id = x.schedule_id;
    return tr;
  }));
}

// What a persona (or the built-in policy) decided, and why where it said.
const DECISIONS = new Set(["persona_route", "persona_error", "job_dispatched", "job_queued",
  "review_assigned", "peer_spawned", "peer_spawn_failed"]);

function addDecision(e) {
  const p = e.payload || {};
  const out = p.outcome || p;
  const why = out.why || out.reason || p.error || "";
  const li = el("li", { className: "decision" },
    el("span", { className: "meta" }, `${new Date(e.ts_ms).toLocaleTimeString()} · ${e.circle || ""} · `),
    el("span", { className: "kind" }, e.kind), ` ${e.subject} `, JSON.stringify(out),
    why ? el("span", { className: "meta" }, ` — ${why}`) : "");
  li.dataset.kind = e.kind;
  const list = document.getElementById("decisions");
  list.prepend(li);
  while (list.children.length > 50) list.lastElementChild.remove();
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
  if (j.cancel_requested_at_ms) card.append(el("div", { className: "meta" }, "cancel requested"));
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
  if (DECISIONS.has(e.kind)) addDecision(e);
  if (e.kind.startsWith("ask_") || e.kind.startsWith("review_")) scheduleLoad("overview");
  if (e.kind.startsWith("schedule_")) scheduleLoad("schedules");
}

const loaders = { peers: loadPeers, jobs: loadJobs, personas: loadPersonas, overview: loadOverview, schedules: loadSchedules };
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
      const r = await fetch(`/v1/events/stream?since=${lastSeq}`, {
        credentials: "same-origin",
        headers: { "X-Repowire-Dashboard": KEY },
      });
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
  if (!KEY) {
    showError("This tab has no dashboard session key: run `repowire dashboard` and open its new link.");
  }
  document.getElementById("note-send").addEventListener("click", sendNote);
  document.getElementById("filter").addEventListener("input", () => {
    for (const li of document.querySelectorAll("#events li")) li.hidden = !matches(li);
  });
  try {
    const recent = await api("/v1/events?tail=200");
    for (const e of recent.events) addEvent(e);
    await Promise.all([loadPeers(), loadJobs(), loadPersonas(), loadOverview(), loadSchedules()]);
  } catch (e) {
    showError(e.message);
  }
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "1";
  follow();
}

start();
