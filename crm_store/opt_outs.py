"""Addresses that asked not to be contacted on a channel (SMS STOP, do-not-call)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store._common import clean_text
from crm_store.errors import InvalidData
from crm_store.models import CHANNELS, OptOut, utcnow


def _key(channel: str, address: str) -> tuple[str, str]:
    if channel not in CHANNELS:
        raise InvalidData(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    return channel, clean_text(address, "address", 320, required=True) or ""


async def set_opted_out(
    session: AsyncSession,
    channel: str,
    address: str,
    opted_out: bool,
    *,
    source: str | None = None,
    at: datetime | None = None,
) -> None:
    """Record an opt-out (or its end: START)."""
    key = _key(channel, address)
    existing = await session.get(OptOut, key)
    if not opted_out:
        if existing is not None:
            await session.execute(
                delete(OptOut).where(OptOut.channel == key[0], OptOut.address == key[1])
            )
        return
    if existing is None:
        session.add(
            OptOut(
                channel=key[0],
                address=key[1],
                opted_out_at=at or utcnow(),
                source=clean_text(source, "source", 64),
            )
        )
    await session.flush()


async def is_opted_out(session: AsyncSession, channel: str, address: str) -> bool:
    """Has `address` asked not to be contacted on `channel`?"""
    key = _key(channel, address)
    return await session.get(OptOut, key) is not None


async def opted_out_among(session: AsyncSession, channel: str, addresses: list[str]) -> set[str]:
    """Which of `addresses` opted out on `channel` (for a pop or a campaign list)."""
    if not addresses:
        return set()
    rows = await session.scalars(
        select(OptOut.address).where(OptOut.channel == channel, OptOut.address.in_(addresses))
    )
    return set(rows.all())
