"""The store writer through the async engine, on a SQLite file and on PostgreSQL: many
contacts opened at once, each under its own id with its customer, their updates and
contact events in the order made; a held contact written under the daemon's id, and the
store's next id after it (the PostgreSQL sequence moved past it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from crm_store import customers
from crm_store.models import ContactEvent, Interaction
from crm_store.write_batch import NewInteraction, apply_batch
from routing.intake import open_contact
from routing.store_writer import StoreWriter
from tests.integration.conftest import Store

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


async def test_contacts_opened_at_once_each_get_their_id_and_updates(store: Store) -> None:
    async with store.sessionmaker.begin() as db:
        known = await customers.create_customer(
            db, name="Zoë Martin", tier="gold", phones=["+44 20 7946 0018"], region="GB"
        )
    writer = StoreWriter(store.sessionmaker, limit=10, batch_max=7)
    await writer.start()

    async def call(n: int) -> int:
        opened = await open_contact(
            store.sessionmaker,
            channel="voice",
            address="020 7946 0018" if n == 0 else f"+4477009{n:05d}",
            region="GB",
            address_kind="phone",
            external_id=f"call.{n}",
            at=AT.timestamp(),
            outbox=writer,
        )
        assert opened.customer_id == (known.id if n == 0 else None)
        await writer.update(opened.interaction_id, {"queue": f"q{n}"})
        writer.events_nowait(
            [{"interaction_id": opened.interaction_id, "kind": "queued", "at": AT}]
        )
        return opened.interaction_id

    ids = await asyncio.wait_for(asyncio.gather(*(call(n) for n in range(40))), 30)
    await writer.flush()
    assert len(set(ids)) == 40
    assert writer.stats.waits > 0  # ten at a time: the others waited for room
    async with store.sessionmaker() as db:
        rows = {r.external_id: (r.id, r.queue) for r in await db.scalars(select(Interaction))}
        logged = list(await db.scalars(select(ContactEvent.interaction_id)))
    assert rows == {f"call.{n}": (i, f"q{n}") for n, i in enumerate(ids)}
    assert sorted(i for i in logged if i is not None) == sorted(ids) and None not in logged
    await writer.stop()


async def test_a_held_id_is_kept_and_the_next_one_follows_it(store: Store) -> None:
    row = {
        "channel": "voice",
        "direction": "inbound",
        "external_id": "held",
        "address": None,
        "started_at": AT,
        "queue": None,
        "ivr_path": None,
        "ivr_inputs": None,
    }
    async with store.sessionmaker.begin() as db:
        first = await db.run_sync(
            lambda s: apply_batch(s.connection(), [NewInteraction(dict(row), id=1000)])
        )
    assert first.results[0] is not None and first.max_id == 1000
    async with store.sessionmaker.begin() as db:
        after = await db.run_sync(
            lambda s: apply_batch(s.connection(), [NewInteraction({**row, "external_id": "next"})])
        )
    assert after.max_id == 1001
