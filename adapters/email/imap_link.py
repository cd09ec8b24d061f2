"""One IMAP connection (aioimaplib) whose every wait also ends when the connection goes.

aioimaplib leaves a command waiting for ever when the server closes the socket: only its
connection-lost callback tells. So each command here races that callback and a timeout,
and a lost connection is an `ImapLinkError` at once, not a hang.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar

import aioimaplib

T = TypeVar("T")


class ImapLinkError(Exception):
    """The connection was lost, or the server refused what the session needs."""


class ImapLink:
    """An aioimaplib client, and whether its connection is gone."""

    def __init__(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None, timeout: float
    ) -> None:
        self.lost = asyncio.Event()
        self.timeout = timeout
        # IMAP4 with a context rather than IMAP4_SSL: only IMAP4 passes the
        # connection-lost callback on.
        self.client: Any = aioimaplib.IMAP4(
            host=host,
            port=port,
            timeout=timeout,
            conn_lost_cb=lambda _exc: self.lost.set(),
            ssl_context=ssl_context,
        )

    async def call(self, awaitable: Awaitable[T], *, bounded: bool = True) -> T:
        """Await a command; ImapLinkError when the connection is lost first, TimeoutError
        after the link's timeout (unless not `bounded`: the command times out itself)."""
        if self.lost.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started: no "never awaited" warning
            raise ImapLinkError("connection lost")
        work = asyncio.ensure_future(asyncio.wait_for(awaitable, self.timeout if bounded else None))
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not work.done():
                work.cancel()
        if work.done() and not work.cancelled():
            return work.result()
        raise ImapLinkError("connection lost")

    async def sleep(self, seconds: float) -> None:
        """Wait, unless the connection is lost first (ImapLinkError)."""
        try:
            await asyncio.wait_for(self.lost.wait(), seconds)
        except TimeoutError:
            return
        raise ImapLinkError("connection lost")

    def close(self) -> None:
        """Drop the connection and aioimaplib's pending work."""
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()
        for task in (*self.client.tasks, *self.client.protocol.tasks):
            task.cancel()


def expect_ok(response: Any, command: str) -> None:
    """Raise ImapLinkError unless the command's tagged reply was OK."""
    if response.result != "OK":
        text = bytes(response.lines[-1]).decode(errors="replace") if response.lines else ""
        raise ImapLinkError(f"{command} refused: {response.result} {text}".strip())
