// The supervisor wallboard: queue tiles, the agents board, actions, and an hour of history.
import { call, whoAmI, el, duration, LiveSocket } from "/static/api.js";

const $ = (id) => document.getElementById(id);
const history = new Map();  // queue -> [{t, waiting, service_level}]
let socket = null, agents = [], queues = [], skew = 0, users = [];

async function start() {
  const me = await whoAmI();
  $("supervisor-name").textContent = me.display_name;
  $("logout").addEventListener("click", async () => { await call("POST", "/api/v1/auth/logout").catch(() => null); location.href = "/login"; });
  socket = new LiveSocket("/ws/supervisor", { onMessage, onState: (up) => {
    const badge = $("connection");
    badge.textContent = up ? "live" : "disconnected: reconnecting…";
    badge.className = "conn " + (up ? "up" : "down");
  } });
  setInterval(renderAgents, 1000);
  setupSimulator();
  loadRequests();
  setInterval(loadRequests, 15000);
}

function onMessage(message) {
  if (message.type === "hello") skew = message.server_time - Date.now() / 1000;
  if (message.type === "queues") { queues = message.queues; record(message); renderQueues(); }
  if (message.type === "agents") { agents = message.agents; renderAgents(); }
  if (message.type === "history") { for (const [q, points] of Object.entries(message.queues)) history.set(q, points); renderQueues(); }
}

function record(message) {
  const t = message.at || Date.now() / 1000;
  for (const q of message.queues) {
    const points = history.get(q.name) || [];
    points.push({ t, waiting: q.waiting, service_level: q.service_level });
    while (points.length && points[0].t < t - 3600) points.shift();
    history.set(q.name, points);
  }
}

function renderQueues() {
  const box = $("queues");
  box.replaceChildren();
  for (const q of queues) {
    const ratio = q.sla_seconds ? q.longest_wait_seconds / q.sla_seconds : 0;
    const level = ratio >= 1 ? "red" : ratio >= 0.5 ? "amber" : "";
    const canvas = el("canvas", { class: "chart", width: 300, height: 60 });
    const sl = q.service_level === null || q.service_level === undefined ? "–" : Math.round(q.service_level * 100) + "%";
    box.append(el("div", { class: `tile ${level}`, "data-queue": q.name },
      el("strong", {}, q.name),
      el("div", { class: "big", "data-field": "waiting" }, q.waiting), el("span", { class: "muted" }, "waiting"),
      el("dl", {},
        el("dt", {}, "Longest wait"), el("dd", { "data-field": "longest_wait" }, duration(q.longest_wait_seconds)),
        el("dt", {}, "Service level"), el("dd", { "data-field": "service_level" }, sl),
        el("dt", {}, "ASA"), el("dd", {}, q.asa_seconds === null ? "–" : duration(q.asa_seconds)),
        el("dt", {}, "Abandoned"), el("dd", { "data-field": "abandoned" }, q.abandoned),
        el("dt", {}, "Agents ready / busy / not ready"),
        el("dd", { "data-field": "agents" }, `${q.agents_ready} / ${q.agents_busy} / ${q.agents_not_ready}`)),
      canvas));
    draw(canvas, history.get(q.name) || []);
  }
}

