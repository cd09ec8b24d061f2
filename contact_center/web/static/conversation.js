// The conversation of a text contact (email, SMS, web chat): its messages both ways with
// each one's delivery state, and the composer. One instance per contact; the desktop
// shows the selected contact's. Text goes in with textContent only (el() does that).
import { call, el } from "/static/api.js";

const STATUS_TEXT = {
  received: "", queued: "queued", sending: "sending…", sent: "sent", delivered: "delivered",
  read: "read", failed: "not sent", undelivered: "not delivered",
};

export class Conversation {
  constructor(contact, cannedReplies = []) {
    this.contact = contact;
    this.cannedReplies = cannedReplies;
    this.messages = new Map();
    this.unread = 0;
    this.customerTypingUntil = 0;
    this.loaded = this.load();
  }

  async load() {
    const result = await call("GET", `/api/v1/interactions/${this.contact.interaction_id}/messages`);
    for (const m of result.messages) this.messages.set(m.id, m);
  }

  // A message pushed by the server (new, or a new delivery state of one of ours).
  update(message, countUnread) {
    const known = this.messages.has(message.id);
    this.messages.set(message.id, message);
    if (!known && message.direction === "inbound" && countUnread) this.unread += 1;
    if (message.direction === "inbound") this.customerTypingUntil = 0;
  }

  async send(body, subject, quote) {
    const payload = { body };
    if (subject) payload.subject = subject;
    if (quote) payload.quote = true;
    const message = await call("POST", `/api/v1/interactions/${this.contact.interaction_id}/messages`, payload);
    this.messages.set(message.id, message);
    return message;
  }

  render(box, onSent) {
    this.unread = 0;
    const isEmail = this.contact.channel === "email";
    const list = el("ol", { class: "messages", id: "messages", "aria-live": "polite" });
    const ordered = [...this.messages.values()].sort((a, b) => a.id - b.id);
    for (const m of ordered) list.append(this.renderMessage(m));
    if (!ordered.length) list.append(el("li", { class: "muted" }, "No message yet."));
    const typing = el("p", { class: "muted typing", id: "customer-typing" },
      this.customerTypingUntil > Date.now() ? "The customer is typing…" : "");
    const lastIn = ordered.filter((m) => m.direction === "inbound").at(-1);
    const subject = isEmail
      ? el("input", { id: "reply-subject", "aria-label": "subject", maxlength: "998",
          value: lastIn && lastIn.subject ? lastIn.subject : "" })
      : null;
    const text = el("textarea", { id: "reply-body", "aria-label": "reply", placeholder: "Write to the customer", required: true });
    const error = el("p", { class: "error", id: "reply-error", role: "alert" });
    // Ready-made answers: inserted at the cursor, then edited.
    const canned = this.cannedReplies.length
      ? el("select", { id: "canned-replies", "aria-label": "canned replies" },
          el("option", { value: "" }, "Insert a canned reply…"),
          this.cannedReplies.map((r, i) => el("option", { value: String(i) }, r.title)))
      : null;
    if (canned) {
      canned.addEventListener("change", () => {
        const reply = this.cannedReplies[Number(canned.value)];
        if (reply) {
          const at = text.selectionStart ?? text.value.length;
          text.value = text.value.slice(0, at) + reply.body + text.value.slice(at);
          text.focus();
        }
        canned.value = "";
      });
    }
    // Email: the customer's last message quoted below the answer, as mail clients do.
    const quote = isEmail && lastIn
      ? el("label", { class: "muted" }, el("input", { type: "checkbox", id: "reply-quote", checked: true }),
          " Quote the customer's message")
      : null;
    const form = el("form", { id: "reply-form", class: "reply" }, subject, canned, text, quote,
      el("button", { type: "submit", class: "primary", id: "send-reply" }, "Send"), error);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.textContent = "";
      try {
        const quoting = quote ? quote.querySelector("input").checked : false;
        await this.send(text.value, subject ? subject.value : null, quoting);
        text.value = "";
        onSent();
      } catch (err) { error.textContent = err.message; }
    });
    // Enter sends a chat or SMS line; Shift+Enter is a new line. Email keeps Enter.
    if (!isEmail) {
      text.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
      });
    }
    box.replaceChildren(list, typing, form);
    list.scrollTop = list.scrollHeight;
  }

  renderMessage(m) {
    const mine = m.direction === "outbound";
    const who = mine ? "You" : (m.sender_name || m.sender || "Customer");
    const status = STATUS_TEXT[m.status] ?? m.status;
    const meta = el("div", { class: "meta" }, who, " · ", new Date(m.created_at).toLocaleTimeString(),
      status ? el("span", { class: `status status-${m.status}`, "data-status": m.status }, " · ", status) : null);
    const parts = [meta];
    if (m.subject && this.contact.channel === "email") parts.push(el("div", { class: "subject" }, m.subject));
    parts.push(el("div", { class: "body" }, m.body));
    (m.attachments || []).forEach((a, index) => {
      // Kept here: a download link; at the provider (MMS) or dropped: said so.
      const local = a.ref && !a.ref.includes("://");
      const name = local
        ? el("a", { href: `/api/v1/interactions/${m.interaction_id}/messages/${m.id}/attachments/${index}`, download: a.filename }, a.filename)
        : a.filename;
      parts.push(el("div", { class: "attachment muted" }, "📎 ", name, ` (${a.size} bytes)`, a.dropped ? ` – ${a.dropped}` : ""));
    });
    if (m.error && m.status !== "sent") parts.push(el("div", { class: "error message-error" }, m.error));
    return el("li", { class: `message ${mine ? "out" : "in"}`, "data-message": m.id }, ...parts);
  }
}
