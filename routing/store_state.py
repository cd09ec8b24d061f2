"""What the store writer tells its callers, and the reads it makes for held contacts.

Apart from routing.store_writer so the intake, the IVR and the web boundary can name these
without the writer itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import customers, outage
from crm_store.errors import StoreError
from crm_store.fast_intake import WritesHeld
from crm_store.models import Interaction
from crm_store.write_batch import InteractionUpdate, NewInteraction, Op

# A read done for a held contact (who is calling?) must not keep the caller waiting.
HELD_READ_SECONDS = 1.0


@dataclass(frozen=True)
class OpenedContact:
    """The stored interaction, and the customer found for its address (if any)."""

    interaction_id: int
    customer_id: int | None
    tier: str | None
    held: bool = False  # the record waits in the writer's queue (the store was unavailable)


@dataclass
class WriterStats:
    """What /metrics shows of the store writer (counters since start)."""

    batches: int = 0
    ops_written: int = 0
    retries: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    max_depth: int = 0
    rekeyed: int = 0


def saturated(depth: int, high_water: int, *, was: bool) -> bool:
    """Whether a queue `depth` deep is saturated: from the high-water mark on, and, once
    it is, until it is back under half of it (so it does not flap at the mark)."""
    return depth >= high_water or (was and depth >= high_water // 2)


def interaction_of(op: Op) -> int | None:
    """The interaction a queued write is about (the first one, for contact events)."""
    if isinstance(op, NewInteraction):
        return op.id
    if isinstance(op, InteractionUpdate):
        return op.interaction_id
    return next((r.get("interaction_id") for r in op.rows), None)


class StoreUnavailable(StoreError):
    """The store cannot take the write and nothing can hold it."""

    error_id = "database.unavailable"


def store_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached or written now (locked, down,
    pool exhausted), as opposed to a write that is wrong in itself."""
    # WritesHeld: the SQLite intake is holding; TimeoutError: a held read gave up.
    return isinstance(exc, WritesHeld | TimeoutError) or outage.is_unavailable(exc)


def describe(exc: BaseException) -> str:
    """The driver's error behind `exc`, for one log line."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {orig or exc}"


async def find_customer(
    session: AsyncSession, kind: str, address: str | None, region: str, customer_id: int | None
) -> Any:
    """The customer given by id, or owning `address`; None when there is none."""
    if customer_id is not None:
        return await customers.get_customer(session, customer_id)
    if address:
        return await customers.find_customer_by_contact(session, kind, address, region)
    return None


async def held_customer(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: str,
    address: str | None,
    region: str,
    customer_id: int | None,
) -> tuple[int | None, str | None]:
    """The customer of a held contact, if the store can still be read (a write lock lets
    readers in); an unknown caller otherwise."""
    try:
        async with asyncio.timeout(HELD_READ_SECONDS), sessionmaker() as session:
            customer = await find_customer(session, kind, address, region, customer_id)
    except StoreError:
        raise  # a customer id that does not exist is the caller's mistake
    except Exception:
        # Served as an unknown caller; a given customer id is kept as it was asked.
        return customer_id, None
    return (customer.id, customer.tier) if customer is not None else (None, None)


async def stored_max_id(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """The highest interaction id in the store."""
    async with asyncio.timeout(HELD_READ_SECONDS), sessionmaker() as session:
        return int(await session.scalar(select(func.max(Interaction.id))) or 0)
