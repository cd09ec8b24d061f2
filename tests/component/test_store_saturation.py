"""Past saturation the daemon slows down, it does not lose calls (issue 15).

The real app in `pbx.mode: asterisk` takes many simultaneous calls over FastAGI while
its SQLite store is slow (another connection takes the write lock for longer than the
busy time-out, again and again) and its store writer's queue is small: producers wait
for room, /status says "degraded" with the writer "saturated" and its queue depth,
/metrics shows the queue, the waits and the retries; and in the end every call is
recorded in the store under the id its caller was given, and queued for routing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from contact_center.app import make_app
from contact_center.health import STORE_WRITES, watch_store_writer
from contact_center.keys import DAEMON
from crm_store import users
from crm_store.actors import Actor
from crm_store.models import Interaction
from tests.component.api_fixtures import FLOW, asterisk_config_for
from tests.component.test_security_caller_id import agi_call, environment
from tests.fakes.ami_replay import ReplayServer, Scenario

CALLS = 80
LIMIT, HIGH_WATER = 12, 6


@dataclass
class Rig:
    app: Any
    server: TestServer
    agi_port: int


@pytest.fixture
async def rig(tmp_path: Path, fast_hasher: None) -> AsyncIterator[Rig]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    ami = await ReplayServer(Scenario.load("a_login_core"), answer_unknown=True).start()
    app = make_app(
        asterisk_config_for(
            tmp_path, ami.port, ivr={"flows_dir": str(flows), "default_flow": "main"}
        )
    )
    server = TestServer(app)
    await server.start_server()
    try:
        asterisk: Any = app[DAEMON].telephony
        await asterisk.ami.wait_connected(5)
        yield Rig(app, server, asterisk.agi.port)
    finally:
        await server.close()
        await ami.stop()


def _caller(n: int) -> bytes:
    return f"+4477009{n:05d}".encode()


async def _status(http: aiohttp.ClientSession, rig: Rig) -> tuple[int, dict[str, Any]]:
    async with http.get(rig.server.make_url("/status")) as response:
        return response.status, await response.json()


async def _metric(http: aiohttp.ClientSession, rig: Rig, name: str) -> float:
    async with http.get(rig.server.make_url("/metrics")) as response:
        text = await response.text()
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} is not in /metrics"
    return float(values[0])


async def test_calls_past_saturation_are_slowed_recorded_and_queued(
    rig: Rig, tmp_path: Path
) -> None:
    daemon = rig.app[DAEMON]
    routing: Any = daemon.routing
    writer = daemon.outbox
    # What the composition root is to wire (the lead's part of issue 15), made here too.
    watch_store_writer(daemon.health, writer)
    daemon.metrics.watch_store_writer(writer)
    writer.limit, writer.high_water = LIMIT, HIGH_WATER
    async with daemon.sessionmaker.begin() as db:
        agent = await users.create_user(
            db,
            username="bob",
            role="agent",
            password="agent-pass-1",
            skills={"support": 5},
            device="PJSIP/1002",
        )
    await routing.sync_user(agent.id)
    await routing.set_status(agent.id, "ready", None, actor=Actor(agent.id, "bob", "agent"))

    stop = asyncio.Event()

    async def slow_store() -> None:
        # Its own thread: waiting for the lock must not stop the daemon's loop.
        lock = sqlite3.connect(
            tmp_path / "cc.db", isolation_level=None, timeout=10, check_same_thread=False
        )
        try:
            while not stop.is_set():
                await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")
                await asyncio.sleep(1.5)  # past the writer's 1 s busy time-out
                lock.execute("ROLLBACK")
                await asyncio.sleep(0.1)
        finally:
            lock.close()

    seen: list[tuple[int, str, str, str]] = []

    async def watch(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            code, body = await _status(http, rig)
            writes = body["components"].get(STORE_WRITES, {})
            seen.append((code, body["status"], writes.get("state", ""), writes.get("detail", "")))
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession() as http:
        locker = asyncio.create_task(slow_store())
        watcher = asyncio.create_task(watch(http))
        try:
            sessions = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        agi_call(
                            rig.agi_port, environment(f"load.{n}", f"+4477009{n:05d}".encode())
                        )
                        for n in range(CALLS)
                    )
                ),
                60,
            )
        finally:
            stop.set()
            await locker
            await watcher
        waits = await _metric(http, rig, "cc_store_write_waits_total")
        retries = await _metric(http, rig, "cc_store_write_retries_total")
        deepest = await _metric(http, rig, "cc_store_write_queue_max_depth")
        await asyncio.wait_for(writer.drained(), 30)
        await routing.writer.flush()
        _, body = await _status(http, rig)
        depth = await _metric(http, rig, "cc_store_write_queue_depth")

    # Saturated, said so, and slowed down rather than failing anyone.
    assert waits > 0 and retries > 0 and deepest >= LIMIT
    saturated = [s for s in seen if s[2] == "saturated"]
    assert saturated, "the writer was never shown saturated"
    assert all(c == 503 and status == "degraded" for c, status, _, _ in saturated)
    assert "writes queued" in saturated[0][3]
    # Every caller went through the IVR into the holding context...
    for commands in sessions:
        assert commands[0].startswith("SET VARIABLE CC_INTERACTION_ID")
        assert "SET CONTEXT cc-holding" in commands
    tagged = [int(c[0].split()[-1].strip('"')) for c in sessions]
    assert len(set(tagged)) == CALLS  # each its own id
    # ...is queued for routing (one offered to the one agent, the others waiting)...
    contacts = {c.interaction_id: c for c in routing.contacts.values()}
    assert set(contacts) == set(tagged)
    assert sorted(c.state for c in contacts.values()) == ["offered"] + ["waiting"] * (CALLS - 1)
    # ...and recorded in the store under that id, with its queue and IVR path.
    async with daemon.sessionmaker() as db:
        rows = {r.external_id: r for r in await db.scalars(select(Interaction))}
    assert {name: row.id for name, row in rows.items()} == {
        f"load.{n}": tagged[n] for n in range(CALLS)
    }
    assert all(
        r.queue == "support" and r.ivr_path and r.ivr_path[0] == "welcome" for r in rows.values()
    )
    assert writer.lost_writes == 0
    # Caught up: not saturated any more.
    assert depth == 0 and not writer.saturated
    assert body["components"][STORE_WRITES]["state"] == "up"
