// The agent desktop: status, offers with a countdown, the screen pop, call controls,
// wrap-up, and the agent's service requests. Messages: see the README's WebSocket section.
import { call, whoAmI, el, duration, LiveSocket, ApiError } from "/static/api.js";
import { Conversation } from "/static/conversation.js";

const $ = (id) => document.getElementById(id);
const state = {
  me: null, settings: null, agent: null, offers: new Map(), pop: null,
  // Every contact the agent has at once (a call, chats, emails), by interaction id, and
  // the one shown; text contacts have their conversation.
  contacts: new Map(), selected: null, conversations: new Map(),
  stateSince: Date.now() / 1000, wrapUpUntil: null, clockSkew: 0,
};
let socket = null;

function now() { return Date.now() / 1000 + state.clockSkew; }
function current() { return state.contacts.get(state.selected) || null; }

async function start() {
  state.me = await whoAmI();
  state.settings = await call("GET", "/api/v1/settings");
  $("agent-name").textContent = state.me.display_name;
  const select = $("status-select");
  for (const reason of state.settings.reason_codes) {
    select.append(el("option", { value: "not_ready:" + reason }, "Not ready: " + reason));
  }
  for (const d of state.settings.dispositions) $("disposition").append(el("option", { value: d }, d));
  select.addEventListener("change", onStatusChange);
  $("logout").addEventListener("click", logout);
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("dial-form").addEventListener("submit", (e) => { e.preventDefault(); dial($("dial-number").value); });
  $("wrap-up-form").addEventListener("submit", (e) => { e.preventDefault(); saveWrapUp(); });
  $("hold").addEventListener("click", () => callAction("hold"));
  $("unhold").addEventListener("click", () => callAction("unhold"));
  $("hangup").addEventListener("click", () => callAction("hangup"));
  $("transfer").addEventListener("click", () => callAction("transfer", $("transfer-target").value));
  socket = new LiveSocket("/ws/agent", { onMessage, onState: showConnection });
  setInterval(tick, 250);
  loadMyRequests();
}

function showConnection(up) {
  const badge = $("connection");
  badge.textContent = up ? "connected" : "disconnected: reconnecting…";
  badge.className = "conn " + (up ? "up" : "down");
}

function onMessage(message) {
  switch (message.type) {
    case "hello": state.clockSkew = message.server_time - Date.now() / 1000; break;
    case "agent_state": showAgentState(message); break;
    case "offer": addOffer(message); break;
    case "offer_ended": removeOffer(message.offer_id); break;
    case "contact": showContact(message); break;
    case "service_requests_changed": loadMyRequests(); break;
    case "message": case "message_status": onConversationMessage(message); break;
    case "customer_typing": onCustomerTyping(message.interaction_id); break;
  }
}

function showAgentState(agent) {
  state.agent = agent;
  state.stateSince = agent.since;
  state.wrapUpUntil = agent.wrap_up_until || null;
  const value = agent.status === "not_ready" ? "not_ready:" + (agent.reason || "") : agent.status;
  const select = $("status-select");
  if (![...select.options].some((o) => o.value === value)) {
    select.append(el("option", { value }, "Not ready: " + agent.reason));
  }
  select.value = value;
  const activity = $("activity");
  activity.textContent = agent.activity.replace("_", " ");
  activity.dataset.activity = agent.activity;
  // Why some contacts never come: no device for a channel that rings one.
  const missing = agent.no_device_for || [];
  const note = $("no-device");
  note.textContent = missing.length ? `No phone device: no ${missing.join(", ")} contacts are offered to you (ask an admin).` : "";
  note.classList.toggle("hidden", !missing.length);
}

async function onStatusChange() {
  const [status, reason] = $("status-select").value.split(":");
  try { await socket.request("set_status", { status, reason: reason || null }); }
  catch (e) { alert(e.message); }
}

function addOffer(offer) {
  state.offers.set(offer.offer_id, offer);
  renderOffers();
  if (offer.pop) showPop(offer.pop, offer);
}

function removeOffer(offerId) {
  state.offers.delete(offerId);
  renderOffers();
}

function renderOffers() {
  const box = $("offers");
  box.replaceChildren();
  if (!state.offers.size) { box.append(el("p", { class: "muted", id: "no-offers" }, "No offer right now.")); return; }
  for (const offer of state.offers.values()) {
    const why = offer.explanation || {};
    box.append(el("div", { class: "offer", "data-offer": offer.offer_id },
      el("strong", {}, `${offer.channel} · ${offer.queue}`), " ",
      el("span", { class: "offer-from" }, who(offer)), " ",
      el("span", { class: "countdown", "data-expires": offer.expires_at }, ""),
      el("div", { class: "muted why" }, explain(why)),
      el("button", { class: "primary accept", onclick: () => respond("accept_offer", offer) }, "Accept"), " ",
      el("button", { class: "reject", onclick: () => respond("reject_offer", offer) }, "Reject")));
  }
}

