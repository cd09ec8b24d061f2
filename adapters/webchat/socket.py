"""`/ws/chat`: the visitors' WebSocket, a thin shell around `visitors` and `sender`.

Visitor -> server frames: `start`, `message`, `typing`, `end`, `resume`; server -> visitor:
`hello`, `started`, `message`, `typing`, `agent_joined`, `ended`, `error` (the README of
the widget protocol is the module docstring of `adapters.webchat`). A refused frame gets
an `error` frame with a stable `code` and changes nothing; a frame over the byte bound
closes the socket (1009) before it is parsed.

No login: anyone on an allowed origin may open a chat. What that lets a stranger make the
daemon hold is bounded per address (sockets, open chats), per socket (frames a minute)
and per chat (messages a minute, their length, frames kept for a closed tab).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from adapters.messaging.model import MessageSink
from adapters.webchat.sender import ChatSender, VisitorConnection
from adapters.webchat.visitors import (
    ChatRefused,
    ChatSession,
    EndFrame,
    MessageFrame,
    ResumeFrame,
    SlidingWindow,
    StartFrame,
    TypingFrame,
    VisitorFrame,
    allowed_origins,
    history_frames,
    inbound_message,
    message_frame,
    normalize_origin,
    parse_frame,
)
from crm_store.errors import InvalidData, StoreError
from routing.outbox import store_unavailable

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20.0


class ChatHistory(Protocol):
    """A chat's messages as stored, for a visitor who comes back (the message store)."""

    async def history(self, interaction_id: int) -> list[dict[str, Any]]:
        """Oldest first, each `{"id", "from": "agent"|"visitor"|"system", "text", "at"}`
        (plus `agent_name` on agent messages). Ids: the stored provider id for visitor
        messages (`<chat id>:<widget id>`), `str(message_id)` for agent ones (what
        `ChatSender.send` sends)."""
        ...


class ChatEvents(Protocol):
    """What visitors do that the agent side hears (the conversation panel, the intake)."""

    async def visitor_typing(self, interaction_id: int) -> None:
        """The visitor is typing (at most every 2 s)."""
        ...

    async def visitor_ended(
        self, interaction_id: int, csat: int | None, transcript_to: str | None
    ) -> None:
        """The visitor ended the chat or rated it after the agent ended it (once per
        chat), or left for good (`csat` and `transcript_to` None). `transcript_to` is the
        pre-chat email when the visitor asked for the transcript."""
        ...


