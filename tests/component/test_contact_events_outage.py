"""Contact events made while the store cannot be written wait in the outbox with the
interaction updates, and reach the log in the order made once it can be (a real
`BEGIN EXCLUSIVE` on the daemon's SQLite file)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url

from contact_center.keys import DAEMON
from crm_store.models import ContactEvent
from tests.component.api_fixtures import Api
from tests.component.test_routing_flow import _call, request, until


async def test_events_of_a_call_during_a_write_lock_are_stored_after_it(api: Api) -> None:
    daemon = api.app[DAEMON]
    routing = daemon.routing
    assert routing is not None and daemon.sessionmaker is not None
    outbox = daemon.outbox
    assert outbox is not None
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    database = make_url(daemon.config.database.url).database
    assert database is not None
    async with agent.client.ws_connect("/ws/agent") as ws:
        assert (await request(ws, "set_status", status="ready"))["ok"]
        await routing.writer.flush()
        locker = sqlite3.connect(Path(database), isolation_level=None, timeout=0)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            call = await _call(supervisor, "+447700900777")
            await until(ws, "offer", interaction_id=call)
            assert (await request(ws, "accept_offer", offer_id=call))["ok"]
            await until(ws, "contact", state="talking")
            await request(ws, "call_action", interaction_id=call, action="hangup")
            await until(ws, "contact", state="wrap_up")
            assert (await request(ws, "finish_wrap_up"))["ok"]
            await routing.writer.flush()
            assert outbox.holding  # nothing lost, nothing written yet
        finally:
            locker.execute("ROLLBACK")
            locker.close()
    await asyncio.wait_for(outbox.drained(), 30)
    async with daemon.sessionmaker() as session:
        stored = (
            await session.scalars(
                select(ContactEvent)
                .where(ContactEvent.interaction_id == call)
                .order_by(ContactEvent.id)
            )
        ).all()
    assert [e.kind for e in stored] == [
        "queued",
        "offered",
        "answered",
        "ended",
        "wrap_up_ended",
    ]
    assert {e.agent_id for e in stored[1:]} == {api.user_ids["agent"]}
    assert stored[3].details == {"cause": "Normal Clearing"}  # as Asterisk reported it
