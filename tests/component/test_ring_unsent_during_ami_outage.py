"""A ring that cannot be sent while AMI is down is not the agent declining (issue 11,
defect 8): no miss, nobody excluded, and the call is offered again once AMI is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.simasterisk import PhonePolicy
from crm_store.actors import Actor
from tests.component.test_simasterisk import daemon_with_simulator, eventually


async def test_a_ring_unsent_during_an_ami_outage_is_offered_again_when_ami_is_back(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=0.5)
    ) as rig:
        routing = rig.daemon.routing
        ami = rig.daemon.telephony.ami
        alice = Actor(rig.agent_id, "alice", "agent")
        await routing.set_status(rig.agent_id, "not_ready", "break", actor=alice)
        call = rig.sim.place_call("5551041", "5000", digits=["2"])
        await eventually(lambda: len(routing.router.contacts) == 1)
        (contact_id,) = routing.router.contacts
        # The outage: the daemon's AMI link is down when the agent becomes ready.
        await ami.stop()
        await routing.set_status(rig.agent_id, "ready", None, actor=alice)
        await routing.settle()  # the offer's delivery runs beside the request
        agent = routing.router.agents[rig.agent_id]
        contact = routing.router.contacts[contact_id]
        assert contact.offered_to is None  # withdrawn at once: nothing could ring
        assert contact.declined_by == set()
        assert agent.missed_in_row == 0 and agent.status == "ready"
        assert routing.contacts[int(contact_id)].state == "waiting"
        # AMI is back: the same agent is offered the call again, and takes it.
        await ami.start()
        await ami.wait_connected(5)
        await eventually(lambda: routing.contacts[int(contact_id)].state == "talking")
        assert routing.contacts[int(contact_id)].agent_id == rig.agent_id
        await asyncio.wait_for(call.ended.wait(), 10)
        stored = await rig.interaction(call)
        assert stored.agent_id == rig.agent_id and stored.answered_at is not None
