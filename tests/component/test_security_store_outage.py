"""Calls through the IVR while the store cannot be written are served, queued and routed
from memory, and recorded once it can be again (issue 13, item 5: six IVR calls during
an outage left no record). The outage is real: another connection holds an exclusive
lock on the daemon's SQLite file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contact_center.keys import DAEMON
from crm_store import customers, users
from crm_store.actors import Actor
from crm_store.models import Interaction
from tests.component.test_security_caller_id import (  # the fixture is used by name
    Daemon,
    agi_call,
    asterisk_daemon,  # noqa: F401
    environment,
)

CALLS = 6


async def test_ivr_calls_during_a_write_lock_are_routed_then_stored(
    asterisk_daemon: Daemon,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = asterisk_daemon.app[DAEMON]
    routing: Any = daemon.routing
    async with daemon.sessionmaker.begin() as db:
        agent = await users.create_user(
            db,
            username="bob",
            role="agent",
            password="agent-pass-1",
            skills={"support": 5},
            device="PJSIP/1002",
        )
        known = await customers.create_customer(
            db, name="Zoë Martin", tier="gold", phones=["+44 20 7946 0018"], region="GB"
        )
    await routing.sync_user(agent.id)
    await routing.set_status(agent.id, "ready", None, actor=Actor(agent.id, "bob", "agent"))

    lock = sqlite3.connect(tmp_path / "cc.db", isolation_level=None)
    caplog.set_level(logging.INFO, logger="routing.outbox")
    try:
        lock.execute("BEGIN EXCLUSIVE")
        callers = [b"+44 20 7946 0018"] + [f"+4477009001{n:02d}".encode() for n in range(1, CALLS)]
        sessions = await asyncio.wait_for(
            asyncio.gather(
                *(
                    agi_call(asterisk_daemon.agi_port, environment(f"outage.{n}", caller))
                    for n, caller in enumerate(callers)
                )
            ),
            30,
        )
        # Every caller went through the IVR into the holding context...
        for commands in sessions:
            assert commands[0].startswith("SET VARIABLE CC_INTERACTION_ID")  # tagged first
            assert commands[1].startswith("STREAM FILE welcome")
            assert "SET CONTEXT cc-holding" in commands
        # ...and is queued for routing, the first offered to the ready agent, its
        # customer found (the store can still be read).
        contacts = list(routing.contacts.values())
        assert len(contacts) == CALLS
        offered = [c for c in contacts if c.state == "offered"]
        assert [c.agent_id for c in offered] == [agent.id]
        assert offered[0].customer_id == known.id
        assert {c.state for c in contacts} == {"offered", "waiting"}
        async with daemon.sessionmaker() as db:
            assert (await db.scalars(select(Interaction))).all() == []  # nothing stored yet
        assert daemon.outbox.holding
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    await asyncio.wait_for(daemon.outbox.drained(), 20)
    await routing.writer.flush()
    async with daemon.sessionmaker() as db:
        rows = {r.external_id: r for r in await db.scalars(select(Interaction))}
    assert sorted(rows) == sorted(f"outage.{n}" for n in range(CALLS))
    assert {r.id for r in rows.values()} == {c.interaction_id for c in contacts}
    for row in rows.values():
        assert row.channel == "voice" and row.queue == "support"
        assert row.ivr_path and row.ivr_path[0] == "welcome"
    first = next(r for r in rows.values() if r.id == offered[0].interaction_id)
    assert first.customer_id == known.id
    # What routing recorded during the outage is there too.
    assert first.offered_at is not None and first.routing["queue"] == "support"
    # Said once when the store went, once when it was back.
    messages = [r.getMessage() for r in caplog.records if r.name == "routing.outbox"]
    assert sum("cannot be written" in m for m in messages) == 1
    assert sum("takes writes again" in m for m in messages) == 1

    # Afterwards contacts are stored at once again, numbered after the held ones.
    after = await agi_call(asterisk_daemon.agi_port, environment("after", b"+447700900199"))
    assert "SET CONTEXT cc-holding" in after
    assert not daemon.outbox.holding
    async with daemon.sessionmaker() as db:
        stored = await db.scalar(select(Interaction).where(Interaction.external_id == "after"))
    assert stored is not None and stored.id > max(r.id for r in rows.values())
