"""The notifier: pushes JSON messages to connected agent and supervisor browsers.

Each client has its own bounded send queue drained by its own writer task, so the
bus (or any producer) only ever does a `put_nowait`: a slow or stuck browser fills
its own queue and is dropped, and never delays anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 256
CLOSE_TOO_SLOW = 4008  # private-use close code: "you fell behind; reconnect"
_ids = itertools.count(1)


@dataclass(eq=False)
class Client:
    """One connected browser tab."""

    ws: web.WebSocketResponse
    user_id: int
    username: str
    role: str
    kind: str  # "agent" or "supervisor"
    queue: asyncio.Queue[str | None]
    id: int = field(default_factory=lambda: next(_ids))
    dropped: bool = False
    close_code: int | None = None  # set when the server ends the socket


class Hub:
    """Registry of connected clients and fan-out of messages to them."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._agents: dict[int, set[Client]] = defaultdict(set)
        self._supervisors: set[Client] = set()
        self.sent = 0
        self.dropped_clients = 0

    def __len__(self) -> int:
        return sum(len(c) for c in self._agents.values()) + len(self._supervisors)

    def connect(
        self, ws: web.WebSocketResponse, *, user_id: int, username: str, role: str, kind: str
    ) -> Client:
        """Register a client; the caller runs `writer(client)` until it ends."""
        client = Client(ws, user_id, username, role, kind, asyncio.Queue(self.queue_size))
        if kind == "supervisor":
            self._supervisors.add(client)
        else:
            self._agents[user_id].add(client)
        return client

    def disconnect(self, client: Client) -> None:
        """Forget a client (idempotent)."""
        if client.kind == "supervisor":
            self._supervisors.discard(client)
        else:
            clients = self._agents.get(client.user_id)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self._agents[client.user_id]
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(None)  # wakes the writer so it can finish

    def supervisors_connected(self) -> int:
        """How many wallboards are open."""
        return len(self._supervisors)

    def agent_connected(self, user_id: int) -> bool:
        """True when the agent has at least one desktop open."""
        return bool(self._agents.get(user_id))

    def to_agent(self, user_id: int, message: dict[str, Any]) -> int:
        """Send to every desktop the agent has open; how many got it."""
        return self._fan_out(self._agents.get(user_id, ()), message)

    def to_supervisors(self, message: dict[str, Any]) -> int:
        """Send to every wallboard."""
        return self._fan_out(self._supervisors, message)

    def to_client(self, client: Client, message: dict[str, Any]) -> int:
        """Send to one client (a reply)."""
        return self._fan_out((client,), message)

    def _fan_out(self, clients: Iterable[Client], message: dict[str, Any]) -> int:
        frame = json.dumps(message, separators=(",", ":"), default=str)
        delivered = 0
        for client in list(clients):
            if client.dropped:
                continue
            try:
                client.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(client)
            else:
                delivered += 1
        self.sent += delivered
        return delivered

    def end_user(self, user_id: int, *, code: int = 4001) -> int:
        """Close every socket of a user (logged out, disabled); how many."""
        clients = list(self._agents.get(user_id, ()))
        clients += [c for c in self._supervisors if c.user_id == user_id]
        for client in clients:
            client.close_code = code
            self.disconnect(client)
        return len(clients)

    def _drop(self, client: Client) -> None:
        client.dropped = True
        client.close_code = CLOSE_TOO_SLOW
        self.dropped_clients += 1
        log.warning(
            "dropping %s websocket of %s: %d messages behind",
            client.kind,
            client.username,
            client.queue.qsize(),
        )
        # Empty the queue so the writer sees the sentinel next and closes the socket.
        while not client.queue.empty():
            client.queue.get_nowait()
        self.disconnect(client)

    async def writer(self, client: Client) -> None:
        """Drain the client's queue into its socket until disconnected or dropped."""
        try:
            while True:
                frame = await client.queue.get()
                if frame is None:
                    break
                await client.ws.send_str(frame)
        except (ConnectionResetError, RuntimeError):
            pass  # the socket went away under us; the reader notices too
        finally:
            self.disconnect(client)
            if client.close_code is not None and not client.ws.closed:
                reason = b"too slow" if client.dropped else b"session ended"
                with contextlib.suppress(Exception):
                    await client.ws.close(code=client.close_code, message=reason)

    async def close_all(self) -> None:
        """Close every socket (shutdown)."""
        clients = [c for cs in self._agents.values() for c in cs] + list(self._supervisors)
        for client in clients:
            self.disconnect(client)
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, message=b"server shutdown")
