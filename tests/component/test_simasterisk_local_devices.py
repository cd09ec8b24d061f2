"""The daemon (`pbx.mode: asterisk`) against the simulated Asterisk running the test bed's
dialplan (contrib/asterisk/testbed), with agents whose devices are `Local/` channels, as
on the real test bed: the `;2` half's dialplan is the phone (tb-answer answers at once,
talks TB_TALK_SECONDS and hangs up). A click-to-dial from such a device is tracked on the
`;1` half Originate named, and an inbound call is answered by the `;1` half its Dial
rang; both end when the phone's dialplan hangs up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.ami.client import AmiClient, AmiError
from adapters.ami.framing import AmiMessage
from adapters.simasterisk import SimulatedAsterisk
from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import users
from crm_store.actors import Actor
from crm_store.models import Interaction
from tests.component.api_fixtures import FLOW, config_for

TESTBED = Path(__file__).resolve().parents[2] / "contrib" / "asterisk" / "testbed"


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `check()` is true (polling), or fail."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


@dataclass
class Rig:
    sim: SimulatedAsterisk
    daemon: Any
    agent_id: int

    async def stored(self, interaction_id: int) -> Interaction:
        await self.daemon.routing.writer.flush()
        async with self.daemon.sessionmaker() as db:
            found = await db.get(Interaction, interaction_id)
        assert found is not None
        return found


@asynccontextmanager
async def daemon_on_the_test_bed(tmp_path: Path, device: str) -> AsyncIterator[Rig]:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "main.yaml").write_text(FLOW)
    sim = SimulatedAsterisk(
        ami_port=0, auth_fail_delay=0.05, dialplan_path=TESTBED / "extensions.conf"
    )
    await sim.start()
    config = config_for(
        tmp_path,
        pbx={
            "mode": "asterisk",
            "ami": {
                "host": "127.0.0.1",
                "port": sim.ami_port,
                "username": "cti",
                "secret": "cti-secret",
                "reconnect_max_seconds": 0.5,
            },
            "agi": {"host": "127.0.0.1", "port": 0},
        },
        ivr={"flows_dir": str(flows), "default_flow": "main"},
    )
    app = make_app(config)
    server = TestServer(app)
    await server.start_server()
    try:
        daemon = app[DAEMON]
        sim.set_agi_address("127.0.0.1", daemon.telephony.agi.port)
        await daemon.telephony.ami.wait_connected(5)
        async with daemon.sessionmaker.begin() as db:
            agent = await users.create_user(
                db,
                username="lola",
                role="agent",
                password="agent-pass-1",
                skills={"support": 5},
                device=device,
            )
        await daemon.routing.sync_user(agent.id)
        await daemon.routing.set_status(
            agent.id, "ready", None, actor=Actor(agent.id, "lola", "agent")
        )
        yield Rig(sim, daemon, agent.id)
    finally:
        await server.close()
        await sim.stop()


def _nothing_left(rig: Rig) -> None:
    telephony = rig.daemon.telephony
    assert telephony.tracker.calls() == {}
    assert telephony.calls == {}
    assert telephony.tracker.report["internal_error"] == 0
    assert rig.sim.model.channels == {}


async def test_click_to_dial_from_a_local_device_is_tracked_on_its_first_half(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_on_the_test_bed(tmp_path, "Local/2007@tb-answer") as rig:
        routing = rig.daemon.routing
        interaction_id = await routing.dial(rig.agent_id, "02079460018")
        await eventually(lambda: routing.contacts[interaction_id].state == "talking")
        uid = f"cc-dial-{interaction_id}"
        names = sorted(c.name for c in rig.sim.model.channels.values())
        assert names == [
            "Local/2007@tb-answer-00000000;1",
            "Local/2007@tb-answer-00000000;2",
            "PJSIP/trunk-00000000",
        ]
        assert rig.sim.model.get(uid) is not None and rig.sim.model.get(f"{uid};2") is not None
        call = rig.daemon.telephony.tracker.calls()[uid]
        assert call.channel == "Local/2007@tb-answer-00000000;1"
        # tb-answer's Wait(TB_TALK_SECONDS), then its Hangup(): the agent hung up.
        await eventually(lambda: routing.contacts[interaction_id].state == "wrap_up")
        stored = await rig.stored(interaction_id)
        assert stored.direction == "outbound"
        assert stored.answered_at is not None and stored.ended_at is not None
        assert stored.agent_id == rig.agent_id
        assert str(interaction_id) not in routing.router.agents[rig.agent_id].active
        _nothing_left(rig)


async def test_an_inbound_call_rings_and_is_answered_by_a_local_device(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_on_the_test_bed(tmp_path, "Local/2001@tb-answer") as rig:
        call = rig.sim.place_call("5551030", "5000", digits=["2"])
        await eventually(lambda: call.connected_at is not None)
        leg = rig.sim.model.get(call.agent_leg or "")
        assert leg is not None and leg.name == "Local/2001@tb-answer-00000000;1"
        await asyncio.wait_for(call.ended.wait(), 10)
        await eventually(lambda: rig.daemon.telephony.calls == {})
        await rig.daemon.routing.writer.flush()
        async with rig.daemon.sessionmaker() as db:
            stored = (
                await db.scalars(
                    select(Interaction).where(Interaction.external_id == call.uniqueid)
                )
            ).one()
        assert stored.answered_at is not None and stored.ended_at is not None
        assert stored.agent_id == rig.agent_id
        _nothing_left(rig)


async def test_a_synchronous_originate_of_a_local_device_waits_for_its_dialplan() -> None:
    """A synchronous Originate is answered once the call's fate is known: Success when
    the `;2` half's Answer() answered it (at once here), "Originate failed" after the
    channel events when its context does not exist (f_errors, PROTOCOL-NOTES)."""
    sim = SimulatedAsterisk(
        ami_port=0, auth_fail_delay=0.05, dialplan_path=TESTBED / "extensions.conf"
    )
    await sim.start()
    events: list[AmiMessage] = []
    client = AmiClient(
        host="127.0.0.1",
        port=sim.ami_port,
        username="cti",
        secret="cti-secret",
        on_event=events.append,
        reconnect_max=60,
    )
    await client.start()
    try:
        await client.wait_connected(5)
        reply = await client.send(
            {
                "Action": "Originate",
                "Channel": "Local/2008@tb-answer-stay",
                "Context": "cc-hold-agent",
                "Exten": "s",
                "Priority": "1",
            }
        )
        assert reply.get("Response") == "Success"
        names = sorted(c.name for c in sim.model.channels.values())
        assert names == [
            "Local/2008@tb-answer-stay-00000000;1",
            "Local/2008@tb-answer-stay-00000000;2",
        ]
        try:
            await client.send(
                {
                    "Action": "Originate",
                    "Channel": "Local/123@no-such-context",
                    "Context": "cc-inbound",
                    "Exten": "5000",
                    "Priority": "1",
                }
            )
        except AmiError as exc:
            assert "Originate failed" in str(exc)
        else:
            raise AssertionError("an Originate to a missing context must fail")
        gone = [
            e.get("Channel")
            for e in events
            if e.event == "Hangup" and "no-such-context" in str(e.get("Channel"))
        ]
        assert gone == [
            "Local/123@no-such-context-00000001;2",
            "Local/123@no-such-context-00000001;1",
        ]
        assert len(sim.model.channels) == 2
    finally:
        await client.stop()
        await sim.stop()