// "Zhang Wei <+4477...>", or the address alone when no name came with it.
function who(contact) {
  // A chat's address is its visitor's id, which means nothing to a person.
  if (contact.channel === "chat") return contact.address_name || "web visitor";
  const address = contact.address || "";
  return contact.address_name ? `${contact.address_name} <${address}>` : address;
}

function explain(why) {
  if (!why || !why.queue) return "";
  const skills = Object.entries(why.skills_matched || {}).map(([s, l]) => `${s} ${l}`).join(", ");
  return `Queue ${why.queue}, step ${why.step ?? 0}; skills ${skills || "none required"}; ` +
    `waited ${duration(why.wait_seconds || 0)}; you were idle ${duration(why.agent_idle_seconds || 0)}; ` +
    `priority ${why.priority ?? 0}`;
}

async function respond(type, offer) {
  try { await socket.request(type, { offer_id: offer.offer_id }); removeOffer(offer.offer_id); }
  catch (e) { alert(e.message); }
}

function showContact(contact) {
  const id = contact.interaction_id;
  if (contact.state === "closed") {
    state.contacts.delete(id);
    state.conversations.delete(id);
    if (state.selected === id) state.selected = state.contacts.size ? [...state.contacts.keys()].at(-1) : null;
  } else {
    const isNew = !state.contacts.has(id);
    state.contacts.set(id, contact);
    if (isNew || state.selected === null) state.selected = id;
    if ((contact.actions || []).includes("reply") && !state.conversations.has(id)) {
      const conversation = new Conversation(contact, state.settings.canned_replies || []);
      state.conversations.set(id, conversation);
      conversation.loaded.then(() => { if (state.selected === id) renderContact(); }).catch(() => null);
    }
  }
  renderContact();
}

function select(id) {
  state.selected = id;
  renderContact();
  const contact = current();
  if (contact && contact.customer_id) refreshPop(contact.customer_id).catch(() => null);
}

function renderTabs() {
  const tabs = $("contact-tabs");
  tabs.replaceChildren();
  tabs.classList.toggle("hidden", state.contacts.size < 2);
  for (const [id, c] of state.contacts) {
    const unread = state.conversations.get(id)?.unread || 0;
    tabs.append(el("button", { role: "tab", "aria-selected": String(id === state.selected), "data-tab": id,
      onclick: () => select(id) }, `${c.channel} · ${who(c)}`,
      unread ? el("span", { class: "unread" }, String(unread)) : null));
  }
}

function renderContact() {
  renderTabs();
  const contact = current();
  const box = $("contact");
  box.replaceChildren();
  const controls = $("call-controls");
  const talk = $("conversation");
  if (!contact) {
    box.append(el("p", { class: "muted" }, "No contact."));
    controls.classList.add("hidden"); talk.classList.add("hidden"); $("wrap-up-card").classList.add("hidden");
    return;
  }
  box.append(el("p", { id: "contact-state", "data-state": contact.state },
    `${contact.channel} · ${who(contact)} · ${contact.state}`));
  if (contact.pick_up) {
    // Accepted here; this phone cannot be answered from the desktop.
    box.append(el("p", { id: "pick-up", class: "notice" }, "Accepted: pick up your phone to answer."));
  }
  // Only what the contact's channel declares it can do.
  const can = new Set(contact.actions || []);
  const live = ["talking", "held"].includes(contact.state) && can.size > 0;
  controls.classList.toggle("hidden", !live);
  $("hold").classList.toggle("hidden", !can.has("hold") || contact.state === "held");
  $("unhold").classList.toggle("hidden", !can.has("hold") || contact.state !== "held");
  $("hangup").classList.toggle("hidden", !can.has("hangup"));
  $("hangup").textContent = can.has("reply") ? "Close" : "Hang up";
  for (const id of ["transfer", "transfer-target"]) $(id).classList.toggle("hidden", !can.has("transfer"));
  const conversation = state.conversations.get(contact.interaction_id);
  talk.classList.toggle("hidden", !conversation);
  if (conversation) conversation.render(talk, () => renderContact());
  const wrapping = ["ended", "wrap_up"].includes(contact.state);
  $("wrap-up-card").classList.toggle("hidden", !wrapping);
}

