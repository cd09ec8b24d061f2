"""Opening a contact: the interaction record and who the customer is.

Shared by every entry point (the IVR on a real Asterisk, the simulated PBX, the digital
channels) so a contact is recorded the same way whichever door it came through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import customers, interactions
from crm_store.errors import InvalidData
from crm_store.fast_intake import SqliteIntake


@dataclass(frozen=True)
class OpenedContact:
    """The stored interaction, and the customer found for its address (if any)."""

    interaction_id: int
    customer_id: int | None
    tier: str | None


async def open_contact(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    channel: str,
    address: str | None,
    region: str,
    external_id: str | None = None,
    queue: str | None = None,
    direction: str = "inbound",
    at: float | None = None,
    ivr_path: list[Any] | None = None,
    ivr_inputs: dict[str, Any] | None = None,
    customer_id: int | None = None,
    fast: SqliteIntake | None = None,
) -> OpenedContact:
    """Record a new interaction, linked to the customer owning `address` when known.

    With `fast` (SQLite), the look-up and the insert are one call on a dedicated thread;
    otherwise they go through the ORM. Same rows either way.
    """
    started = datetime.fromtimestamp(at, UTC) if at is not None else None
    kind = {"voice": "phone", "sms": "phone", "email": "email"}.get(channel, "chat")
    if fast is not None:
        value = None
        if address and customer_id is None:
            try:
                value = customers.normalize_contact(kind, address, region)
            except InvalidData:
                value = None  # "anonymous", a withheld number: nobody to find
        row = interactions.validated_new_row(
            channel=channel,
            direction=direction,
            external_id=external_id,
            address=address,
            started_at=started,
            queue=queue,
            ivr_path=ivr_path,
            ivr_inputs=ivr_inputs,
        )
        new_id, found_id, tier = await fast.open_contact(
            kind=kind, value=value, customer_id=customer_id, row=row
        )
        return OpenedContact(new_id, found_id, tier)
    async with sessionmaker.begin() as session:
        customer = None
        if customer_id is not None:
            customer = await customers.get_customer(session, customer_id)
        elif address:
            kind = {"voice": "phone", "sms": "phone", "email": "email"}.get(channel, "chat")
            customer = await customers.find_customer_by_contact(session, kind, address, region)
        ix = await interactions.record_interaction(
            session,
            channel=channel,
            direction=direction,
            customer_id=customer.id if customer else None,
            external_id=external_id,
            address=address,
            started_at=started,
            queue=queue,
            ivr_path=ivr_path,
            ivr_inputs=ivr_inputs,
        )
        return OpenedContact(
            ix.id, customer.id if customer else None, customer.tier if customer else None
        )
