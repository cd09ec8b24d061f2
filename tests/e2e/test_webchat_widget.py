"""The chat widget in a real headless Chromium, under the daemon's real CSP.

The chat's routes run on a loopback aiohttp server in a thread of their own (Playwright's
sync API holds this thread's loop), with the recording sink and history of the component
tests in place of the message store; the test plays the agent through `ChatSender`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp import web

from adapters.messaging.model import OutboundMessage
from adapters.webchat import ChatLimits, WebChat
from contact_center.web.pages import SECURITY_HEADERS
from tests.component.test_webchat_socket import (
    RecordingEvents,
    RecordingHistory,
    RecordingSink,
    chat_app,
)
from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e

T = TypeVar("T")
SCRIPT_TEXT = "<script>alert(1)</script>"
AGENT_TEXT = "您好\uff0c请问有什么可以帮您\uff1f"  # full-width comma and question mark


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servers:
    """aiohttp apps on 127.0.0.1, served from an event loop in another thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def serve(self, app: web.Application, port: int) -> str:
        async def start() -> None:
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)

        self.run(start())
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        async def stop() -> None:
            for runner in reversed(self.runners):
                await runner.cleanup()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class ChatSite:
    """The chat's routes as the daemon serves them (its CSP), and the recording ports."""

    def __init__(self, servers: Servers, allowed_origins: list[str]) -> None:
        self.servers = servers
        self.sink = RecordingSink()
        self.history = RecordingHistory(self.sink)
        self.events = RecordingEvents()
        self.chat = WebChat(
            sink=self.sink,
            history=self.history,
            events=self.events,
            topics={"billing": {"billing": 3}, "support": {"support": 5}},
            queue="chat",
            limits=ChatLimits(max_message_chars=500),
            allowed_origins=allowed_origins,
        )
        self.url = servers.serve(chat_app(self.chat, SECURITY_HEADERS), _free_port())

    def interaction(self) -> int:
        [message, *_] = self.sink.messages
        return self.sink.interaction_of(message.thread_refs[0])

    def agent_says(self, message_id: int, text: str) -> str:
        """The agent's message as stored and sent; its delivery status."""
        interaction_id = self.interaction()
        [message, *_] = self.sink.messages
        self.history.agent_rows.setdefault(interaction_id, []).append(
            {"id": str(message_id), "from": "agent", "agent_name": "Bob Agent", "text": text}
            | {"at": message.received_at + message_id}
        )
        out = OutboundMessage(
            message_id=message_id,
            interaction_id=interaction_id,
            channel="chat",
            recipient=message.sender,
            body=text,
            sender_name="Bob Agent",
        )
        return self.servers.run(self.chat.sender.send(out)).status


@pytest.fixture
def servers() -> Iterator[Servers]:
    running = Servers()
    try:
        yield running
    finally:
        running.close()


def _watch(page: Any) -> tuple[list[str], list[str]]:
    """Console errors (CSP refusals among them) and dialogs (an alert would be XSS)."""
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return errors, dialogs


def serve_shop(servers: Servers, port: int, daemon: str, lang: str) -> None:
    """Another site's page embedding the widget, with its own CSP letting the daemon in."""
    policy = (
        f"default-src 'self'; script-src 'self' {daemon}; style-src 'self' {daemon}; "
        f"connect-src 'self' ws://{daemon.removeprefix('http://')}; img-src data:; "
        "frame-ancestors 'none'"
    )
    page_html = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>Shop</title>'
        '<link rel="icon" href="data:,"></head><body><h1>Shop</h1>'
        f'<script src="{daemon}/chat/widget.js" data-lang="{lang}" async></script>'
        "</body></html>"
    )

    async def shop_page(request: web.Request) -> web.Response:
        return web.Response(
            text=page_html, content_type="text/html", headers={"Content-Security-Policy": policy}
        )

    shop_app = web.Application()
    shop_app.router.add_get("/", shop_page)
    servers.serve(shop_app, port)


