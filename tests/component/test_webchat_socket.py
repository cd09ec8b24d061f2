"""The visitors' socket `/ws/chat` over a real loopback TCP socket, with a recording
message sink, history and agent-side events in place of the message store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapters.messaging.model import (
    InboundMessage,
    OutboundMessage,
    PermanentFailure,
    Received,
)
from adapters.webchat import ChatLimits, PreChat, WebChat
from contact_center.web.routes import PUBLIC, RouteSpec, add_routes
from crm_store.errors import InvalidData, StoreError

TOPICS = {"billing": {"billing": 3}, "support": {"support": 5}}
OTHER_SITE = "http://shop.example.test:8000"

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@dataclass
class RecordingSink:
    """The message intake as the chat sees it: stores once per provider id, one
    interaction per chat (its thread ref)."""

    messages: list[InboundMessage] = field(default_factory=list)
    calls: int = 0
    fail_next: Exception | None = None
    _interactions: dict[str, int] = field(default_factory=dict)
    _ids: dict[str, int] = field(default_factory=dict)

    async def receive(self, message: InboundMessage) -> Received:
        self.calls += 1
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        chat = message.thread_refs[0]
        new_contact = chat not in self._interactions
        interaction_id = self._interactions.setdefault(chat, 100 + len(self._interactions))
        if message.provider_id in self._ids:
            return Received(interaction_id, self._ids[message.provider_id], False, True)
        self.messages.append(message)
        self._ids[message.provider_id] = len(self.messages)
        return Received(interaction_id, len(self.messages), new_contact)

    def interaction_of(self, chat_id: str) -> int:
        return self._interactions[chat_id]


@dataclass
class RecordingHistory:
    """The store's view of a chat: the visitor's messages the sink took, plus the agent
    messages a test says were stored."""

    sink: RecordingSink
    agent_rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    broken: bool = False

    async def history(self, interaction_id: int) -> list[dict[str, Any]]:
        if self.broken:
            raise ConnectionError("store down")
        rows = [
            {"id": m.provider_id, "from": "visitor", "text": m.body, "at": m.received_at}
            for m in self.sink.messages
            if self.sink.interaction_of(m.thread_refs[0]) == interaction_id
        ]
        rows += self.agent_rows.get(interaction_id, [])
        return sorted(rows, key=lambda row: float(row["at"]))


@dataclass
class RecordingEvents:
    """What the agent side hears."""

    typing: list[int] = field(default_factory=list)
    ended: list[tuple[int, int | None, str | None]] = field(default_factory=list)

    async def visitor_typing(self, interaction_id: int) -> None:
        self.typing.append(interaction_id)

    async def visitor_ended(
        self, interaction_id: int, csat: int | None, transcript_to: str | None
    ) -> None:
        self.ended.append((interaction_id, csat, transcript_to))


@dataclass
class Chat:
    """A web chat on a loopback server, and its recording ports."""

    chat: WebChat
    sink: RecordingSink
    history: RecordingHistory
    events: RecordingEvents
    client: TestClient[Any, Any]

    async def visitor(self, origin: str | None = None) -> aiohttp.ClientWebSocketResponse:
        headers = {"Origin": origin} if origin else {}
        ws = await self.client.ws_connect("/ws/chat", headers=headers)
        hello = await next_frame(ws)
        assert hello["type"] == "hello", hello
        return ws

    async def started(self, ws: aiohttp.ClientWebSocketResponse, **form: Any) -> dict[str, Any]:
        fields = {"name": "Ann Visitor", "email": "Ann@Example.com", "topic": "billing"}
        await ws.send_json({"type": "start", "lang": "en", **fields, **form})
        frame = await next_frame(ws)
        assert frame["type"] == "started", frame
        return frame


def build_chat(limits: ChatLimits | None = None, **kw: Any) -> tuple[WebChat, RecordingSink]:
    """A WebChat on recording ports (also used by the browser tests)."""
    sink = RecordingSink()
    chat = WebChat(
        sink=sink,
        history=RecordingHistory(sink),
        events=RecordingEvents(),
        topics=TOPICS,
        queue="chat",
        limits=limits,
        allowed_origins=[OTHER_SITE],
        **kw,
    )
    return chat, sink


def chat_app(chat: WebChat, headers: dict[str, str] | None = None) -> web.Application:
    """An app serving the chat's routes, as the composition root registers them."""
    app = web.Application()
    specs = chat.routes(headers or {})
    add_routes(app, [RouteSpec(r.method, r.path, r.handler, PUBLIC, r.summary) for r in specs])
    app.cleanup_ctx.append(chat.component)
    app.on_shutdown.append(chat.close_sockets)
    return app


