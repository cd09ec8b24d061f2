"""The notifier: pushes JSON messages to connected agent and supervisor browsers.

Each client has its own bounded send queue drained by its own writer task, so the
bus (or any producer) only ever does a `put_nowait`: a slow or stuck browser fills
its own queue and is dropped, and never delays anyone else. The queue is bounded by
bytes as well as by count (256 screen pops of 64 kB would otherwise be 16 MB held for
one tab that stopped reading), and each user keeps a few sockets of each kind at most.
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
DEFAULT_QUEUE_BYTES = 1024 * 1024
DEFAULT_SOCKETS_PER_USER = 5
# A frame the browser has not taken in this long means it stopped reading.
DEFAULT_SEND_TIMEOUT = 10.0
CLOSE_SECONDS = 2.0
CLOSE_TOO_SLOW = 4008  # private-use close code: "you fell behind; reconnect"
CLOSE_REPLACED = 4009  # "you opened more tabs than allowed; this, the oldest, made way"
_REASONS = {
    CLOSE_TOO_SLOW: b"too slow",
    CLOSE_REPLACED: b"replaced by a newer tab",
}
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
    # Bytes of the frames queued or being sent (JSON is ASCII: characters are bytes).
    queued_bytes: int = 0


class Hub:
    """Registry of connected clients and fan-out of messages to them."""

    def __init__(
        self,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        *,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        sockets_per_user: int = DEFAULT_SOCKETS_PER_USER,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        if queue_size < 1 or queue_bytes < 1 or sockets_per_user < 1 or send_timeout <= 0:
            raise ValueError("websocket hub limits must be positive")
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.sockets_per_user = sockets_per_user
        self.send_timeout = send_timeout
        self._agents: dict[int, set[Client]] = defaultdict(set)
        self._supervisors: set[Client] = set()
        self.sent = 0
        self.dropped_clients = 0
        self.replaced_clients = 0

    def __len__(self) -> int:
        return sum(len(c) for c in self._agents.values()) + len(self._supervisors)

    def connect(
        self, ws: web.WebSocketResponse, *, user_id: int, username: str, role: str, kind: str
    ) -> Client:
        """Register a client; the caller runs `writer(client)` until it ends.

        Past `sockets_per_user` sockets of this kind, the user's oldest is closed
        (`CLOSE_REPLACED`): a new tab works, a forgotten one makes way.
        """
        same = self.clients(user_id, kind)
        for old in same[: max(0, len(same) - self.sockets_per_user + 1)]:
            log.info("closing the oldest %s websocket of %s: too many open", kind, username)
            old.close_code = CLOSE_REPLACED
            self.replaced_clients += 1
            self.disconnect(old)
        client = Client(ws, user_id, username, role, kind, asyncio.Queue(self.queue_size))
        if kind == "supervisor":
            self._supervisors.add(client)
        else:
            self._agents[user_id].add(client)
        return client

    def clients(self, user_id: int, kind: str) -> list[Client]:
        """The user's connected clients of `kind`, oldest first."""
        pool = self._supervisors if kind == "supervisor" else self._agents.get(user_id, set())
        return sorted((c for c in pool if c.user_id == user_id), key=lambda c: c.id)

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
        size = len(frame)  # ensure_ascii: one byte per character
        delivered = 0
        for client in list(clients):
            if client.dropped:
                continue
            if client.queued_bytes + size > self.queue_bytes:
                self._drop(client, f"{client.queued_bytes} bytes behind")
                continue
            try:
                client.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(client, f"{client.queue.qsize()} messages behind")
            else:
                client.queued_bytes += size
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

    def _drop(self, client: Client, why: str) -> None:
        client.dropped = True
        client.close_code = CLOSE_TOO_SLOW
        self.dropped_clients += 1
        log.warning("dropping %s websocket of %s: %s", client.kind, client.username, why)
        # Empty the queue so the memory goes now and the writer sees the sentinel next.
        while not client.queue.empty():
            frame = client.queue.get_nowait()
            if frame is not None:
                client.queued_bytes -= len(frame)
        self.disconnect(client)

    async def writer(self, client: Client) -> None:
        """Drain the client's queue into its socket until disconnected or dropped."""
        try:
            while True:
                frame = await client.queue.get()
                if frame is None:
                    break
                try:
                    async with asyncio.timeout(self.send_timeout):
                        await client.ws.send_str(frame)
                finally:
                    client.queued_bytes -= len(frame)
        except TimeoutError:
            # The browser took nothing for send_timeout: it stopped reading.
            if not client.dropped:
                self._drop(client, f"nothing read for {self.send_timeout:g} s")
        except (ConnectionResetError, RuntimeError):
            pass  # the socket went away under us; the reader notices too
        finally:
            self.disconnect(client)
            if client.close_code is not None and not client.ws.closed:
                reason = _REASONS.get(client.close_code, b"session ended")
                # Bounded: to a peer that does not read, even the close frame cannot be
                # sent; on time-out aiohttp closes the transport, which frees its buffers.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_SECONDS):
                        await client.ws.close(code=client.close_code, message=reason)

    async def close_all(self) -> None:
        """Close every socket (shutdown)."""
        clients = [c for cs in self._agents.values() for c in cs] + list(self._supervisors)
        for client in clients:
            self.disconnect(client)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await client.ws.close(code=1001, message=b"server shutdown")
