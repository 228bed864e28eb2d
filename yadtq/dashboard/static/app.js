// yadtq dashboard: plain JavaScript, no build step. Pages render from the latest
// server-sent snapshot (/api/events) and from small JSON reads; actions POST to /api.
"use strict";

const state = { config: null, snapshot: null, history: [], page: "", arg: "", token: null, source: null };
const HISTORY = 300; // points on the rates chart (one a second)

function esc(value) {
  return String(value === null || value === undefined ? "" : value)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
function $(selector) { return document.querySelector(selector); }
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}
function since(ts) { return ts ? age(Date.now() / 1000 - ts) + " ago" : "never"; }
function clock(ts) { return ts ? new Date(ts * 1000).toLocaleString() : "–"; }
function badge(text) { return `<span class="badge ${esc(text)}">${esc(text)}</span>`; }
// First and last six: a version 7 id begins with its time (the same for hours), ends at random.
function shortId(id) { return id && id.length > 14 ? id.slice(0, 6) + "…" + id.slice(-6) : id; }
function taskLink(id) { return `<a class="mono" href="#/task/${encodeURIComponent(id)}" title="${esc(id)}">${esc(shortId(id))}</a>`; }
function num(value) { return value === null || value === undefined ? "?" : Number(value).toLocaleString(); }

function toast(message, error) {
  const box = $("#toast");
  box.textContent = message;
  box.className = "toast" + (error ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.add("hidden"), 2500);
}

async function getJSON(path) {
  const reply = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(body.error || `${reply.status} ${reply.statusText}`);
  return body;
}

function askToken() {
  const token = window.prompt("This dashboard's token (needed for actions):", state.token || "");
  if (token !== null) {
    state.token = token.trim();
    sessionStorage.setItem("yadtq-token", state.token);
  }
  return state.token;
}

async function act(path, body, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return null;
  if (state.config && state.config.token_required && !state.token && !askToken()) return null;
  const headers = { "Content-Type": "application/json", "X-Yadtq-Action": "1" };
  if (state.token) headers["X-Yadtq-Token"] = state.token;
  const reply = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    if (reply.status === 403) { state.token = null; sessionStorage.removeItem("yadtq-token"); }
    toast(data.error || `${reply.status} ${reply.statusText}`, true);
    return null;
  }
  return data;
}

// ------------------------------------------------------------------ pages

function cards(items) {
  return `<div class="cards">${items.map(([label, value, cls, id]) =>
    `<div class="card ${cls || ""}"${id ? ` id="${id}"` : ""}><div class="label">${esc(label)}</div>` +
    `<div class="value">${esc(value)}</div></div>`).join("")}</div>`;
}