function onConversationMessage(message) {
  const conversation = state.conversations.get(message.interaction_id);
  if (!conversation) return;
  conversation.update(message.message, state.selected !== message.interaction_id);
  if (state.selected === message.interaction_id) {
    // Keep what the agent is typing: re-render only the list when the composer has text.
    const draft = $("reply-body") ? $("reply-body").value : "";
    renderContact();
    if (draft && $("reply-body")) $("reply-body").value = draft;
  } else renderTabs();
}

function onCustomerTyping(interactionId) {
  const conversation = state.conversations.get(interactionId);
  if (!conversation) return;
  conversation.customerTypingUntil = Date.now() + 4000;
  if (state.selected === interactionId && $("customer-typing")) $("customer-typing").textContent = "The customer is typing…";
}

async function callAction(action, target) {
  const contact = current();
  if (!contact) return;
  try { await socket.request("call_action", { interaction_id: contact.interaction_id, action, target: target || null }); }
  catch (e) { alert(e.message); }
}

async function dial(number) {
  $("dial-error").textContent = "";
  try { await socket.request("dial", { number }); }
  catch (e) { $("dial-error").textContent = e.message; }
}

async function saveWrapUp() {
  const contact = current();
  if (!contact) return;
  const id = contact.interaction_id;
  $("wrap-up-error").textContent = "";
  try {
    const body = { disposition: $("disposition").value, notes: $("wrap-up-notes").value || null };
    if (state.pop && state.pop.customer) body.customer_id = state.pop.customer.id;
    await call("POST", `/api/v1/interactions/${id}/wrap-up`, body);
    if ($("create-sr").checked && state.pop && state.pop.customer) {
      await call("POST", "/api/v1/service-requests", {
        customer_id: state.pop.customer.id, title: $("sr-title").value || "Follow-up", interaction_id: id,
      });
    }
    await socket.request("finish_wrap_up", { interaction_id: id }).catch(() => null);
    $("wrap-up-notes").value = ""; $("create-sr").checked = false; $("sr-title").value = "";
    $("wrap-up-card").classList.add("hidden");
    if (state.pop && state.pop.customer) refreshPop(state.pop.customer.id);
    loadMyRequests();
  } catch (e) { $("wrap-up-error").textContent = e.message; }
}

async function refreshPop(customerId) {
  const pop = await call("GET", `/api/v1/screen-pop?customer_id=${customerId}`);
  showPop(pop, state.popContext);
}

function showPop(pop, context) {
  state.pop = pop; state.popContext = context || null;
  const box = $("pop");
  box.replaceChildren();
  const ivr = context && context.ivr;
  if (!pop.customer) {
    const named = context && context.address_name ? ` (${context.address_name})` : "";
    // A chat visitor's address is the chat's own id: nothing to show or keep.
    const chat = pop.looked_up_by === "chat";
    const number = context && !chat ? context.address : "";
    const who = { email: "sender", chat: "visitor" }[pop.looked_up_by] || "caller";
    box.append(el("p", { id: "pop-unknown" }, `Unknown ${who} ${number || ""}${named}`),
      createCustomerForm(number, chat ? "email" : pop.looked_up_by, context ? context.address_name : ""),
      el("p", { class: "muted" }, "Or find an existing customer on the right and link them."));
  } else {
    const c = pop.customer;
    box.append(...[
      el("h3", { id: "pop-name" }, c.name, " ", el("span", { class: `badge tier-${c.tier}`, id: "pop-tier" }, c.tier)),
      el("p", {}, [c.company, c.language, c.segment].filter(Boolean).join(" · ")),
      el("p", { id: "pop-contacts" }, pop.contact_points.map((p) =>
        el("span", {}, p.kind === "phone"
          ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); dial(p.value); } }, p.value)
          : p.value, " "))),
      c.notes ? el("p", { id: "pop-notes" }, "Notes: ", c.notes) : null].filter(Boolean));
    showOptOuts(c.id);
  }
  if (ivr && (ivr.path?.length || Object.keys(ivr.inputs || {}).length)) {
    box.append(el("p", { id: "pop-ivr" }, "IVR: ", (ivr.path || []).join(" → "), " ",
      Object.entries(ivr.inputs || {}).map(([k, v]) => `${k}=${v}`).join(", ")));
  }
  if (context && context.explanation) box.append(el("p", { class: "muted", id: "pop-why" }, "Why you: ", explain(context.explanation)));
  if (pop.open_requests.length) {
    box.append(el("h4", {}, "Open service requests"),
      el("ul", { id: "pop-requests" }, pop.open_requests.map((r) => el("li", {}, `#${r.id} ${r.title} (${r.status})`))));
  }
  box.append(el("h4", {}, "History"), el("table", { id: "pop-timeline" }, el("tbody", {}, pop.interactions.map((i) =>
    el("tr", {}, el("td", {}, new Date(i.started_at).toLocaleString()), el("td", {}, i.channel),
      el("td", {}, i.disposition || ""), el("td", {}, i.notes || "")))))); 
}

