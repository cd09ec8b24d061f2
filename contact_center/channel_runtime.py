"""What every text channel's wiring shares: a started adapter, and the ports webhooks and
sockets write to before the daemon's components exist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.messaging.intake import MessageIntake
from adapters.messaging.model import InboundMessage, MessageSender, Received
from adapters.messaging.store_sinks import StoreOptOuts, StoreReceipts
from routing.outbox import StoreUnavailable

if TYPE_CHECKING:
    from contact_center.app import Daemon


@dataclass
class RunningChannel:
    """A started channel adapter: its way out, and how it stops."""

    sender: MessageSender
    stop: Callable[[], Awaitable[None]]


AdapterStart = Callable[["Daemon", MessageIntake], Awaitable[RunningChannel]]


class LatePorts:
    """The ports webhooks write to, before the components they reach have started (routes
    are fixed before start-up): a request that comes too early gets 503, is retried."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _store(self) -> async_sessionmaker[AsyncSession]:
        if self.daemon.sessionmaker is None or self.daemon.messages is None:
            raise StoreUnavailable("the daemon is starting; try again shortly")
        return self.daemon.sessionmaker

    async def receive(self, message: InboundMessage) -> Received:
        self._store()
        assert self.daemon.messages is not None
        return await self.daemon.messages.receive(message)

    async def message_status(
        self, provider_id: str, status: str, error: str | None, at: float
    ) -> None:
        receipts = StoreReceipts(self._store(), self.daemon.bus, "sms")
        await receipts.message_status(provider_id, status, error, at)

    async def set_opted_out(
        self, channel: str, address: str, opted_out: bool, at: float, word: str
    ) -> None:
        await StoreOptOuts(self._store()).set_opted_out(channel, address, opted_out, at, word)

    async def is_opted_out(self, channel: str, address: str) -> bool:
        return await StoreOptOuts(self._store()).is_opted_out(channel, address)
