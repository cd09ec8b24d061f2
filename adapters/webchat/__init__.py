"""Web chat, the customer side: an embeddable widget and the visitors' WebSocket.

A site embeds the widget with one tag, `<script src="https://<daemon>/chat/widget.js"
async></script>` (optionally `data-lang="zh-CN"`); the widget opens `/ws/chat` on the
origin it was loaded from. Frames are JSON objects with a `type`:

visitor -> server
    `start` {name, email?, topic?, lang}; `message` {id (the widget's uuid: the
    idempotence key), text}; `typing`; `end` {csat?: 1-5, transcript_email?: bool};
    `resume` {token}
server -> visitor
    `hello` {topics, max_message_chars}; `started` {token, chat_id, resumed?, email?};
    `message` {id, from: agent|visitor|system, agent_name?, text, at}; `typing`
    {agent_name}; `agent_joined` {agent_name}; `ended` {by, rated?}; `error` {code,
    message, id?}

A visitor's first message opens the contact through the message intake (`MessageSink`);
what agents write comes back through `ChatSender` (the channel's `MessageSender`).
`WebChat` builds the three parts and is what the composition root wires in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

from aiohttp import web

from adapters.messaging.model import MessageSink
from adapters.webchat.routes import ChatRoute, chat_routes
from adapters.webchat.sender import ChatSender
from adapters.webchat.socket import ChatEvents, ChatHistory, ChatSocket
from adapters.webchat.visitors import ChatLimits, PreChat, Visitors, normalize_origin

__all__ = [
    "ChatEvents",
    "ChatHistory",
    "ChatLimits",
    "ChatRoute",
    "ChatSender",
    "PreChat",
    "WebChat",
]

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0


class WebChat:
    """The web chat channel: visitors' chats, their socket, and the way back to them."""

    def __init__(
        self,
        *,
        sink: MessageSink,
        history: ChatHistory,
        events: ChatEvents,
        topics: Mapping[str, Mapping[str, int]],
        queue: str | None = None,
        limits: ChatLimits | None = None,
        allowed_origins: Iterable[str] = (),
        public_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        origins = list(allowed_origins)
        # Behind a TLS proxy the daemon's own pages are on the public address.
        public = normalize_origin(public_url) if public_url else None
        if public is not None:
            origins.append(public)
        self.events = events
        self.clock = clock
        self._sweeper: asyncio.Task[None] | None = None
        self.visitors = Visitors(limits or ChatLimits())
        self.sender = ChatSender(self.visitors, clock=clock)
        self.socket = ChatSocket(
            self.sender,
            sink,
            history,
            events,
            topics=topics,
            queue=queue,
            origins=origins,
            clock=clock,
        )

    def routes(self, security_headers: Mapping[str, str]) -> list[ChatRoute]:
        """The public routes (see `adapters.webchat.routes.chat_routes`)."""
        return chat_routes(self.socket, security_headers)

    def prechat(self, interaction_id: int) -> PreChat | None:
        """What the visitor of a held chat gave in the pre-chat form (name, email, topic,
        language), or None when the chat is not held (any more)."""
        session = self.visitors.for_interaction(interaction_id)
        return None if session is None else session.prechat

    async def sweep(self) -> int:
        """Forget chats whose visitor left (no tab for `resume_seconds`); how many.

        An open one is ended for the agent side with `visitor_ended(id, None, None)`."""
        gone = self.visitors.expire(self.clock())
        for session in gone:
            if session.is_open and session.interaction_id is not None:
                try:
                    await self.events.visitor_ended(session.interaction_id, None, None)
                except Exception:
                    log.exception("chat %s: visitor_ended failed", session.chat_id)
        return len(gone)

    async def close_sockets(self, _app: web.Application | None = None) -> None:
        """Close every visitor socket (an `on_shutdown` hook: the widgets reconnect)."""
        await self.sender.close_all()

    def start(self) -> None:
        """Sweep for departed visitors from now on (idempotent)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="webchat-sweeper")

    async def stop(self) -> None:
        """Stop sweeping and close every visitor socket (the pair of `start`)."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await self.sender.close_all()

    async def component(self, _app: web.Application) -> AsyncIterator[None]:
        """`start` and `stop` as an aiohttp cleanup context."""
        self.start()
        yield
        await self.stop()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("web chat sweep failed")