class ChatSocket:
    """The `/ws/chat` handler: origins, limits, and each frame to what it does."""

    def __init__(
        self,
        sender: ChatSender,
        sink: MessageSink,
        history: ChatHistory,
        events: ChatEvents,
        *,
        topics: Mapping[str, Mapping[str, int]],
        queue: str | None = None,
        origins: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sender = sender
        self.visitors = sender.visitors
        self.limits = sender.visitors.limits
        self.sink = sink
        self.history = history
        self.events = events
        self.topics = {name: dict(skills) for name, skills in topics.items()}
        self.queue = queue
        self.origins = allowed_origins(origins)
        self.clock = clock
        # One visitor message at a time per chat: the first opens the contact, and the
        # visitor's order is the stored order.
        self._locks: weakref.WeakKeyDictionary[ChatSession, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def origin_allowed(self, request: web.Request) -> bool:
        """The page that opens the socket is on the daemon's own origin or an allowed one.

        No Origin header: not a browser, which could claim any origin anyway; the limits
        hold for it all the same.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        normalized = normalize_origin(origin)
        if normalized is None:
            return False
        own = normalize_origin(f"{request.scheme}://{request.host}")
        return normalized == own or normalized in self.origins

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one visitor socket until it closes."""
        if not self.origin_allowed(request):
            log.info("chat socket from origin %.100r refused", request.headers.get("Origin"))
            raise web.HTTPForbidden(text="chat from this origin refused")
        address = request.remote or "unknown"
        if self.sender.connections_from(address) >= self.limits.sockets_per_address:
            raise web.HTTPTooManyRequests(text="too many chat sockets from this address")
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT_SECONDS, max_msg_size=self.limits.max_frame_bytes
        )
        await ws.prepare(request)
        connection = self.sender.connect(ws, address, SlidingWindow(self.limits.frames_per_minute))
        writer = asyncio.create_task(
            self.sender.writer(connection), name=f"chat-writer-{connection.id}"
        )
        try:
            self.sender.to_connection(connection, self._hello())
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_frame(connection, message.data)
                elif message.type == WSMsgType.BINARY:
                    self._error(connection, "frame.invalid", "frames are JSON text")
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            _drop_heartbeat_callback(request)
            self.sender.disconnect(connection)
            await writer
        return ws

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "topics": list(self.topics),
            "max_message_chars": self.limits.max_message_chars,
            "heartbeat_seconds": HEARTBEAT_SECONDS,
        }

    async def _on_frame(self, connection: VisitorConnection, data: str) -> None:
        now = self.clock()
        if not connection.frames.allow(now):
            self._error(connection, "chat.rate_limited", "too many frames; slow down")
            return
        frame: VisitorFrame | None = None
        try:
            frame = parse_frame(data, self.limits, self.topics)
            await self._dispatch(connection, frame, now)
        except ChatRefused as refused:
            ref = refused.ref or (frame.id if isinstance(frame, MessageFrame) else None)
            self._error(connection, refused.code, refused.message, ref)

    async def _dispatch(
        self, connection: VisitorConnection, frame: VisitorFrame, now: float
    ) -> None:
        if isinstance(frame, StartFrame):
            self._start(connection, frame, now)
        elif isinstance(frame, ResumeFrame):
            await self._resume(connection, frame, now)
        elif isinstance(frame, MessageFrame):
            await self._message(connection, frame, now)
        elif isinstance(frame, TypingFrame):
            await self._typing(connection, now)
        else:
            await self._end(connection, frame, now)

    def _start(self, connection: VisitorConnection, frame: StartFrame, now: float) -> None:
        if connection.session is not None and connection.session.is_open:
            raise ChatRefused("chat.already_started", "this chat is open; end it first")
        session, token = self.visitors.start(connection.address, frame.prechat, now)
        self.sender.join(connection, session)
        log.info("chat %s started from %s", session.chat_id, connection.address)
        self.sender.to_connection(
            connection, {"type": "started", "token": token, "chat_id": session.chat_id}
        )

    async def _resume(self, connection: VisitorConnection, frame: ResumeFrame, now: float) -> None:
        session = self.visitors.resume(frame.token, now)
        # On the chat before the history is read, so nothing sent meanwhile is missed (the
        # widget orders messages by time and shows each id once).
        self.sender.join(connection, session)
        started: dict[str, Any] = {
            "type": "started",
            "token": frame.token,
            "chat_id": session.chat_id,
            "resumed": True,
            "email": session.prechat.email is not None,
        }
        self.sender.to_connection(connection, started)
        if session.agent_name is not None:
            self.sender.to_connection(
                connection, {"type": "agent_joined", "agent_name": session.agent_name}
            )
        shown = await self._history(connection, session)
        for kept in self.visitors.take_pending(session, shown):
            self.sender.to_connection(connection, kept)
        if not session.is_open:
            self.sender.to_connection(
                connection, {"type": "ended", "by": session.ended_by, "rated": session.rated}
            )

    async def _history(self, connection: VisitorConnection, session: ChatSession) -> list[str]:
        """Replay the stored messages to the socket; their ids."""
        if session.interaction_id is None:
            return []
        try:
            rows = await self.history.history(session.interaction_id)
        except Exception:
            log.exception("chat %s: could not read its history", session.chat_id)
            self._error(connection, "chat.history_unavailable", "the earlier messages are missing")
            return []
        frames = history_frames(rows, session.chat_id)
        for frame in frames:
            self.sender.to_connection(connection, frame)
        return [frame["id"] for frame in frames]

    async def _message(
        self, connection: VisitorConnection, frame: MessageFrame, now: float
    ) -> None:
        session = _on_chat(connection)
        echo = message_frame(frame.id, "visitor", frame.text, now)
        if not self.visitors.take_message(session, frame.id, now):
            # Sent again after a reconnect: confirmed again, stored once.
            self.sender.to_connection(connection, echo)
            return
        lock = self._locks.setdefault(session, asyncio.Lock())
        async with lock:
            try:
                received = await self.sink.receive(
                    inbound_message(session, frame, now, self.topics, self.queue)
                )
            except InvalidData as exc:
                self.visitors.forget_message(session, frame.id)
                raise ChatRefused("message.invalid", str(exc)) from None
            except Exception as exc:
                # Store down or busy, intake failing: nothing was taken, the widget sends it
                # again. An outage is expected and logged in a line; anything else is a bug.
                if isinstance(exc, StoreError) or store_unavailable(exc):
                    log.warning("chat %s: message not taken: %s", session.chat_id, exc)
                else:
                    log.exception("chat %s: the message intake failed", session.chat_id)
                self.visitors.forget_message(session, frame.id)
                raise ChatRefused(
                    "chat.unavailable", "your message could not be taken; try again"
                ) from None
        # A duplicate names the interaction its first copy went to: already this chat's.
        if not received.duplicate and session.interaction_id != received.interaction_id:
            self.visitors.bind(session, received.interaction_id)
        self.sender.to_chat(session, echo)

    async def _typing(self, connection: VisitorConnection, now: float) -> None:
        session = _on_chat(connection)
        if session.interaction_id is None or not self.visitors.typing_due(session, now):
            return
        try:
            await self.events.visitor_typing(session.interaction_id)
        except Exception:
            log.exception("chat %s: visitor_typing failed", session.chat_id)

    async def _end(self, connection: VisitorConnection, frame: EndFrame, now: float) -> None:
        session = _on_chat(connection)
        transcript_to = self.visitors.rate(session, frame.csat, frame.transcript)
        self.visitors.end(session, "visitor", now)
        log.info(
            "chat %s ended (by the %s), csat %s", session.chat_id, session.ended_by, frame.csat
        )
        if session.interaction_id is not None:
            try:
                await self.events.visitor_ended(session.interaction_id, frame.csat, transcript_to)
            except Exception:
                log.exception("chat %s: visitor_ended failed", session.chat_id)
        self.sender.to_chat(session, {"type": "ended", "by": session.ended_by, "rated": True})

    def _error(
        self, connection: VisitorConnection, code: str, message: str, ref: str | None = None
    ) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if ref is not None:
            frame["id"] = ref
        self.sender.to_connection(connection, frame)


def _on_chat(connection: VisitorConnection) -> ChatSession:
    if connection.session is None:
        raise ChatRefused("chat.not_started", "start or resume a chat first")
    return connection.session


def _drop_heartbeat_callback(request: web.Request) -> None:
    # As in contact_center/web/ws.py: aiohttp (3.14) leaves the socket's heartbeat callback
    # on the connection's protocol when the socket ends, a cycle only a full collection
    # frees; with the callback gone, reference counting frees the socket at once.
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None
