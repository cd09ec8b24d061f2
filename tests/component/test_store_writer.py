"""The store writer (routing.store_writer) on a real SQLite file: producers wait for room
when its queue is full and it says it is saturated; a wrong write is given up alone; a
flush returns while the store is down, and everything is written once it is back."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import select

from crm_store.models import Interaction
from routing.store_writer import StoreWriter
from tests.component.test_store_writer_ids import (  # the fixture is used by name
    Store,
    _open,
    store,  # noqa: F401
)


async def test_producers_wait_for_room_and_saturation_is_said(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    opened = await _open(store, "call")
    states: list[tuple[bool, str]] = []
    writer = StoreWriter(
        store.sessionmaker,
        fast=store.fast,
        limit=5,
        high_water=4,
        on_state=lambda saturated, detail: states.append((saturated, detail)),
    )
    for n in range(5):
        writer.update_nowait(opened.interaction_id, {"queue": f"q{n}"})
    assert writer.depth == 5 and writer.saturated
    assert states == [(True, "4 writes queued (high water 4, limit 5)")]
    waiting = asyncio.create_task(writer.update(opened.interaction_id, {"queue": "last"}))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # back-pressure: the producer waits, nothing is refused
    await writer.start()
    await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(writer.drained(), 5)
    assert not writer.saturated and states[-1][0] is False
    assert writer.stats.waits == 1 and writer.stats.wait_seconds > 0.05
    assert writer.stats.ops_written == 6 and writer.lost_writes == 0
    async with store.sessionmaker() as db:
        assert await db.scalar(select(Interaction.queue)) == "last"  # in the order made
    await writer.stop()


async def test_a_wrong_write_is_given_up_alone(
    store: Store,  # noqa: F811
) -> None:
    first = await _open(store, "first")
    second = await _open(store, "second")
    outbox = store.outbox
    outbox.update_nowait(first.interaction_id, {"queue": "support"})
    outbox.update_nowait(first.interaction_id, {"agent_id": 999})  # no such user
    outbox.update_nowait(second.interaction_id, {"queue": "billing"})
    await asyncio.wait_for(outbox.drained(), 5)
    assert outbox.lost_writes == 1
    async with store.sessionmaker() as db:
        rows = {r.external_id: (r.queue, r.agent_id) for r in await db.scalars(select(Interaction))}
    assert rows == {"first": ("support", None), "second": ("billing", None)}


async def test_a_flush_returns_while_the_store_is_down_and_it_is_written_when_back(
    store: Store,  # noqa: F811
) -> None:
    first = await _open(store, "first")
    lock = sqlite3.connect(store.path, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        store.outbox.update_nowait(first.interaction_id, {"queue": "support"})
        await asyncio.wait_for(store.outbox.flush(), 5)
        assert store.outbox.down and store.outbox.holding
        held = await asyncio.wait_for(_open(store, "held"), 5)
        assert held.held and held.interaction_id == first.interaction_id + 1
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await asyncio.wait_for(store.outbox.drained(), 10)
    assert not store.outbox.holding
    async with store.sessionmaker() as db:
        rows = {r.external_id: (r.id, r.queue) for r in await db.scalars(select(Interaction))}
    assert rows == {"first": (first.interaction_id, "support"), "held": (held.interaction_id, None)}