@pytest.fixture
async def make_chat(aiohttp_client: ClientFactory) -> Callable[..., Awaitable[Chat]]:
    async def make(limits: ChatLimits | None = None, **kw: Any) -> Chat:
        chat, sink = build_chat(limits, **kw)
        client = await aiohttp_client(chat_app(chat))
        history = chat.socket.history
        events = chat.events
        assert isinstance(history, RecordingHistory) and isinstance(events, RecordingEvents)
        return Chat(chat, sink, history, events, client)

    return make


async def next_frame(ws: aiohttp.ClientWebSocketResponse, seconds: float = 5) -> dict[str, Any]:
    message = await ws.receive(timeout=seconds)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    frame: dict[str, Any] = json.loads(message.data)
    return frame


async def nothing_more(ws: aiohttp.ClientWebSocketResponse, seconds: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=seconds)


def agent_message(recipient: str, message_id: int, body: str, interaction_id: int = 0) -> Any:
    return OutboundMessage(
        message_id=message_id,
        interaction_id=interaction_id,
        channel="chat",
        recipient=recipient,
        body=body,
        sender_name="Bob Agent",
    )


async def test_a_visitor_message_reaches_the_sink_as_an_inbound_chat_message(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    started = await chat.started(ws)
    assert len(started["token"]) >= 40 and started["chat_id"]
    await ws.send_json({"type": "message", "id": "m-1", "text": "Where is my invoice?"})
    echo = await next_frame(ws)
    assert echo["type"] == "message" and echo["from"] == "visitor"
    assert (echo["id"], echo["text"]) == ("m-1", "Where is my invoice?")
    [message] = chat.sink.messages
    chat_id = started["chat_id"]
    assert message.channel == "chat"
    assert message.provider_id == f"{chat_id}:m-1"
    assert message.sender == f"visitor:{chat_id}"
    assert message.sender_name == "Ann Visitor"
    assert message.thread_refs == (chat_id,)
    assert message.skills == {"billing": 3} and message.queue == "chat"
    assert message.recipient is None
    assert chat.chat.prechat(chat.sink.interaction_of(chat_id)) == PreChat(
        "Ann Visitor", "ann@example.com", "billing", "en"
    )
    assert chat.chat.prechat(999) is None
    # The token is not kept: only its hash.
    session = chat.chat.visitors.get(chat_id)
    assert session is not None and started["token"] not in repr(vars(session))


async def test_the_socket_says_hello_with_the_topics_and_the_length_limit(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat(ChatLimits(max_message_chars=300))
    ws = await chat.client.ws_connect("/ws/chat")
    hello = await next_frame(ws)
    assert hello["type"] == "hello"
    assert (hello["topics"], hello["max_message_chars"]) == (["billing", "support"], 300)


async def test_a_message_sent_twice_is_stored_once(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    await chat.started(ws)
    for _ in range(2):
        await ws.send_json({"type": "message", "id": "same-id", "text": "hello"})
        assert (await next_frame(ws))["id"] == "same-id"
    assert chat.sink.calls == 1 and len(chat.sink.messages) == 1


async def test_one_visitor_cannot_name_another_visitors_message(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ann = await chat.visitor()
    ann_chat = await chat.started(ann)
    await ann.send_json({"type": "message", "id": "same", "text": "my account number"})
    await next_frame(ann)
    eve = await chat.visitor()
    eve_chat = await chat.started(eve, name="Eve")
    await eve.send_json({"type": "message", "id": "same", "text": "hello"})
    assert (await next_frame(eve))["text"] == "hello"
    assert [m.body for m in chat.sink.messages] == ["my account number", "hello"]
    assert chat.sink.interaction_of(ann_chat["chat_id"]) != chat.sink.interaction_of(
        eve_chat["chat_id"]
    )
    again = await chat.visitor()
    await again.send_json({"type": "resume", "token": eve_chat["token"]})
    assert (await next_frame(again))["type"] == "started"
    replay = await next_frame(again)
    assert (replay["id"], replay["text"]) == ("same", "hello")
    await nothing_more(again)


async def test_bad_frames_get_an_error_and_change_nothing(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat(ChatLimits(max_message_chars=50))
    ws = await chat.visitor()
    await ws.send_json({"type": "message", "id": "early", "text": "hi"})
    assert (await next_frame(ws))["code"] == "chat.not_started"
    await ws.send_str("{not json")
    assert (await next_frame(ws))["code"] == "frame.invalid"
    await ws.send_json({"type": "shout"})
    assert (await next_frame(ws))["code"] == "frame.unknown_type"
    await ws.send_json({"type": "start", "name": "Ann", "topic": "lottery"})
    assert (await next_frame(ws))["code"] == "form.invalid"
    await ws.send_bytes(b"\x00\x01")
    assert (await next_frame(ws))["code"] == "frame.invalid"
    assert len(chat.chat.visitors) == 0
    await chat.started(ws)
    await ws.send_json({"type": "message", "id": "long", "text": "x" * 51})
    too_long = await next_frame(ws)
    assert (too_long["type"], too_long["code"], too_long["id"]) == (
        "error",
        "message.too_long",
        "long",
    )
    await ws.send_json({"type": "message", "id": "blank", "text": "  \n "})
    assert (await next_frame(ws))["code"] == "message.empty"
    await ws.send_json({"type": "end", "csat": 9})
    assert (await next_frame(ws))["code"] == "frame.invalid"
    assert chat.sink.calls == 0
    # Still a working chat after all that.
    await ws.send_json({"type": "message", "id": "ok", "text": "x" * 50})
    assert (await next_frame(ws))["id"] == "ok"
    assert chat.sink.calls == 1


async def test_a_frame_over_the_byte_bound_closes_the_socket(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    limits = ChatLimits(max_message_chars=100)
    chat = await make_chat(limits)
    ws = await chat.visitor()
    await chat.started(ws)
    await ws.send_str(json.dumps({"type": "message", "id": "big", "text": "x" * 10_000}))
    closing = await ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert chat.sink.calls == 0


async def test_a_visitor_writing_too_fast_is_refused(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat(ChatLimits(messages_per_minute=3))
    ws = await chat.visitor()
    await chat.started(ws)
    for i in range(3):
        await ws.send_json({"type": "message", "id": f"m{i}", "text": "spam"})
        assert (await next_frame(ws))["type"] == "message"
    await ws.send_json({"type": "message", "id": "m3", "text": "spam"})
    refused = await next_frame(ws)
    assert (refused["code"], refused["id"]) == ("chat.rate_limited", "m3")
    assert chat.sink.calls == 3


async def test_a_socket_sending_too_many_frames_is_refused(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat(ChatLimits(frames_per_minute=5))
    ws = await chat.visitor()
    for _ in range(5):
        await ws.send_json({"type": "typing"})
    for _ in range(5):  # each one answered: chat.not_started
        assert (await next_frame(ws))["code"] == "chat.not_started"
    await ws.send_json({"type": "start", "name": "Ann"})
    assert (await next_frame(ws))["code"] == "chat.rate_limited"
    assert len(chat.chat.visitors) == 0


async def test_open_chats_and_sockets_per_address_are_bounded(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat(ChatLimits(chats_per_address=2, sockets_per_address=3))
    first, second, third = [await chat.visitor() for _ in range(3)]
    await chat.started(first)
    await chat.started(second)
    await third.send_json({"type": "start", "name": "Ann", "topic": "billing"})
    assert (await next_frame(third))["code"] == "chat.too_many"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await chat.client.ws_connect("/ws/chat")
    assert refused.value.status == 429
    # An ended chat no longer counts.
    await first.send_json({"type": "end"})
    assert (await next_frame(first))["type"] == "ended"
    await chat.started(third)


async def test_origins_other_than_the_daemon_and_the_allow_list_are_refused(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    for origin in ("http://evil.example.test", "null", OTHER_SITE + "/path"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await chat.client.ws_connect("/ws/chat", headers={"Origin": origin})
        assert refused.value.status == 403, origin
    own = str(chat.client.make_url("/")).rstrip("/")
    for origin in (own, OTHER_SITE, "HTTP://Shop.Example.Test:8000"):
        ws = await chat.visitor(origin)
        await ws.close()


async def test_resume_with_the_token_replays_the_history_and_later_frames(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    started = await chat.started(ws)
    await ws.send_json({"type": "message", "id": "v1", "text": "first"})
    await next_frame(ws)
    interaction_id = chat.sink.interaction_of(started["chat_id"])
    assert await chat.chat.sender.agent_joined(interaction_id, "Bob Agent")
    assert (await next_frame(ws))["type"] == "agent_joined"
    await ws.close()  # the tab reloads

    again = await chat.visitor()
    await again.send_json({"type": "resume", "token": started["token"]})
    resumed = await next_frame(again)
    assert resumed["type"] == "started" and resumed["resumed"] is True
    assert resumed["chat_id"] == started["chat_id"] and resumed["email"] is True
    assert await next_frame(again) == {"type": "agent_joined", "agent_name": "Bob Agent"}
    replay = await next_frame(again)
    assert (replay["type"], replay["id"], replay["text"]) == ("message", "v1", "first")
    sent = await chat.chat.sender.send(agent_message(f"visitor:{started['chat_id']}", 7, "hi"))
    assert (sent.status, sent.provider_id) == ("delivered", "7")
    later = await next_frame(again)
    assert (later["from"], later["agent_name"], later["text"]) == ("agent", "Bob Agent", "hi")
    await again.send_json({"type": "message", "id": "v2", "text": "second"})
    assert (await next_frame(again))["id"] == "v2"
    assert [m.body for m in chat.sink.messages] == ["first", "second"]


async def test_a_wrong_token_is_refused(make_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    started = await chat.started(ws)
    other = await chat.visitor()
    for token in (started["token"][:-2] + "xx", "", 5):
        await other.send_json({"type": "resume", "token": token})
        assert (await next_frame(other))["code"] in ("chat.unknown", "frame.invalid")
    await other.send_json({"type": "message", "id": "x", "text": "let me in"})
    assert (await next_frame(other))["code"] == "chat.not_started"
    assert chat.sink.calls == 0


async def test_every_tab_of_a_visitor_gets_the_frames(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    first = await chat.visitor()
    started = await chat.started(first)
    second = await chat.visitor()
    await second.send_json({"type": "resume", "token": started["token"]})
    assert (await next_frame(second))["type"] == "started"
    await first.send_json({"type": "message", "id": "v1", "text": "from tab one"})
    for ws in (first, second):
        assert (await next_frame(ws))["text"] == "from tab one"
    interaction_id = chat.sink.interaction_of(started["chat_id"])
    await chat.chat.sender.agent_typing(interaction_id, "Bob Agent")
    await chat.chat.sender.send(agent_message("visitor:?", 8, "to both", interaction_id))
    for ws in (first, second):
        assert await next_frame(ws) == {"type": "typing", "agent_name": "Bob Agent"}
        assert (await next_frame(ws))["text"] == "to both"


async def test_an_agent_message_to_a_closed_tab_is_delivered_on_resume(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    started = await chat.started(ws)
    await ws.send_json({"type": "message", "id": "v1", "text": "anyone?"})
    await next_frame(ws)
    await ws.close()
    await asyncio.sleep(0.05)  # the server sees the close
    recipient = f"visitor:{started['chat_id']}"
    first = await chat.chat.sender.send(agent_message(recipient, 11, "I am here"))
    second = await chat.chat.sender.send(agent_message(recipient, 12, "still there?"))
    assert (first.status, second.status) == ("sent", "sent")
    # The store has the first (its history shows it), not the second: each shown once.
    interaction_id = chat.sink.interaction_of(started["chat_id"])
    chat.history.agent_rows[interaction_id] = [
        {"id": "11", "from": "agent", "agent_name": "Bob Agent", "text": "I am here", "at": 1e10}
    ]
    again = await chat.visitor()
    await again.send_json({"type": "resume", "token": started["token"]})
    frames = [await next_frame(again) for _ in range(5)]
    assert [f["type"] for f in frames] == [
        "started",
        "agent_joined",
        "message",
        "message",
        "message",
    ]
    assert [f["id"] for f in frames[2:]] == ["v1", "11", "12"]
    await nothing_more(again)


async def test_the_history_store_down_still_resumes(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    started = await chat.started(ws)
    await ws.send_json({"type": "message", "id": "v1", "text": "anyone?"})
    await next_frame(ws)
    chat.history.broken = True
    again = await chat.visitor()
    await again.send_json({"type": "resume", "token": started["token"]})
    assert (await next_frame(again))["type"] == "started"
    assert (await next_frame(again))["code"] == "chat.history_unavailable"
    await again.send_json({"type": "message", "id": "v2", "text": "back"})
    assert (await next_frame(again))["id"] == "v2"


async def test_a_failing_intake_refuses_the_message_so_it_can_be_sent_again(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    await chat.started(ws)
    for failure, code in (
        (StoreError("the store is not taking writes"), "chat.unavailable"),
        (ConnectionError("a bug in the intake"), "chat.unavailable"),
        (InvalidData("body: too long for the store"), "message.invalid"),
    ):
        chat.sink.fail_next = failure
        await ws.send_json({"type": "message", "id": "v1", "text": "hello"})
        refused = await next_frame(ws)
        assert (refused["code"], refused["id"]) == (code, "v1")
    await ws.send_json({"type": "message", "id": "v1", "text": "hello"})
    assert (await next_frame(ws))["type"] == "message"
    assert [m.body for m in chat.sink.messages] == ["hello"]


async def test_typing_and_the_end_with_stars_reach_the_agent_side(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    started = await chat.started(ws)
    await ws.send_json({"type": "typing"})  # no contact yet: nobody to tell
    await ws.send_json({"type": "message", "id": "v1", "text": "hello"})
    await next_frame(ws)
    for _ in range(3):  # the agent hears it once in two seconds
        await ws.send_json({"type": "typing"})
    interaction_id = chat.sink.interaction_of(started["chat_id"])
    await ws.send_json({"type": "end", "csat": 4, "transcript_email": True})
    assert await next_frame(ws) == {"type": "ended", "by": "visitor", "rated": True}
    assert chat.events.typing == [interaction_id]
    assert chat.events.ended == [(interaction_id, 4, "ann@example.com")]
    await ws.send_json({"type": "message", "id": "v2", "text": "one more"})
    assert (await next_frame(ws))["code"] == "chat.ended"
    await ws.send_json({"type": "end", "csat": 1})
    assert (await next_frame(ws))["code"] == "chat.ended"
    assert len(chat.events.ended) == 1
    with pytest.raises(PermanentFailure):
        await chat.chat.sender.send(agent_message(f"visitor:{started['chat_id']}", 9, "late"))


async def test_a_chat_the_agent_ended_can_still_be_rated(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    chat = await make_chat()
    ws = await chat.visitor()
    started = await chat.started(ws, email="")
    await ws.send_json({"type": "message", "id": "v1", "text": "thanks, bye"})
    await next_frame(ws)
    interaction_id = chat.sink.interaction_of(started["chat_id"])
    assert await chat.chat.sender.chat_ended_by_agent(interaction_id)
    assert await next_frame(ws) == {"type": "ended", "by": "agent"}
    await ws.send_json({"type": "end", "csat": 5, "transcript_email": True})
    assert (await next_frame(ws))["code"] == "form.invalid"  # no email was given
    await ws.send_json({"type": "end", "csat": 5})
    assert await next_frame(ws) == {"type": "ended", "by": "agent", "rated": True}
    assert chat.events.ended == [(interaction_id, 5, None)]


async def test_a_departed_visitor_is_forgotten_and_the_agent_side_told(
    make_chat: Callable[..., Awaitable[Chat]],
) -> None:
    now = [1000.0]
    chat = await make_chat(ChatLimits(resume_seconds=60), clock=lambda: now[0])
    ws = await chat.visitor()
    started = await chat.started(ws)
    await ws.send_json({"type": "message", "id": "v1", "text": "brb"})
    await next_frame(ws)
    await ws.close()
    await asyncio.sleep(0.05)
    now[0] += 59
    assert await chat.chat.sweep() == 0
    now[0] += 2
    assert await chat.chat.sweep() == 1
    assert chat.events.ended == [(chat.sink.interaction_of(started["chat_id"]), None, None)]
    again = await chat.visitor()
    await again.send_json({"type": "resume", "token": started["token"]})
    assert (await next_frame(again))["code"] == "chat.unknown"


async def test_the_widget_files_are_served_with_the_given_headers(
    aiohttp_client: ClientFactory,
) -> None:
    chat, _sink = build_chat()
    headers = {"Content-Security-Policy": "default-src 'self'", "X-Content-Type-Options": "nosniff"}
    client = await aiohttp_client(chat_app(chat, headers))
    for path, kind in (
        ("/chat/widget.js", "text/javascript"),
        ("/chat/widget.css", "text/css"),
        ("/chat/demo", "text/html"),
    ):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == kind, path
        assert response.headers["Content-Security-Policy"] == "default-src 'self'"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    demo = await (await client.get("/chat/demo")).text()
    assert '<script src="/chat/widget.js" async></script>' in demo
    assert "style=" not in demo and "<style" not in demo