// Numbers that texted STOP: marked on the pop (the daemon refuses to text them).
async function showOptOuts(customerId) {
  const record = await call("GET", `/api/v1/customers/${customerId}`).catch(() => null);
  const stopped = record && record.opted_out ? record.opted_out.sms : [];
  if (!stopped.length || !state.pop || !state.pop.customer || state.pop.customer.id !== customerId) return;
  $("pop-contacts").append(el("span", { class: "notice", id: "pop-opted-out" }, `SMS opted out: ${stopped.join(", ")}`));
}

function createCustomerForm(address, kind, suggestedName) {
  const name = el("input", { placeholder: "Name", id: "new-customer-name", required: true, value: suggestedName || "" });
  const contact = el("input", { value: address || "", id: "new-customer-contact",
    placeholder: kind === "email" ? "email" : "phone", "aria-label": kind === "email" ? "email" : "phone" });
  const error = el("p", { class: "error" });
  return el("form", { id: "create-customer", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const body = { name: name.value };
      body[kind === "email" ? "emails" : "phones"] = contact.value ? [contact.value] : [];
      const customer = await call("POST", "/api/v1/customers", body);
      await linkCustomer(customer.id);
    } catch (err) { error.textContent = err.message; }
  } }, name, " ", contact, " ", el("button", { type: "submit", class: "primary" }, "Create customer"), error);
}

async function linkCustomer(customerId) {
  const contact = current();
  if (contact) {
    await socket.request("link_customer", { interaction_id: contact.interaction_id, customer_id: customerId }).catch(() => null);
  }
  await refreshPop(customerId);
}

async function search() {
  const rows = $("search-results");
  rows.replaceChildren();
  const result = await call("GET", "/api/v1/customers?q=" + encodeURIComponent($("search-q").value));
  for (const c of result.customers) {
    rows.append(el("tr", {}, el("td", {}, c.name), el("td", {}, c.company || ""),
      el("td", {}, c.contact_points.map((p) => p.value).join(", ")),
      el("td", {}, el("button", { onclick: () => linkCustomer(c.id) }, current() ? "Link" : "Open"))));
  }
  if (!result.customers.length) rows.append(el("tr", {}, el("td", { class: "muted" }, "Nobody found.")));
}

async function loadMyRequests() {
  const rows = $("my-requests");
  const result = await call("GET", "/api/v1/service-requests?mine=1&status=assigned,in_progress,feedback");
  rows.replaceChildren();
  for (const r of result.service_requests) {
    const next = { assigned: ["start", "Start"], in_progress: ["request-feedback", "Ask feedback"] }[r.status];
    rows.append(el("tr", { "data-sr": r.id }, el("td", {}, `#${r.id}`), el("td", {}, r.title),
      el("td", { class: "sr-status" }, r.status),
      el("td", {}, next ? el("button", { onclick: async () => {
        try { await call("POST", `/api/v1/service-requests/${r.id}/${next[0]}`, next[0] === "start" ? undefined : {}); loadMyRequests(); }
        catch (e) { alert(e.message); }
      } }, next[1]) : "")));
  }
  if (!result.service_requests.length) rows.append(el("tr", {}, el("td", { class: "muted" }, "None assigned to you.")));
}

async function logout() {
  await call("POST", "/api/v1/auth/logout").catch(() => null);
  location.href = "/login";
}

function tick() {
  $("time-in-state").textContent = duration(now() - state.stateSince);
  const countdown = $("wrap-up-countdown");
  if (state.wrapUpUntil && state.agent && state.agent.activity === "wrap_up") {
    countdown.classList.remove("hidden");
    countdown.textContent = "wrap-up " + duration(state.wrapUpUntil - now());
  } else countdown.classList.add("hidden");
  for (const span of document.querySelectorAll(".countdown[data-expires]")) {
    span.textContent = duration(Number(span.dataset.expires) - now()) + " left";
  }
}

start().catch((e) => { if (!(e instanceof ApiError && e.status === 401)) document.body.prepend(el("p", { class: "error" }, String(e.message || e))); });