def test_a_visitor_chats_on_the_demo_page_reloads_and_rates_the_chat(
    browser: Any, servers: Servers
) -> None:
    from playwright.sync_api import expect

    site = ChatSite(servers, allowed_origins=[])
    context = browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 800})
    page = context.new_page()
    errors, dialogs = _watch(page)
    response = page.goto(site.url + "/chat/demo")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]

    page.get_by_role("button", name="Chat with us").click()
    expect(page.get_by_label("Your name")).to_be_focused()
    page.get_by_label("Your name").fill("Ann Visitor")
    page.get_by_label("Email (optional)").fill("ann@example.com")
    page.get_by_label("Topic").select_option("billing")
    page.get_by_role("button", name="Start chat").click()
    expect(page.get_by_text("Waiting for an agent…")).to_be_visible()

    box = page.get_by_label("Your message")
    box.fill(SCRIPT_TEXT)
    box.press("Enter")
    mine = page.locator(".cc-from-visitor .cc-msg-text")
    expect(mine).to_have_text([SCRIPT_TEXT])
    expect(page.locator(".cc-from-visitor.cc-pending")).to_have_count(0)
    [stored] = site.sink.messages
    assert (stored.body, stored.sender_name, stored.skills) == (
        SCRIPT_TEXT,
        "Ann Visitor",
        {"billing": 3},
    )
    assert page.locator(".cc-log script").count() == 0

    servers.run(site.chat.sender.agent_joined(site.interaction(), "Bob Agent"))
    expect(page.get_by_text("Bob Agent joined the chat")).to_be_visible()
    servers.run(site.chat.sender.agent_typing(site.interaction(), "Bob Agent"))
    expect(page.get_by_text("Bob Agent is typing…")).to_be_visible()
    assert site.agent_says(1, "Hello <b>Ann</b>, I can help.") == "delivered"
    theirs = page.locator(".cc-from-agent .cc-msg-text")
    expect(theirs).to_have_text("Hello <b>Ann</b>, I can help.")
    expect(page.get_by_text("Bob Agent is typing…")).to_have_count(0)
    screenshot(page, "webchat-conversation")

    # The connection drops (a proxy restart, say): the widget reconnects and resumes, and
    # what the agent wrote meanwhile arrives.
    servers.run(site.chat.close_sockets())
    site.agent_says(2, "Are you still there?")
    expect(theirs.nth(1)).to_have_text("Are you still there?")
    box.fill("Yes, sorry")
    box.press("Enter")
    expect(mine.nth(1)).to_have_text("Yes, sorry")
    assert [m.body for m in site.sink.messages] == [SCRIPT_TEXT, "Yes, sorry"]

    # A reload: the widget resumes with its token and shows the history again.
    page.reload()
    expect(mine).to_have_text([SCRIPT_TEXT, "Yes, sorry"])
    expect(theirs).to_have_text(["Hello <b>Ann</b>, I can help.", "Are you still there?"])
    expect(page.get_by_text("Bob Agent joined the chat")).to_be_visible()
    assert len(site.sink.messages) == 2

    page.get_by_role("button", name="End chat").click()
    page.locator("label[for=cc-star-4]").click()
    expect(page.get_by_label("4 of 5 stars")).to_be_checked()
    page.get_by_label("Email me the transcript").check()
    screenshot(page, "webchat-rating")
    page.get_by_role("button", name="End chat").click()
    expect(page.get_by_text("Thank you! The chat has ended.")).to_be_visible()
    assert site.events.ended == [(site.interaction(), 4, "ann@example.com")]

    # The chat is over: a reload starts afresh.
    page.reload()
    page.get_by_role("button", name="Chat with us").click()
    expect(page.get_by_role("button", name="Start chat")).to_be_visible()
    assert dialogs == []
    assert errors == []
    context.close()


def test_the_widget_on_another_origin_chats_in_chinese(browser: Any, servers: Servers) -> None:
    from playwright.sync_api import expect

    shop_port = _free_port()
    shop = f"http://127.0.0.1:{shop_port}"
    site = ChatSite(servers, allowed_origins=[shop])
    serve_shop(servers, shop_port, site.url, lang="zh-CN")

    page = browser.new_page()
    errors, dialogs = _watch(page)
    page.goto(shop + "/")
    page.get_by_role("button", name="在线咨询").click()
    page.get_by_label("您的姓名").fill("李雷")
    page.get_by_label("咨询主题").select_option("support")
    page.get_by_role("button", name="开始对话").click()
    # The store is busy for the first try: the widget tries again by itself.
    site.sink.fail_next = ConnectionError("store busy")
    page.get_by_label("您的消息").fill("你好 <img src=x onerror=alert(2)>")
    page.get_by_role("button", name="发送").click()
    expect(page.locator(".cc-from-visitor .cc-msg-text")).to_have_text(
        "你好 <img src=x onerror=alert(2)>"
    )
    expect(page.locator(".cc-from-visitor.cc-pending")).to_have_count(0)
    assert site.sink.calls == 2
    [stored] = site.sink.messages
    assert (stored.sender_name, stored.skills) == ("李雷", {"support": 5})
    assert site.agent_says(1, AGENT_TEXT) == "delivered"
    expect(page.locator(".cc-from-agent .cc-msg-text")).to_have_text(AGENT_TEXT)
    # Without an email there is no transcript to offer.
    page.get_by_role("button", name="结束对话").click()
    expect(page.get_by_label("将对话记录发送到我的邮箱")).to_be_hidden()
    screenshot(page, "webchat-zh-cn")
    assert dialogs == []
    assert errors == []
    page.close()


def test_a_site_not_on_the_allow_list_cannot_open_a_chat(browser: Any, servers: Servers) -> None:
    from playwright.sync_api import expect

    site = ChatSite(servers, allowed_origins=["http://127.0.0.1:1"])
    port = _free_port()
    serve_shop(servers, port, site.url, lang="en")
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/")
    page.get_by_role("button", name="Chat with us").click()
    page.get_by_label("Your name").fill("Mallory")
    page.get_by_role("button", name="Start chat").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The chat cannot be reached right now; try again later."
    )
    assert len(site.chat.visitors) == 0 and site.sink.calls == 0
    page.close()
