"""A call queued again keeps what its IVR asked of routing (issue 11, defect 7).

The IVR's priority and extra skills are known once, when the flow queues the call. A
transfer to a queue, or a daemon that restarts and adopts the waiting call from Asterisk,
queues it again: it must keep both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from adapters.simasterisk import NEVER_ANSWERS, PhonePolicy
from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import users
from crm_store.actors import Actor
from tests.component import test_simasterisk
from tests.component.test_simasterisk import daemon_with_simulator, eventually

# The support step asks for priority 7 and Spanish on top of the queue's skills.
FLOW = """name: main
start: support
steps:
  support: {type: queue, queue: support, priority: 7, skills: {spanish: 4}}
"""


async def test_a_transfer_to_a_queue_keeps_the_ivr_priority_and_skills(
    tmp_path: Path, fast_hasher: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_simasterisk, "FLOW", FLOW)
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=None)
    ) as rig:
        routing = rig.daemon.routing
        async with rig.daemon.sessionmaker.begin() as db:
            await users.update_user(db, "alice", skills={"support": 5, "spanish": 5})
        await routing.sync_user(rig.agent_id)
        call = rig.sim.place_call("5551031", "5000")
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        info = next(c for c in routing.contacts.values() if c.state == "talking")
        await routing.call_action(rig.agent_id, info.interaction_id, "transfer", "billing")
        contact_id = str(info.interaction_id)
        await eventually(lambda: contact_id in routing.router.contacts)
        contact = routing.router.contacts[contact_id]
        billing = routing.router.queues["billing"]
        assert contact.queue == "billing"
        assert contact.priority == billing.priority + 7
        assert contact.extra_skills == {"spanish": 4}
        rig.sim.hang_up_caller(call)
        await asyncio.wait_for(call.ended.wait(), 10)


async def test_a_waiting_call_adopted_after_a_restart_keeps_the_ivr_priority_and_skills(
    tmp_path: Path, fast_hasher: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_simasterisk, "FLOW", FLOW)
    async with daemon_with_simulator(tmp_path, NEVER_ANSWERS, offer_timeout=1) as rig:
        routing = rig.daemon.routing
        # Nobody can take it (no Spanish): it waits, as the IVR queued it.
        call = rig.sim.place_call("5551032", "5000")
        await eventually(lambda: len(routing.router.contacts) == 1)
        (contact_id,) = routing.router.contacts
        before = routing.router.contacts[contact_id]
        assert before.extra_skills == {"spanish": 4}
        await rig.daemon.routing.writer.flush()
        # A second daemon on the same store and the same Asterisk: the first is gone.
        config = rig.daemon.config
        await routing.set_status(
            rig.agent_id, "offline", None, actor=Actor(rig.agent_id, "alice", "agent")
        )
        app = make_app(config)
        server = TestServer(app)
        await server.start_server()
        try:
            second = app[DAEMON]
            await second.telephony.ami.wait_connected(5)
            await eventually(lambda: contact_id in second.routing.router.contacts)
            adopted = second.routing.router.contacts[contact_id]
            assert adopted.priority == before.priority
            assert adopted.extra_skills == {"spanish": 4}
        finally:
            await server.close()
        rig.sim.hang_up_caller(call)
        await asyncio.wait_for(call.ended.wait(), 10)
