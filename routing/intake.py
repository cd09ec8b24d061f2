"""Opening a contact: the interaction record and who the customer is.

Shared by every entry point (the IVR on a real Asterisk, the simulated PBX, the digital
channels) so a contact is recorded the same way whichever door it came through.

With the daemon's store writer (`outbox`, routing.store_writer: one per database), the
record and every update go through its bounded queue: a caller waits for room when the
store falls behind, and is never lost because the store cannot be written (SQLite locked,
PostgreSQL down): the contact then gets its interaction id from the daemon, is served and
routed from memory, and its record is written, with every update made meanwhile, once
the store takes writes again. Data errors (an unknown channel, a customer id that does
not exist) still raise: only an unavailable store is held. Without a writer (tools,
tests) the record is written directly.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import customers, interactions
from crm_store.errors import InvalidData
from crm_store.fast_intake import SqliteIntake
from crm_store.phones import bounded_caller_id, clean_name
from crm_store.write_batch import clean_update
from routing.channels import AddressKind
from routing.outbox import (
    OpenedContact,
    StoreOutbox,
    StoreUnavailable,
    find_customer,
    store_unavailable,
)

__all__ = [
    "OpenedContact",
    "StoreOutbox",
    "StoreUnavailable",
    "open_contact",
    "store_unavailable",
    "update_contact",
]

log = logging.getLogger(__name__)

_MAX_EXTERNAL_ID = 255  # interactions.external_id


async def open_contact(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    channel: str,
    address: str | None,
    region: str,
    address_kind: AddressKind,
    external_id: str | None = None,
    queue: str | None = None,
    direction: str = "inbound",
    at: float | None = None,
    ivr_path: list[Any] | None = None,
    ivr_inputs: dict[str, Any] | None = None,
    customer_id: int | None = None,
    fast: SqliteIntake | None = None,
    outbox: StoreOutbox | None = None,
    address_name: str | None = None,
) -> OpenedContact:
    """Record a new interaction, linked to the customer owning `address` when known.

    With `outbox` (the daemon's store writer) the contact is written by it, in a batch,
    or held when the store cannot be written (`held`); `fast` is then its business.
    Without, with `fast` (SQLite), the look-up and the insert are one call on a dedicated
    thread; otherwise they go through the ORM. Same rows either way.
    `address_kind` is the channel's (`routing.channels.ChannelSpec`): how its address
    finds the customer.
    """
    if address_kind == "phone":
        # Whatever the network put in the caller id: bounded, no control characters.
        address = bounded_caller_id(address)
    external_id = _bounded(external_id, _MAX_EXTERNAL_ID)
    started = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
    kind = address_kind
    row = interactions.validated_new_row(
        channel=channel,
        direction=direction,
        external_id=external_id,
        address=address,
        started_at=started,
        queue=queue,
        ivr_path=ivr_path,
        ivr_inputs=ivr_inputs,
        address_name=clean_name(address_name),
    )
    if outbox is not None:
        value = _lookup_value(kind, row["address"], region) if customer_id is None else None
        return await outbox.open_contact(
            row, kind=kind, value=value, customer_id=customer_id, region=region
        )
    return await _store_contact(
        sessionmaker, row, kind=kind, region=region, customer_id=customer_id, fast=fast
    )


def _lookup_value(kind: str, address: str | None, region: str) -> str | None:
    """The address as its contact point is stored; None when nobody can own it."""
    if not address:
        return None
    try:
        return customers.normalize_contact(kind, address, region)
    except InvalidData:
        return None  # "anonymous", a withheld number: nobody to find


async def _store_contact(
    sessionmaker: async_sessionmaker[AsyncSession],
    row: dict[str, Any],
    *,
    kind: str,
    region: str,
    customer_id: int | None,
    fast: SqliteIntake | None,
) -> OpenedContact:
    address = row["address"]
    if fast is not None:
        value = _lookup_value(kind, address, region) if customer_id is None else None
        new_id, found_id, tier = await fast.open_contact(
            kind=kind, value=value, customer_id=customer_id, row=row
        )
        return OpenedContact(new_id, found_id, tier)
    async with sessionmaker.begin() as session:
        customer = await find_customer(session, kind, address, region, customer_id)
        ix = await interactions.record_interaction(
            session, customer_id=customer.id if customer else None, **row
        )
        return OpenedContact(
            ix.id, customer.id if customer else None, customer.tier if customer else None
        )


async def update_contact(
    sessionmaker: async_sessionmaker[AsyncSession],
    interaction_id: int,
    *,
    outbox: StoreOutbox | None = None,
    **fields: Any,
) -> None:
    """Set fields on an interaction (checked as crm_store.interactions.update_interaction
    checks them). With `outbox`, queued behind the record itself (waiting for room when
    the writer is full) and written in order, or held while the store cannot take it."""
    if outbox is not None:
        await outbox.update(interaction_id, clean_update(fields))
        return
    async with sessionmaker.begin() as db:
        await interactions.update_interaction(db, interaction_id, **fields)


def _bounded(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = "".join(ch for ch in value[: limit * 2] if ch.isprintable()).strip()
    return cleaned[:limit] or None
