"""Two calls never share an interaction id, however the store's lock comes and goes
(issue 15: under load, "interaction id N was taken while the store was away": a call
held with the id after the highest stored, while another call's insert was still waiting
for SQLite's write lock; that insert then got the same id, and one of the two calls was
stored under an id its caller never knew).

The store is a real SQLite file, its write lock held by a second connection, then let go
while one call's insert waits for it and another call has just been opened."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from crm_store import migrate
from crm_store.fast_intake import SqliteIntake
from crm_store.models import Interaction
from routing.intake import StoreOutbox, open_contact
from routing.writer import InteractionWriter

# How long the daemon's ORM connections wait for the lock here (the daemon's is 5 s).
ORM_BUSY_MS = 300


@dataclass
class Store:
    path: Path
    sessionmaker: async_sessionmaker[AsyncSession]
    fast: SqliteIntake
    outbox: StoreOutbox


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    path = tmp_path / "cc.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate.upgrade(url)
    engine = create_async_engine(url)

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={ORM_BUSY_MS}")
        cursor.close()

    event.listen(engine.sync_engine, "connect", pragmas)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    fast = await SqliteIntake.open(url)
    outbox = StoreOutbox(sessionmaker, fast=fast)
    await outbox.start()
    try:
        yield Store(path, sessionmaker, fast, outbox)
    finally:
        await outbox.stop()
        await fast.close()
        await engine.dispose()


async def _open(store: Store, external_id: str) -> Any:
    return await open_contact(
        store.sessionmaker,
        channel="voice",
        address="+447700900123",
        region="GB",
        address_kind="phone",
        external_id=external_id,
        fast=store.fast,
        outbox=store.outbox,
    )


async def test_a_call_opened_while_another_waits_for_the_lock_gets_its_own_id(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    first = await _open(store, "before")
    writer = InteractionWriter(store.sessionmaker, store.outbox)
    writer.start()
    caplog.set_level(logging.INFO)
    lock = sqlite3.connect(store.path, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        # Routing updates the first call: that write waits for the lock, and gives up.
        writer.write(first.interaction_id, queue="support")
        await asyncio.sleep(0.1)
        # A second call arrives: its insert waits for the lock too...
        waiting = asyncio.create_task(_open(store, "waiting"))
        await asyncio.sleep(0.4)
        # ...and a third, once the store has been seen failing.
        third = await asyncio.wait_for(_open(store, "third"), 5)
    finally:
        # The lock goes while the second call's insert still waits for it.
        lock.execute("ROLLBACK")
        lock.close()
    second = await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(store.outbox.drained(), 10)
    await writer.stop()

    ids = [first.interaction_id, second.interaction_id, third.interaction_id]
    assert len(set(ids)) == 3, f"two calls were given one id: {ids}"
    async with store.sessionmaker() as db:
        rows = {r.external_id: r for r in await db.scalars(select(Interaction))}
    # Each call is stored under the id its caller (and routing, and Asterisk) knows.
    assert {name: row.id for name, row in rows.items()} == {
        "before": first.interaction_id,
        "waiting": second.interaction_id,
        "third": third.interaction_id,
    }
    assert rows["before"].queue == "support"
    assert not [r for r in caplog.records if "was taken" in r.getMessage()]


async def test_many_calls_through_a_flickering_lock_never_share_an_id(store: Store) -> None:
    stop = asyncio.Event()

    async def flicker() -> None:
        # Another program takes the write lock for longer than the busy time-outs, and
        # lets it go, again and again.
        lock = sqlite3.connect(store.path, isolation_level=None)
        try:
            while not stop.is_set():
                lock.execute("BEGIN IMMEDIATE")
                await asyncio.sleep(1.2)
                lock.execute("ROLLBACK")
                await asyncio.sleep(0.05)
        finally:
            lock.close()

    async def call(n: int) -> Any:
        await asyncio.sleep(n * 0.01)
        opened = await _open(store, f"call.{n}")
        await store.outbox.update(opened.interaction_id, {"queue": f"q{n}"})
        return opened

    locker = asyncio.create_task(flicker())
    try:
        opened = await asyncio.wait_for(asyncio.gather(*(call(n) for n in range(200))), 30)
    finally:
        stop.set()
        await locker
    await asyncio.wait_for(store.outbox.drained(), 20)
    ids = [o.interaction_id for o in opened]
    assert len(set(ids)) == len(ids)
    async with store.sessionmaker() as db:
        rows = {r.external_id: (r.id, r.queue) for r in await db.scalars(select(Interaction))}
    assert rows == {f"call.{n}": (o.interaction_id, f"q{n}") for n, o in enumerate(opened)}
    assert any(o.held for o in opened)  # the lock was really in the way
