"""The way out to chat visitors: their open sockets, and `ChatSender` (a MessageSender).

As in the agents' hub (contact_center/web/hub.py), each socket has its own bounded queue
drained by its own writer task: whoever sends only does a `put_nowait`, and a visitor's
tab that stops reading is dropped (close 4008) instead of holding anyone up. A visitor
may have several tabs on one chat: every frame for the chat goes to each of them. What
an agent writes while no tab is open is kept on the chat and delivered on resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.messaging.model import OutboundMessage, PermanentFailure, SendResult
from adapters.webchat.visitors import ChatSession, SlidingWindow, Visitors, message_frame

log = logging.getLogger(__name__)

QUEUE_FRAMES = 256
QUEUE_BYTES = 512 * 1024
SEND_TIMEOUT_SECONDS = 10.0
CLOSE_SECONDS = 2.0
CLOSE_TOO_SLOW = 4008  # the same private-use code as the agents' sockets
_ids = itertools.count(1)


@dataclass(eq=False)
class VisitorConnection:
    """One visitor socket (one tab)."""

    ws: web.WebSocketResponse
    address: str
    queue: asyncio.Queue[str | None]
    frames: SlidingWindow  # everything this socket sends, counted against its budget
    id: int = field(default_factory=lambda: next(_ids))
    session: ChatSession | None = None
    queued_bytes: int = 0
    dropped: bool = False
    close_code: int | None = None


class ChatSender:
    """Frames to visitors' sockets; the chat channel's MessageSender and the agent hooks."""

    def __init__(
        self,
        visitors: Visitors,
        *,
        clock: Callable[[], float] = time.time,
        queue_frames: int = QUEUE_FRAMES,
        queue_bytes: int = QUEUE_BYTES,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.visitors = visitors
        self.clock = clock
        self.queue_frames = queue_frames
        self.queue_bytes = queue_bytes
        self.send_timeout = send_timeout
        self._by_chat: dict[str, set[VisitorConnection]] = defaultdict(set)
        self._by_address: dict[str, set[VisitorConnection]] = defaultdict(set)
        self.dropped_sockets = 0

    # --- the agent side (called by the message delivery and the conversation panel) ---

    async def send(self, message: OutboundMessage) -> SendResult:
        """An agent's message to the visitor's tabs: "delivered" when a tab is open, else
        "sent" (kept for the visitor's return); PermanentFailure for a chat that is over."""
        session = self.visitors.for_recipient(message.recipient)
        if session is None:
            session = self.visitors.for_interaction(message.interaction_id)
        if session is None:
            raise PermanentFailure("the visitor has left the chat")
        if not session.is_open:
            raise PermanentFailure(f"the chat was ended by the {session.ended_by}")
        if session.interaction_id is None:
            self.visitors.bind(session, message.interaction_id)
        if message.sender_name and session.agent_name is None:
            session.agent_name = message.sender_name
        frame_id = str(message.message_id)
        frame = message_frame(frame_id, "agent", message.body, self.clock(), message.sender_name)
        if self.to_chat(session, frame):
            return SendResult(provider_id=frame_id, status="delivered")
        self.visitors.keep(session, frame)
        return SendResult(provider_id=frame_id, status="sent")

    async def agent_typing(self, interaction_id: int, agent_name: str) -> bool:
        """Show the visitor that the agent is typing; False when the chat is not held."""
        session = self.visitors.for_interaction(interaction_id)
        if session is None or not session.is_open:
            return False
        self.to_chat(session, {"type": "typing", "agent_name": agent_name})
        return True

    async def agent_joined(self, interaction_id: int, agent_name: str) -> bool:
        """An agent took the chat: the visitor sees their name (on resume too)."""
        session = self.visitors.for_interaction(interaction_id)
        if session is None or not session.is_open:
            return False
        session.agent_name = agent_name
        self.to_chat(session, {"type": "agent_joined", "agent_name": agent_name})
        return True

    async def chat_ended_by_agent(self, interaction_id: int) -> bool:
        """The agent ended the chat; the visitor may still rate it."""
        session = self.visitors.for_interaction(interaction_id)
        if session is None or not self.visitors.end(session, "agent", self.clock()):
            return False
        self.to_chat(session, {"type": "ended", "by": "agent"})
        return True

    # --- sockets ---------------------------------------------------------------

    def connect(
        self, ws: web.WebSocketResponse, address: str, frames: SlidingWindow
    ) -> VisitorConnection:
        """Register a socket; the caller runs `writer(connection)` until it ends."""
        connection = VisitorConnection(ws, address, asyncio.Queue(self.queue_frames), frames)
        self._by_address[address].add(connection)
        return connection

    def connections_from(self, address: str) -> int:
        """How many sockets the address holds open."""
        return len(self._by_address.get(address, ()))

    def connections_of(self, session: ChatSession) -> int:
        """How many sockets are on the chat."""
        return len(self._by_chat.get(session.chat_id, ()))

    def join(self, connection: VisitorConnection, session: ChatSession) -> None:
        """Put the socket on a chat (off the one it was on)."""
        if connection.session is session:
            return
        self.leave(connection)
        connection.session = session
        self._by_chat[session.chat_id].add(connection)
        self.visitors.attach(session, self.clock())

    def leave(self, connection: VisitorConnection) -> None:
        """Take the socket off its chat, if any (idempotent)."""
        session = connection.session
        if session is None:
            return
        connection.session = None
        on_chat = self._by_chat.get(session.chat_id)
        if on_chat is not None:
            on_chat.discard(connection)
            if not on_chat:
                del self._by_chat[session.chat_id]
        self.visitors.detach(session, self.clock())

    def disconnect(self, connection: VisitorConnection) -> None:
        """Forget a socket (idempotent); its writer finishes."""
        self.leave(connection)
        same = self._by_address.get(connection.address)
        if same is not None:
            same.discard(connection)
            if not same:
                del self._by_address[connection.address]
        with contextlib.suppress(asyncio.QueueFull):
            connection.queue.put_nowait(None)

    def to_connection(self, connection: VisitorConnection, frame: dict[str, Any]) -> bool:
        """Queue a frame for one socket; False when it is gone or was dropped for it."""
        return self._fan_out((connection,), frame) == 1

    def to_chat(self, session: ChatSession, frame: dict[str, Any]) -> int:
        """Queue a frame for every socket on the chat; how many took it."""
        return self._fan_out(self._by_chat.get(session.chat_id, ()), frame)

    def _fan_out(self, connections: Iterable[VisitorConnection], frame: dict[str, Any]) -> int:
        text = json.dumps(frame, separators=(",", ":"))
        size = len(text)  # ensure_ascii: one byte per character
        delivered = 0
        for connection in list(connections):
            if connection.dropped:
                continue
            if connection.queued_bytes + size > self.queue_bytes:
                self._drop(connection, f"{connection.queued_bytes} bytes behind")
                continue
            try:
                connection.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(connection, f"{connection.queue.qsize()} frames behind")
            else:
                connection.queued_bytes += size
                delivered += 1
        return delivered

    def _drop(self, connection: VisitorConnection, why: str) -> None:
        connection.dropped = True
        connection.close_code = CLOSE_TOO_SLOW
        self.dropped_sockets += 1
        log.warning("dropping a chat visitor's socket from %s: %s", connection.address, why)
        while not connection.queue.empty():
            text = connection.queue.get_nowait()
            if text is not None:
                connection.queued_bytes -= len(text)
        self.disconnect(connection)

    async def writer(self, connection: VisitorConnection) -> None:
        """Drain the socket's queue into it until it is disconnected or dropped."""
        try:
            while (text := await connection.queue.get()) is not None:
                try:
                    async with asyncio.timeout(self.send_timeout):
                        await connection.ws.send_str(text)
                finally:
                    connection.queued_bytes -= len(text)
        except TimeoutError:
            if not connection.dropped:
                self._drop(connection, f"nothing read for {self.send_timeout:g} s")
        except (ConnectionResetError, RuntimeError):
            pass  # the socket went away under us; its reader notices too
        finally:
            self.disconnect(connection)
            if connection.close_code is not None and not connection.ws.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_SECONDS):
                        await connection.ws.close(code=connection.close_code, message=b"too slow")

    async def close_all(self) -> None:
        """Close every visitor socket (shutdown): the widgets reconnect and resume."""
        connections = [c for same in self._by_address.values() for c in same]
        for connection in connections:
            self.disconnect(connection)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await connection.ws.close(code=1001, message=b"server shutdown")
