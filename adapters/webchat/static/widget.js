// The web chat widget: one tag embeds it on any page,
//   <script src="https://<daemon>/chat/widget.js" async data-lang="zh-CN"></script>
// A classic script, not a module: a module has no document.currentScript (we connect to
// the origin the script came from) and would need CORS to load from another origin.
// Everything is built with DOM calls and shown with textContent (never innerHTML): text
// comes from visitors and agents. No inline style either: the page's CSP forbids it.
// Protocol: see adapters/webchat/__init__.py.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__ccChatLoaded) return;
  window.__ccChatLoaded = true;

  const base = new URL(script.src, location.href);
  const socketUrl = (base.protocol === "https:" ? "wss:" : "ws:") + "//" + base.host + "/ws/chat";
  const STORE_KEY = "cc-chat-token:" + base.origin;

  // All strings, per language. {name} and {n} are filled in.
  const STRINGS = {
    en: {
      launcher: "Chat with us",
      title: "Chat with us",
      minimize: "Minimize chat",
      intro: "Tell us who you are and what it is about; an agent will be with you shortly.",
      name: "Your name",
      email: "Email (optional)",
      topic: "Topic",
      start: "Start chat",
      waiting: "Waiting for an agent…",
      agentJoined: "{name} joined the chat",
      typing: "{name} is typing…",
      agent: "Agent",
      you: "You",
      messages: "Messages",
      placeholder: "Type a message…",
      messageLabel: "Your message",
      send: "Send",
      end: "End chat",
      rateTitle: "How was your chat?",
      star: "{n} of 5 stars",
      transcript: "Email me the transcript",
      submitEnd: "End chat",
      cancel: "Back to the chat",
      endedByAgent: "The agent ended the chat.",
      endedByVisitor: "You ended the chat.",
      thanks: "Thank you! The chat has ended.",
      newChat: "Start a new chat",
      reconnecting: "Connection lost: reconnecting…",
      offline: "The chat cannot be reached right now; try again later.",
      failed: "Not sent",
      "chat.rate_limited": "You are sending messages too fast; wait a moment.",
      "message.too_long": "That message is too long.",
      "message.empty": "The message is empty.",
      "chat.too_many": "Too many chats are open from your network.",
      "chat.busy": "The chat is busy right now; try again later.",
      "chat.unknown": "Your earlier chat has ended.",
      "chat.ended": "This chat has ended.",
      "chat.unavailable": "Your message could not be sent; try again.",
      "form.invalid": "Check the form: {message}",
      error: "Something went wrong: {message}",
    },
    "zh-CN": {
      launcher: "在线咨询",
      title: "在线咨询",
      minimize: "最小化聊天窗口",
      intro: "请留下您的姓名和咨询内容，客服将尽快为您服务。",
      name: "您的姓名",
      email: "电子邮箱（选填）",
      topic: "咨询主题",
      start: "开始对话",
      waiting: "正在等待客服…",
      agentJoined: "{name} 已加入对话",
      typing: "{name} 正在输入…",
      agent: "客服",
      you: "我",
      messages: "消息",
      placeholder: "输入消息…",
      messageLabel: "您的消息",
      send: "发送",
      end: "结束对话",
      rateTitle: "您对本次服务满意吗？",
      star: "{n} 星（满分 5 星）",
      transcript: "将对话记录发送到我的邮箱",
      submitEnd: "结束对话",
      cancel: "返回对话",
      endedByAgent: "客服已结束对话。",
      endedByVisitor: "您已结束对话。",
      thanks: "感谢您的反馈！对话已结束。",
      newChat: "开始新的对话",
      reconnecting: "连接已断开，正在重新连接…",
      offline: "暂时无法连接在线咨询，请稍后再试。",
      failed: "未发送",
      "chat.rate_limited": "您发送消息过快，请稍候。",
      "message.too_long": "消息过长。",
      "message.empty": "消息不能为空。",
      "chat.too_many": "您的网络已打开过多对话。",
      "chat.busy": "当前咨询繁忙，请稍后再试。",
      "chat.unknown": "您之前的对话已结束。",
      "chat.ended": "对话已结束。",
      "chat.unavailable": "消息发送失败，请重试。",
      "form.invalid": "请检查表单：{message}",
      error: "出错了：{message}",
    },
  };

  function pickLanguage(wanted) {
    const tag = String(wanted || "").toLowerCase();
    return tag.startsWith("zh") ? "zh-CN" : "en";
  }
  const lang = pickLanguage(script.dataset.lang || navigator.language);
  const strings = STRINGS[lang];
  function t(key, fill = {}) {
    let text = strings[key] ?? STRINGS.en[key] ?? key;
    for (const [name, value] of Object.entries(fill)) text = text.split("{" + name + "}").join(String(value));
    return text;
  }

  // Text only: attributes and text nodes, never markup.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // crypto.randomUUID needs a secure context; the host page may be plain http.
  function uuid() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  const storage = {
    get() { try { return localStorage.getItem(STORE_KEY); } catch { return null; } },
    set(token) { try { localStorage.setItem(STORE_KEY, token); } catch { /* storage blocked */ } },
    clear() { try { localStorage.removeItem(STORE_KEY); } catch { /* storage blocked */ } },
  };

  // --- the DOM (in a shadow root: the host page's styles stay out, ours stay in) ---

  const host = el("div", { class: "cc-chat-host" });
  const root = host.attachShadow({ mode: "open" });
  root.append(el("link", { rel: "stylesheet", href: new URL("/chat/widget.css", base).href }));

  const ids = { title: "cc-chat-title", name: "cc-chat-name", email: "cc-chat-email", topic: "cc-chat-topic", text: "cc-chat-text" };
  const launcher = el("button", { type: "button", class: "cc-launcher", "aria-expanded": "false", "aria-controls": "cc-chat-panel" }, t("launcher"));
  const minimize = el("button", { type: "button", class: "cc-minimize", "aria-label": t("minimize") }, "–");
  const agentName = el("p", { class: "cc-agent", hidden: true });
  const status = el("p", { class: "cc-status", role: "status", hidden: true });
  const notice = el("p", { class: "cc-alert", role: "alert", hidden: true });

  const nameInput = el("input", { id: ids.name, name: "name", autocomplete: "name", required: true, maxlength: "100" });
  const emailInput = el("input", { id: ids.email, name: "email", type: "email", autocomplete: "email", maxlength: "254" });
  const topicSelect = el("select", { id: ids.topic, name: "topic" });
  const topicRow = el("div", { class: "cc-row", hidden: true }, el("label", { for: ids.topic }, t("topic")), topicSelect);
  const startForm = el("form", { class: "cc-prechat" },
    el("p", { class: "cc-intro" }, t("intro")),
    el("div", { class: "cc-row" }, el("label", { for: ids.name }, t("name")), nameInput),
    el("div", { class: "cc-row" }, el("label", { for: ids.email }, t("email")), emailInput),
    topicRow,
    el("button", { type: "submit", class: "cc-primary" }, t("start")));

  const log = el("ol", { class: "cc-log", role: "log", "aria-live": "polite", "aria-label": t("messages") });
  const typing = el("p", { class: "cc-typing", "aria-live": "polite" });
  const textInput = el("textarea", { id: ids.text, name: "text", rows: "2", placeholder: t("placeholder"), maxlength: "4000" });
  const composer = el("form", { class: "cc-composer" },
    el("label", { for: ids.text, class: "cc-visually-hidden" }, t("messageLabel")), textInput,
    el("button", { type: "submit", class: "cc-primary" }, t("send")));
  const endButton = el("button", { type: "button", class: "cc-end" }, t("end"));

  const stars = [1, 2, 3, 4, 5].map((n) => {
    const input = el("input", { type: "radio", name: "csat", value: String(n), id: "cc-star-" + n, class: "cc-visually-hidden" });
    const label = el("label", { for: "cc-star-" + n, class: "cc-star", title: t("star", { n }) },
      el("span", { "aria-hidden": "true" }, "★"), el("span", { class: "cc-visually-hidden" }, t("star", { n })));
    return { input, label };
  });
  const transcriptBox = el("input", { type: "checkbox", id: "cc-transcript", name: "transcript" });
  const transcriptRow = el("div", { class: "cc-check" }, transcriptBox, el("label", { for: "cc-transcript" }, t("transcript")));
  const endedNote = el("p", { class: "cc-ended-note", hidden: true });
  const cancelEnd = el("button", { type: "button", class: "cc-secondary" }, t("cancel"));
  const endForm = el("form", { class: "cc-rating", hidden: true },
    endedNote,
    el("fieldset", { class: "cc-stars" }, el("legend", {}, t("rateTitle")), stars.map((s) => [s.input, s.label])),
    transcriptRow,
    el("div", { class: "cc-actions" }, cancelEnd, el("button", { type: "submit", class: "cc-primary" }, t("submitEnd"))));
  const thanks = el("div", { class: "cc-thanks", hidden: true },
    el("p", {}, t("thanks")), el("button", { type: "button", class: "cc-secondary", onclick: newChat }, t("newChat")));

  const chatView = el("div", { class: "cc-chat", hidden: true }, log, typing, composer, endButton);
  const panel = el("section", { id: "cc-chat-panel", class: "cc-panel", role: "dialog", "aria-labelledby": ids.title, hidden: true, lang },
    el("header", { class: "cc-header" }, el("h2", { id: ids.title }, t("title")), minimize),
    agentName, status, notice, startForm, chatView, endForm, thanks);
  root.append(launcher, panel);

  // --- state ---

  const state = {
    socket: null, open: false, token: storage.get(), chatId: null, hasEmail: false,
    ended: false, delay: 500, reconnectTimer: null, typingTimer: null, lastTyping: 0,
    unconfirmed: new Map(), // id -> text: sent but not yet echoed; resent after a reconnect
    retries: new Map(), // id -> how often the daemon could not take it yet
    shown: new Map(), // id -> <li>
    waitingShown: false,
  };

  function show(view) {
    for (const v of [startForm, chatView, endForm, thanks]) v.hidden = v !== view;
  }

  function say(node, text) { node.textContent = text || ""; node.hidden = !text; }

  function openPanel(focus = true) {
    state.open = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.hidden = true;
    ensureSocket();
    if (focus) focusCurrent();
  }
  function closePanel() {
    state.open = false;
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }
  function focusCurrent() {
    if (!startForm.hidden) nameInput.focus();
    else if (!chatView.hidden) textInput.focus();
    else if (!endForm.hidden) stars[0].input.focus();
  }

  // --- the socket ---

  function ensureSocket() {
    if (state.socket) return;
    const ws = new WebSocket(socketUrl);
    state.socket = ws;
    ws.addEventListener("open", () => {
      state.delay = 500;
      say(status, "");
      if (state.token) send({ type: "resume", token: state.token });
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      state.socket = null;
      // Reconnect while a chat is on (the visitor may be mid-sentence); otherwise wait
      // until the visitor opens the panel again.
      if (!state.token) {
        // Never got a chat going (the daemon is down, or refuses this site): say so; the
        // next Start tries again.
        if (!event.wasClean && state.open) say(notice, t("offline"));
        return;
      }
      say(status, t("reconnecting"));
      clearTimeout(state.reconnectTimer);
      state.reconnectTimer = setTimeout(ensureSocket, state.delay);
      state.delay = Math.min(state.delay * 2, 10000);
    });
  }

  function send(frame) {
    const ws = state.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "hello": onHello(frame); break;
      case "started": onStarted(frame); break;
      case "message": showMessage(frame); break;
      case "typing": showTyping(frame.agent_name); break;
      case "agent_joined": showAgent(frame.agent_name); break;
      case "ended": onEnded(frame); break;
      case "error": onError(frame); break;
    }
  }

  function onHello(frame) {
    const topics = Array.isArray(frame.topics) ? frame.topics : [];
    topicSelect.replaceChildren(...topics.map((name) => el("option", { value: name }, name)));
    topicRow.hidden = topics.length === 0;
    topicSelect.required = topics.length > 0;
    if (frame.max_message_chars) textInput.maxLength = frame.max_message_chars;
  }

  function onStarted(frame) {
    state.token = frame.token;
    state.chatId = frame.chat_id;
    if (frame.email !== undefined) state.hasEmail = Boolean(frame.email);
    storage.set(frame.token);
    if (!frame.resumed) clearLog();
    show(chatView);
    transcriptRow.hidden = !state.hasEmail;
    if (!state.waitingShown && !agentName.textContent) { say(agentName, t("waiting")); state.waitingShown = true; }
    // Messages written while disconnected (or not yet confirmed) go again: the server
    // keeps each id once.
    for (const [id, text] of state.unconfirmed) send({ type: "message", id, text });
    if (state.open) focusCurrent();
    // Back after a reload: the chat shows again, without taking the page's focus.
    if (frame.resumed && !state.open) openPanel(false);
  }

  function clearLog() {
    log.replaceChildren();
    state.shown.clear();
    state.unconfirmed.clear();
  }

  function time(at) {
    const date = new Date(at * 1000);
    return date.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  }

  // One item per message id, in time order (a resume replays history, and frames sent
  // meanwhile may come first).
  function showMessage(frame, pending = false) {
    if (typeof frame.text !== "string") return;
    const from = frame.from === "agent" || frame.from === "system" ? frame.from : "visitor";
    let item = state.shown.get(frame.id);
    if (!item) {
      item = el("li", { class: "cc-msg cc-from-" + from });
      state.shown.set(frame.id, item);
    }
    const who = from === "agent" ? (frame.agent_name || t("agent")) : from === "visitor" ? t("you") : "";
    item.replaceChildren(
      el("span", { class: "cc-msg-meta" }, who ? who + " · " : "", el("time", {}, time(frame.at || Date.now() / 1000))),
      el("span", { class: "cc-msg-text" }, frame.text));
    item.classList.remove("cc-pending", "cc-failed");
    if (pending) item.classList.add("cc-pending");
    else state.unconfirmed.delete(frame.id);
    item.dataset.at = String(frame.at || Date.now() / 1000);
    place(item);
    if (from === "agent") { hideTyping(); if (frame.agent_name) showAgent(frame.agent_name); }
  }

  function place(item) {
    const at = Number(item.dataset.at);
    let before = null;
    for (const other of log.children) {
      if (other !== item && Number(other.dataset.at) > at) { before = other; break; }
    }
    if (item.parentNode === log && item.nextSibling === before) return;
    log.insertBefore(item, before);
    log.scrollTop = log.scrollHeight;
  }

  function showAgent(name) {
    if (!name) return;
    say(agentName, t("agentJoined", { name }));
  }

  function showTyping(name) {
    typing.textContent = t("typing", { name: name || t("agent") });
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(hideTyping, 4000);
  }
  function hideTyping() { clearTimeout(state.typingTimer); typing.textContent = ""; }

  function onEnded(frame) {
    hideTyping();
    state.ended = true;
    if (frame.rated) {
      storage.clear();
      state.token = null;
      show(thanks);
      thanks.querySelector("button").focus();
      return;
    }
    say(endedNote, frame.by === "agent" ? t("endedByAgent") : t("endedByVisitor"));
    cancelEnd.hidden = true;
    show(endForm);
    if (state.open) focusCurrent();
  }

  function onError(frame) {
    if (frame.code === "chat.unknown") {
      // The chat the stored token named is over: start afresh.
      storage.clear();
      state.token = null;
      clearLog();
      show(startForm);
      say(agentName, "");
      say(notice, t("chat.unknown"));
      return;
    }
    if (frame.code === "chat.unavailable" && frame.id && state.unconfirmed.has(frame.id)) {
      // The daemon could not store it just now (its store is busy): try again shortly.
      const tries = (state.retries.get(frame.id) || 0) + 1;
      if (tries <= 5) {
        state.retries.set(frame.id, tries);
        setTimeout(() => {
          const text = state.unconfirmed.get(frame.id);
          if (text !== undefined) send({ type: "message", id: frame.id, text });
        }, 2000 * tries);
        return;
      }
    }
    if (frame.id && state.shown.has(frame.id)) {
      const item = state.shown.get(frame.id);
      item.classList.remove("cc-pending");
      item.classList.add("cc-failed");
      item.title = t("failed");
      state.unconfirmed.delete(frame.id);
    }
    const known = STRINGS.en[frame.code] !== undefined;
    say(notice, known ? t(frame.code, { message: frame.message || "" }) : t("error", { message: frame.message || frame.code }));
  }

  // --- what the visitor does ---

  startForm.addEventListener("submit", (event) => {
    event.preventDefault();
    say(notice, "");
    if (!startForm.reportValidity()) return;
    state.hasEmail = Boolean(emailInput.value.trim());
    state.ended = false;
    const frame = { type: "start", name: nameInput.value, email: emailInput.value || null, topic: topicRow.hidden ? null : topicSelect.value, lang };
    if (!send(frame)) { ensureSocket(); state.socket.addEventListener("open", () => send(frame), { once: true }); }
  });

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textInput.value;
    if (!text.trim()) return;
    say(notice, "");
    const id = uuid();
    state.unconfirmed.set(id, text);
    showMessage({ id, from: "visitor", text, at: Date.now() / 1000 }, true);
    textInput.value = "";
    send({ type: "message", id, text });
    textInput.focus();
  });
  textInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  textInput.addEventListener("input", () => {
    const now = Date.now();
    if (now - state.lastTyping > 2000) { state.lastTyping = now; send({ type: "typing" }); }
  });

  endButton.addEventListener("click", () => {
    endedNote.hidden = true;
    cancelEnd.hidden = false;
    show(endForm);
    stars[0].input.focus();
  });
  cancelEnd.addEventListener("click", () => { show(chatView); textInput.focus(); });
  for (const { input } of stars) {
    input.addEventListener("change", () => {
      for (const s of stars) s.label.classList.toggle("cc-on", Number(s.input.value) <= Number(input.value));
    });
  }
  endForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = stars.find((s) => s.input.checked);
    send({
      type: "end",
      csat: chosen ? Number(chosen.input.value) : null,
      transcript_email: state.hasEmail && transcriptBox.checked,
    });
  });

  function newChat() {
    state.ended = false;
    state.waitingShown = false;
    clearLog();
    say(agentName, "");
    say(notice, "");
    endForm.reset();
    for (const s of stars) s.label.classList.remove("cc-on");
    show(startForm);
    nameInput.focus();
  }

  // A chat started in another tab of this site: this tab joins it (the server sends every
  // tab of a chat the same frames).
  window.addEventListener("storage", (event) => {
    if (event.key !== STORE_KEY || !event.newValue || state.token) return;
    state.token = event.newValue;
    if (!send({ type: "resume", token: state.token })) ensureSocket();
  });

  launcher.addEventListener("click", () => openPanel());
  minimize.addEventListener("click", closePanel);
  panel.addEventListener("keydown", (event) => { if (event.key === "Escape") closePanel(); });

  show(startForm);
  function mount() {
    document.body.append(host);
    // A chat under way (a reload, another tab): back into it at once.
    if (state.token) ensureSocket();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
