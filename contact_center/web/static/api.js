// Shared by the pages: JSON calls with the CSRF token, and a self-reconnecting socket.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, id, message) { super(message); this.status = status; this.id = id; }
}

export async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !path.startsWith("/api/v1/auth/login")) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    throw new ApiError(401, "auth.required", "log in first");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new ApiError(response.status, error.id || "http", error.message || response.statusText);
  }
  return data;
}

export async function whoAmI() {
  const me = await call("GET", "/api/v1/auth/me");
  csrfToken = me.csrf_token;
  return me.user;
}

export function setCsrf(token) { csrfToken = token; }

// Text only: everything shown comes from customers and callers, so never innerHTML it.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

// A WebSocket that reconnects with capped back-off and reports its state.
export class LiveSocket {
  constructor(path, { onMessage, onState }) {
    this.path = path; this.onMessage = onMessage; this.onState = onState;
    this.delay = 500; this.nextId = 1; this.pending = new Map(); this.ws = null;
    this.connect();
  }
  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}`);
    this.ws = ws;
    ws.onopen = () => { this.delay = 500; this.onState(true); };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "reply" && this.pending.has(message.ref)) {
        const { resolve, reject } = this.pending.get(message.ref);
        this.pending.delete(message.ref);
        if (message.ok) resolve(message.result);
        else reject(new ApiError(message.error.status || 0, message.error.id, message.error.message));
        return;
      }
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      this.onState(false);
      for (const { reject } of this.pending.values()) reject(new ApiError(0, "ws.closed", "disconnected"));
      this.pending.clear();
      if (event.code === 4001) { location.href = "/login"; return; }
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }
  request(type, fields = {}) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new ApiError(0, "ws.closed", "disconnected")); return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type, id, ...fields }));
    });
  }
}