function table(headers, rows, emptyText) {
  const head = headers.map((h) => `<th class="${h.endsWith("#") ? "num" : ""}">${esc(h.replace(/#$/, ""))}</th>`).join("");
  const body = rows.length ? rows.map((r) => `<tr>${r.join("")}</tr>`).join("")
    : `<tr><td class="empty" colspan="${headers.length}">${esc(emptyText)}</td></tr>`;
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
const td = (html, cls) => `<td class="${cls || ""}">${html}</td>`;

function chart() {
  const points = state.history;
  const w = 1000, h = 180, pad = 34;
  if (points.length < 2) return `<p class="muted">Collecting rates…</p>`;
  const maxDone = Math.max(1, ...points.map((p) => p.rate || 0));
  const maxQueued = Math.max(1, ...points.map((p) => p.queued || 0));
  const x = (i) => pad + (i / (HISTORY - 1)) * (w - pad - 8);
  const offset = HISTORY - points.length;
  const y = (v, max) => h - 20 - (v / max) * (h - 36);
  const done = points.map((p, i) => `${x(i + offset).toFixed(1)},${y(p.rate || 0, maxDone).toFixed(1)}`);
  const queued = points.map((p, i) => `${x(i + offset).toFixed(1)},${y(p.queued || 0, maxQueued).toFixed(1)}`);
  const area = `${x(offset).toFixed(1)},${h - 20} ${done.join(" ")} ${x(offset + points.length - 1).toFixed(1)},${h - 20}`;
  const grid = [0, 0.5, 1].map((f) => {
    const gy = y(f * maxDone, maxDone);
    return `<line class="grid" x1="${pad}" x2="${w - 8}" y1="${gy}" y2="${gy}"/>` +
      `<text class="axis" x="2" y="${gy + 4}">${(f * maxDone).toFixed(maxDone < 10 ? 1 : 0)}</text>`;
  }).join("");
  return `<svg class="chart" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${grid}` +
    `<polygon class="area-done" points="${area}"/><polyline class="line-done" points="${done.join(" ")}"/>` +
    `<polyline class="line-queued" points="${queued.join(" ")}"/>` +
    `<text class="axis" x="${pad}" y="${h - 4}">−${HISTORY}s</text><text class="axis" x="${w - 40}" y="${h - 4}">now</text></svg>`;
}

function renderQueues(s) {
  const c = s.counts;
  const rate = s.throughput === null ? "–" : `${s.throughput.toFixed(1)}/s`;
  let html = `<h1>Queues <small>${esc(s.broker)} · ${esc(s.backend)}</small></h1>`;
  html += cards([["Queued", num(c.queued), "", "card-queued"], ["Oldest queued", age(s.oldest_queued_age), ""],
    ["Processing", num(c.processing), "", "card-processing"], ["Scheduled", num(c.scheduled)],
    ["Retrying", num(c.retrying), c.retrying ? "warn" : ""], ["Dead letters", num(c.dead_lettered), c.dead_lettered ? "bad" : ""],
    ["Finished", rate, "", "card-rate"], ["Succeeded", num(s.totals.succeeded), "", "card-succeeded"],
    ["Failed", num(s.totals.failed), s.totals.failed ? "bad" : "", "card-failed"]]);
  html += `<div class="panel"><div class="panel-head"><h2>Rates</h2><div class="legend">` +
    `<span><i style="background:var(--accent)"></i>tasks finished per second</span>` +
    `<span><i style="background:var(--warn)"></i>queued</span></div></div>${chart()}</div>`;
  const rows = s.queues.map((q) => [td(`<strong>${esc(q.name)}</strong>`), td(num(q.depth), "num"),
    td(q.oldest_age === null ? "–" : age(q.oldest_age), "num"),
    td(`<button class="btn danger" data-purge-queue="${esc(q.name)}">Purge</button>`, "num")]);
  html += `<div class="panel"><h2>Queues</h2>${table(["queue", "depth#", "oldest waiting#", ""], rows, "no queues")}</div>`;
  return html;
}

function renderWorkers(s) {
  const now = s.taken;
  const running = {};
  for (const t of s.processing) (running[t.worker] = running[t.worker] || []).push(t);
  const alive = s.workers.filter((w) => w.status === "alive").length;
  let html = `<h1>Workers <small>${alive} alive of ${s.workers.length}</small></h1>`;
  const rows = s.workers.map((w) => {
    const tasks = (running[w.worker] || []).map((t) =>
      `<div>${taskLink(t.task_id)} <span class="muted">${esc(t.name || "")} · ${age(now - t.timestamp)}</span></div>`).join("");
    return [td(`<strong>${esc(w.worker)}</strong><div class="muted">${esc(w.hostname)} · pid ${esc(w.pid)}</div>`),
      td(badge(w.status) + (w.healthy ? "" : ` ${badge("unhealthy")}`)), td(since(w.last_heartbeat)),
      td(`${esc(w.pool)} ×${esc(w.concurrency)}`), td(esc((w.queues || []).join(", "))),
      td(num(w.active), "num"), td(num(w.tasks_done), "num"), td(num(w.tasks_failed), "num"),
      td(tasks || `<span class="muted">idle</span>`)];
  });
  html += `<div class="panel">${table(["worker", "status", "last heartbeat", "pool", "queues", "active#", "done#", "failed#", "running now"], rows, "no workers have reported yet")}</div>`;
  const failures = s.worker_failures.map((f) => [td(esc(f.worker)), td(`<span class="mono">${esc(f.instance)}</span>`),
    td(clock(f.last_heartbeat)), td(clock(f.detected))]);
  html += `<div class="panel"><h2>Failure history</h2>${table(["worker", "instance", "last heartbeat", "found dead"], failures, "no worker has failed")}</div>`;
  return html;
}

function taskRows(tasks, now) {
  return tasks.map((t) => [td(taskLink(t.task_id)), td(esc(t.name || "?")), td(badge(t.state)), td(esc(t.worker || "–")),
    td(t.state === "scheduled" ? `due in ${age(t.timestamp - now)}` : since(t.timestamp)),
    td(t.runtime === null || t.runtime === undefined ? "–" : `${t.runtime.toFixed(3)} s`, "num"),
    td(t.error_type ? `<span class="muted">${esc(t.error_type.replace(/^builtins\./, ""))}: ${esc(t.error_message)}</span>` : "", "wrap")]);
}

function renderTasks() {
  const states = (state.config && state.config.states) || [];
  const params = new URLSearchParams(state.arg || "");
  const q = params.get("q") || "", st = params.get("state") || "";
  return `<h1>Tasks</h1><form class="search" id="search">` +
    `<input name="q" id="search-q" placeholder="Task id, part of an id, or name" value="${esc(q)}" autocomplete="off">` +
    `<select name="state" id="search-state"><option value="">any state</option>${states.map((x) =>
      `<option ${x === st ? "selected" : ""}>${esc(x)}</option>`).join("")}</select>` +
    `<button class="btn primary" type="submit">Search</button></form>` +
    `<div class="panel" id="task-results"><p class="muted">Loading…</p></div>` +
    `<p class="muted">Searches what runs, waits and recently finished (the latest 50 successes and failures);` +
    ` a full task id opens that task whatever its age.</p>`;
}

async function refreshTaskResults() {
  const box = $("#task-results");
  if (!box) return;
  const params = new URLSearchParams(state.arg || "");
  const found = await getJSON(`/api/tasks?${params.toString()}`);
  const now = state.snapshot ? state.snapshot.taken : Date.now() / 1000;
  box.innerHTML = table(["id", "task", "state", "worker", "when", "runtime#", "error"], taskRows(found.tasks, now),
    "no task matches");
}

function renderTask(t) {
  const actions = [];
  if (!["success", "failed", "revoked"].includes(t.state)) {
    actions.push(`<button class="btn" data-revoke="${esc(t.task_id)}">Revoke</button>`);
    actions.push(`<button class="btn danger" data-terminate="${esc(t.task_id)}">Terminate</button>`);
  }
  if (t.retryable) actions.push(`<button class="btn primary" data-retry="${esc(t.task_id)}">Retry</button>`);
  let html = `<h1>${esc(t.name || "task")} ${badge(t.state)}</h1>`;
  html += `<div class="two"><div class="panel"><div class="panel-head"><h2>Task</h2><div class="actions">${actions.join("")}</div></div>` +
    `<dl class="props"><dt>id</dt><dd class="mono" id="task-id">${esc(t.task_id)}</dd><dt>queue</dt><dd>${esc(t.queue || "–")}</dd>` +
    `<dt>worker</dt><dd>${esc(t.worker || "–")}</dd><dt>retries</dt><dd>${esc(t.retries)}</dd>` +
    (t.eta ? `<dt>due</dt><dd>${clock(t.eta)}</dd>` : "");
  if (t.call) {
    const args = t.call.args.concat(Object.entries(t.call.kwargs).map(([k, v]) => `${k}=${v}`));
    if (t.call.omitted) args.push(`… ${t.call.omitted} more`);
    html += `<dt>arguments</dt><dd class="mono" id="task-args">(${esc(args.join(", "))})</dd>`;
    if (t.call.parent_id) html += `<dt>parent</dt><dd id="task-parent">${taskLink(t.call.parent_id)}</dd>`;
    if (t.call.root_id && t.call.root_id !== t.call.parent_id && t.call.root_id !== t.task_id) html += `<dt>root</dt><dd>${taskLink(t.call.root_id)}</dd>`;
  } else {
    html += `<dt>arguments</dt><dd class="muted">not kept (the task has not started yet, or its details expired)</dd>`;
  }
  if (t.children && t.children.length) {
    html += `<dt>children</dt><dd id="task-children">` + t.children.map((c) =>
      `<div>${taskLink(c.task_id)} ${esc(c.name || "")} ${c.state ? badge(c.state) : ""}</div>`).join("") + `</dd>`;
  }
  html += `</dl>`;
  if (t.state === "success") html += `<h2>Result</h2><pre id="task-result">${esc(t.result)}</pre>`;
  if (t.error) {
    html += `<h2>Error</h2><pre id="task-error">${esc(t.error.type.replace(/^builtins\./, ""))}: ${esc(t.error.message)}` +
      `${t.error.traceback ? "\n\n" + esc(t.error.traceback) : ""}</pre>`;
  }
  html += `</div><div class="panel"><h2>State history</h2><ul class="timeline">` +
    t.history.map((h) => `<li>${badge(h.state)}<span class="when">${clock(h.timestamp)}${h.worker ? " · " + esc(h.worker) : ""}</span></li>`).join("") +
    `</ul></div></div>`;
  return html;
}

function renderSchedules(s) {
  const rows = (s.schedules || []).map((p) => [td(`<strong>${esc(p.name)}</strong>`), td(clock(p.next_run)),
    td(p.paused ? badge("paused") : badge("active")),
    td(`<button class="btn" data-pause="${esc(p.name)}" data-paused="${p.paused ? "0" : "1"}">${p.paused ? "Resume" : "Pause"}</button>`, "num")]);
  return `<h1>Schedules</h1><div class="panel">${table(["schedule", "next run", "state", ""], rows,
    "no periodic schedules (define them with @app.periodic_task)")}</div>`;
}

async function renderDead() {
  const found = await getJSON("/api/dead-letters");
  if (!found.supported) return `<h1>Dead letters</h1><div class="panel"><p class="muted">${esc(found.error)}</p></div>`;
  const rows = found.dead_letters.map((d) => [td(`<span class="mono">${esc(d.id)}</span>`), td(esc(d.queue)),
    td(esc(d.task || "?")), td(d.task_id ? taskLink(d.task_id) : "?"), td(since(d.timestamp)),
    td(`<span style="color:var(--bad)">${esc(d.reason)}</span>` + (d.call ? `<div class="mono muted">(${esc(d.call.args.join(", "))})</div>` : ""), "wrap"),
    td(`<button class="btn" data-requeue="${esc(d.id)}">Requeue</button>`, "num")]);
  return `<h1>Dead letters <small>${found.dead_letters.length} shown, newest first</small></h1>` +
    `<div class="panel"><div class="panel-head"><h2>Messages no worker could run</h2><div class="actions">` +
    `<button class="btn" id="requeue-all" ${rows.length ? "" : "disabled"}>Requeue all</button>` +
    `<button class="btn danger" id="purge-dead" ${rows.length ? "" : "disabled"}>Purge all</button></div></div>` +
    table(["id", "queue", "task", "task id", "when", "reason", ""], rows, "no dead letters") + `</div>`;
}

// ------------------------------------------------------------------ routing and live updates

async function render() {
  const main = $("#main");
  const [page, ...rest] = (location.hash.replace(/^#\/?/, "") || "queues").split("/");
  const arg = decodeURIComponent(rest.join("/"));
  const changed = page !== state.page || arg !== state.arg;
  state.page = page; state.arg = arg;
  document.querySelectorAll("#nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.page === page || (page === "task" && a.dataset.page === "tasks")));
  const s = state.snapshot;
  try {
    if (page === "task") {
      main.innerHTML = renderTask(await getJSON(`/api/tasks/${encodeURIComponent(arg)}`));
    } else if (page === "tasks") {
      if (changed || !$("#task-results")) main.innerHTML = renderTasks();
      await refreshTaskResults();
    } else if (page === "dead-letters") {
      main.innerHTML = await renderDead();
    } else if (!s) {
      main.innerHTML = `<p class="muted">Waiting for the first snapshot…</p>`;
    } else if (page === "workers") {
      main.innerHTML = renderWorkers(s);
    } else if (page === "schedules") {
      main.innerHTML = renderSchedules(s);
    } else {
      main.innerHTML = renderQueues(s);
    }
  } catch (err) {
    main.innerHTML = `<h1>${esc(page)}</h1><div class="panel"><p style="color:var(--bad)">${esc(err.message)}</p></div>`;
  }
}

function live(ok, text) {
  $("#live").className = "dot " + (ok ? "live" : "down");
  $("#live-text").textContent = text;
}

function connect() {
  const source = new EventSource("/api/events");
  state.source = source;
  source.addEventListener("snapshot", (event) => {
    const s = JSON.parse(event.data);
    state.snapshot = s;
    state.history.push({ rate: s.throughput || 0, queued: s.counts.queued || 0 });
    if (state.history.length > HISTORY) state.history.shift();
    live(true, "live · " + new Date(s.taken * 1000).toLocaleTimeString());
    document.body.dataset.updated = String(s.taken);
    const deadChanged = state.dead !== s.counts.dead_lettered;
    state.dead = s.counts.dead_lettered;
    // Dead letters are read from the broker: only again when their count moved.
    if (state.page !== "dead-letters" || deadChanged) render();
  });
  source.addEventListener("failure", (event) => live(false, JSON.parse(event.data)));
  source.onerror = () => live(false, "reconnecting");
}

document.addEventListener("submit", (event) => {
  if (event.target.id !== "search") return;
  event.preventDefault();
  const q = $("#search-q").value.trim(), st = $("#search-state").value;
  if (/^[0-9a-f]{32}$/i.test(q) && !st) { location.hash = `#/task/${q}`; return; }
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (st) params.set("state", st);
  location.hash = `#/tasks/${params.toString()}`;
});

document.addEventListener("click", async (event) => {
  const b = event.target.closest("button");
  if (!b) return;
  if (b.id === "token-button") { askToken(); return; }
  let done = null;
  if (b.dataset.revoke) done = await act(`/api/tasks/${encodeURIComponent(b.dataset.revoke)}/revoke`, {});
  else if (b.dataset.terminate) done = await act(`/api/tasks/${encodeURIComponent(b.dataset.terminate)}/revoke`, { terminate: true }, "Stop this task if it is running?");
  else if (b.dataset.retry) {
    done = await act(`/api/tasks/${encodeURIComponent(b.dataset.retry)}/retry`, {});
    if (done) { toast(`retried as ${done.new_id}`); location.hash = `#/task/${done.new_id}`; return; }
  } else if (b.dataset.requeue) done = await act("/api/dead-letters/requeue", { ids: [b.dataset.requeue] });
  else if (b.id === "requeue-all") done = await act("/api/dead-letters/requeue", {}, "Requeue every dead letter?");
  else if (b.id === "purge-dead") done = await act("/api/dead-letters/purge", {}, "Drop every dead letter?");
  else if (b.dataset.purgeQueue) done = await act(`/api/queues/${encodeURIComponent(b.dataset.purgeQueue)}/purge`, {}, `Drop every task waiting in ${b.dataset.purgeQueue}?`);
  else if (b.dataset.pause) done = await act(`/api/schedules/${encodeURIComponent(b.dataset.pause)}/pause`, { paused: b.dataset.paused === "1" });
  else return;
  if (done) { toast("done"); render(); }
});

window.addEventListener("hashchange", render);

(async function start() {
  const params = new URLSearchParams(location.search);
  state.token = params.get("token") || sessionStorage.getItem("yadtq-token");
  if (params.get("token")) { sessionStorage.setItem("yadtq-token", state.token); history.replaceState(null, "", location.pathname + location.hash); }
  try { state.config = await getJSON("/api/config"); } catch (err) { state.config = { token_required: false, states: [] }; }
  $("#app-name").textContent = state.config.app || "";
  if (state.config.token_required) $("#token-button").classList.remove("hidden");
  connect();
  render();
})();
