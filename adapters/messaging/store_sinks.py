"""The CRM store behind the small ports channel adapters write to: providers' delivery
receipts (`message_status`) and customers' opt-outs. Each change a desktop shows is
published on the bus."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.messaging.events import MessageStatusChanged
from crm_store import messages, opt_outs
from routing.ports import EventPublisher

# Providers' words for a message's state, as the store keeps it.
_STATUS: Final = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class StoreReceipts:
    """Delivery receipts of `channel` recorded on the stored messages."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventPublisher,
        channel: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessionmaker, self.bus, self.channel, self.clock = sessionmaker, bus, channel, clock

    async def message_status(
        self, provider_id: str, status: str, error: str | None, at: float
    ) -> None:
        """Record the provider's status; an unknown message or status changes nothing."""
        kept = _STATUS.get(status)
        if kept is None:
            return
        async with self.sessionmaker.begin() as session:
            row = await messages.record_status(
                session, self.channel, provider_id, status=kept, error=error, at=_at(at)
            )
            changed = None if row is None else (row.interaction_id, row.id, row.status)
        if changed is not None:
            self.bus.publish(MessageStatusChanged(*changed, error, self.clock()))


class StoreOptOuts:
    """Customers' opt-outs kept in the store (honoured by every sender and dialer)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def set_opted_out(
        self, channel: str, address: str, opted_out: bool, at: float, word: str
    ) -> None:
        async with self.sessionmaker.begin() as session:
            await opt_outs.set_opted_out(
                session, channel, address, opted_out, source=word[:64], at=_at(at)
            )

    async def is_opted_out(self, channel: str, address: str) -> bool:
        async with self.sessionmaker() as session:
            return await opt_outs.is_opted_out(session, channel, address)