function draw(canvas, points) {
  const g = canvas.getContext("2d"); if (!g || points.length < 2) return;
  const w = canvas.width, h = canvas.height, t0 = points[0].t, span = Math.max(1, points.at(-1).t - t0);
  const maxW = Math.max(1, ...points.map((p) => p.waiting));
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#1f6feb"; g.beginPath();
  points.forEach((p, i) => { const x = ((p.t - t0) / span) * w, y = h - (p.waiting / maxW) * (h - 4) - 2; i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
  g.strokeStyle = "#1b7f3b"; g.beginPath();
  points.forEach((p, i) => { const x = ((p.t - t0) / span) * w, y = h - (p.service_level ?? 0) * (h - 4) - 2; i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
}

function renderAgents() {
  const rows = $("agents");
  rows.replaceChildren();
  const now = Date.now() / 1000 + skew;
  for (const a of agents) {
    rows.append(el("tr", { "data-agent": a.username },
      el("td", {}, a.display_name || a.username),
      el("td", { "data-field": "status" }, a.status),
      el("td", { "data-field": "activity" }, a.activity +
        ((a.no_device_for || []).length ? ` (no device: no ${a.no_device_for.join(", ")})` : "")),
      el("td", {}, duration(now - a.since)),
      el("td", {}, a.contact ? `${a.contact.channel} ${a.contact.address || ""}` : ""),
      el("td", {}, a.contact ? a.contact.queue || "" : ""),
      el("td", {}, a.reason || ""),
      el("td", {},
        el("button", { class: "set-not-ready", onclick: () => act("set_agent_status", { user_id: a.user_id, status: "not_ready", reason: "supervisor" }) }, "Not ready"), " ",
        el("button", { onclick: () => act("set_agent_status", { user_id: a.user_id, status: "offline" }) }, "Log out"), " ",
        ...["listen", "whisper", "barge"].map((mode) => el("button", { disabled: !a.contact || a.contact.channel !== "voice" ? "disabled" : null,
          onclick: () => act("spy", { user_id: a.user_id, mode }) }, mode)))));
  }
}

async function setupSimulator() {
  const settings = await call("GET", "/api/v1/settings");
  if (!settings.pbx_mode.startsWith("simulated")) return;
  $("simulator").classList.remove("hidden");
  // First choice: the caller goes through the IVR, pressing the keys typed beside it.
  $("sim-queue").append(el("option", { value: "" }, "through the IVR"));
  for (const q of settings.queues.filter((q) => q.channels.includes("voice"))) {
    $("sim-queue").append(el("option", { value: q.name }, q.name));
  }
  $("sim-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sim-error").textContent = "";
    const queue = $("sim-queue").value;
    const parts = $("sim-inputs").value.split(",").map((s) => s.trim()).filter(Boolean);
    const inputs = {};
    for (const pair of parts) {
      const [key, ...rest] = pair.split("=");
      inputs[key.trim()] = rest.join("=").trim();
    }
    const body = queue
      ? { caller: $("sim-caller").value, queue,
          ivr_path: Object.keys(inputs).length ? ["welcome", "collect"] : ["welcome"], ivr_inputs: inputs }
      : { caller: $("sim-caller").value, keys: parts };
    try {
      const placed = await call("POST", "/api/v1/simulator/calls", body);
      const where = queue || `IVR: ${placed.ivr_outcome}`;
      const row = el("tr", { "data-call": placed.interaction_id }, el("td", {}, `#${placed.interaction_id}`),
        el("td", {}, $("sim-caller").value), el("td", {}, where),
        el("td", {}, el("button", { onclick: async () => {
          await call("POST", `/api/v1/simulator/calls/${placed.interaction_id}/hangup`).catch((e) => { $("sim-error").textContent = e.message; });
          row.remove();
        } }, "Caller hangs up")));
      $("sim-calls").append(row);
    } catch (e) { $("sim-error").textContent = e.message; }
  });
}

async function act(type, fields) {
  $("action-error").textContent = "";
  try { await socket.request(type, fields); } catch (e) { $("action-error").textContent = e.message; }
}

async function loadRequests() {
  const rows = $("requests");
  const [result, people] = await Promise.all([
    call("GET", "/api/v1/service-requests?status=new,assigned"),
    users.length ? Promise.resolve({ agents: users }) : call("GET", "/api/v1/agents").catch(() => ({ agents: [] })),
  ]);
  users = people.agents || [];
  rows.replaceChildren();
  for (const r of result.service_requests) {
    const pick = el("select", {}, users.map((u) => el("option", { value: u.username }, u.display_name || u.username)));
    rows.append(el("tr", { "data-sr": r.id }, el("td", {}, `#${r.id}`), el("td", {}, r.title), el("td", {}, r.status),
      el("td", {}, r.csat ? `CSAT ${r.csat}` : ""),
      el("td", {}, pick, " ", el("button", { onclick: async () => {
        try { await call("POST", `/api/v1/service-requests/${r.id}/assign`, { assignee: pick.value }); loadRequests(); }
        catch (e) { $("action-error").textContent = e.message; }
      } }, "Assign"))));
  }
}

start();
