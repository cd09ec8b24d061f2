"""Remote answer and the simulated caller, over the protocols a real Asterisk offers
(issue 9, one simulator): the desktop's Accept is an AMI PJSIPNotify `Event: talk` that
the simulated phone honours; the daemon's FastAGI tells the simulated PBX the
interaction (CC_INTERACTION_ID) and how its IVR ended (CC_IVR_OUTCOME); a number can
skip the IVR (`queue/<name>?...`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.ami.client import AmiClient, AmiError
from adapters.simasterisk import NEVER_ANSWERS, SimulatedAsterisk
from adapters.simasterisk.controls import AGENT_PHONE, SimulatorControls, queue_script
from adapters.simasterisk.phones import Phones
from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import users
from crm_store.actors import Actor
from crm_store.models import Interaction
from routing.telephony import TelephonyError
from tests.component.api_fixtures import FLOW, config_for
from tests.component.test_simasterisk import eventually

# A flow with every way out of the IVR: queue, voicemail, transfer, callback, hang-up.
EXITS_FLOW = """name: exits
start: menu
steps:
  menu:
    type: menu
    prompt: menu.wav
    choices: {"1": queue, "2": voicemail, "3": transfer, "4": callback, "5": bye}
    retries: 0
    invalid: bye
    timeout: bye
  queue: {type: queue, queue: support}
  voicemail: {type: voicemail, mailbox: "100"}
  transfer: {type: transfer, extension: "2000"}
  callback: {type: callback}
  bye: {type: hangup}
"""


# --- PJSIPNotify on the simulated Asterisk's AMI --------------------------------------


async def _ami(sim: SimulatedAsterisk) -> AmiClient:
    client = AmiClient(
        host="127.0.0.1",
        port=sim.ami_port,
        username="cti",
        secret="cti-secret",
        on_event=lambda _message: None,
    )
    await client.start()
    await client.wait_connected(5)
    return client


async def test_pjsipnotify_talk_answers_the_ringing_phone_and_nothing_else() -> None:
    sim = SimulatedAsterisk(ami_port=0)
    await sim.start()
    client = await _ami(sim)
    try:
        sim.set_phone("PJSIP/1001", NEVER_ANSWERS)
        await client.send(
            {
                "Action": "Originate",
                "Channel": "PJSIP/1001",
                "Context": "cc-outbound",
                "Exten": "5551000",
                "Priority": "1",
                "Async": "true",
            }
        )
        ringing = next(c for c in sim.model.channels.values() if c.device == "PJSIP/1001")
        # Another event, or another phone, answers nothing.
        sent = await client.send(
            {"Action": "PJSIPNotify", "Endpoint": "1001", "Variable": "Event=check-sync"}
        )
        assert sent.get("Message") == "NOTIFY sent"
        await client.send({"Action": "PJSIPNotify", "Endpoint": "1002", "Variable": "Event=talk"})
        await asyncio.sleep(0.05)
        assert ringing.state != 6
        # `Event: talk` to its endpoint: the phone picks up (the Originate goes on).
        sent = await client.send(
            {"Action": "PJSIPNotify", "Endpoint": "PJSIP/1001", "Variable": ["Event=talk"]}
        )
        assert sent.get("Message") == "NOTIFY sent"
        await eventually(lambda: ringing.state == 6)
        assert [target for target, _ in sim.notifies] == ["1001", "1002", "PJSIP/1001"]
        assert sim.notifies[-1][1] == ["Event=talk"]
    finally:
        await client.stop()
        await sim.stop()


async def test_a_setvar_of_the_interaction_tags_the_simulated_call() -> None:
    sim = SimulatedAsterisk(ami_port=0, agi_address=("127.0.0.1", 1))  # nobody listens
    await sim.start()
    client = await _ami(sim)
    try:
        call = sim.place_call("5551009", "5000")
        await asyncio.wait_for(call.left_ivr.wait(), 5)
        assert (call.interaction_id, call.ivr_outcome) == (None, None)  # no IVR took it
        reply = await client.send(
            {
                "Action": "Setvar",
                "Channel": call.channel,
                "Variable": "CC_INTERACTION_ID",
                "Value": "42",
            }
        )
        assert reply.get("Message") == "Variable Set"
        assert call.interaction_id == 42
    finally:
        await client.stop()
        await sim.stop()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"Variable": "Event=talk"}, "requires an endpoint name, a SIP URI or a channel"),
        (
            {"Endpoint": "1001", "Channel": "PJSIP/1001-00000000", "Variable": "Event=talk"},
            "requires an endpoint name, a SIP URI or a channel",
        ),
        ({"Endpoint": "1001"}, "requires an Option or a Variable"),
        ({"Channel": "PJSIP/none-00000009", "Variable": "Event=talk"}, "Unable to find channel"),
        ({"Endpoint": "4242", "Variable": "Event=talk"}, "Unable to retrieve endpoint 4242"),
    ],
)
async def test_pjsipnotify_refusals(action: dict[str, str], message: str) -> None:
    sim = SimulatedAsterisk(ami_port=0)
    sim.endpoints = {"1001"}
    await sim.start()
    client = await _ami(sim)
    try:
        with pytest.raises(AmiError, match=message):
            await client.send({"Action": "PJSIPNotify", **action})
    finally:
        await client.stop()
        await sim.stop()


# --- the daemon's Accept, by pbx.remote_answer ----------------------------------------


@dataclass
class Rig:
    sim: SimulatedAsterisk
    daemon: Any
    controls: SimulatorControls
    agent_id: int


@asynccontextmanager
async def rig(
    tmp_path: Path, *, remote_answer: str, device: str = "PJSIP/1001"
) -> AsyncIterator[Rig]:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "main.yaml").write_text(FLOW)
    (flows / "exits.yaml").write_text(EXITS_FLOW)
    # Agents' phones ring until answered (remotely, or by the test as the agent's hand).
    sim = SimulatedAsterisk(ami_port=0, auth_fail_delay=0.05, phones=Phones(agents=AGENT_PHONE))
    await sim.start()
    config = config_for(
        tmp_path,
        pbx={
            "mode": "asterisk",
            "remote_answer": remote_answer,
            "ami": {"port": sim.ami_port, "username": "cti", "secret": "cti-secret"},
            "agi": {"port": 0},
        },
        ivr={"flows_dir": str(flows), "default_flow": "main"},
        queues=[
            {"name": "billing", "channels": ["voice"]},
            {"name": "support", "channels": ["voice"], "offer_timeout_seconds": 20},
        ],
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
                username="alice",
                role="agent",
                password="agent-pass-1",
                skills={"support": 5},
                device=device,
            )
        await daemon.routing.sync_user(agent.id)
        await daemon.routing.set_status(
            agent.id, "ready", None, actor=Actor(agent.id, "alice", "agent")
        )
        yield Rig(sim, daemon, SimulatorControls(sim, daemon.flows), agent.id)
    finally:
        await server.close()
        await sim.stop()


def _leg(sim: SimulatedAsterisk, device: str) -> Any:
    return next((c for c in sim.model.channels.values() if c.device == device), None)


async def test_accept_with_pjsip_talk_answers_the_phone(tmp_path: Path, fast_hasher: None) -> None:
    async with rig(tmp_path, remote_answer="pjsip-talk") as r:
        interaction_id = await r.controls.place_call("5551009", "support")
        routing = r.daemon.routing
        calls = r.daemon.telephony.calls
        await eventually(lambda: calls[interaction_id].ringing_device is not None)
        # Accepted at once, likely before the ring's actions are all out: the NOTIFY waits
        # for them, so it finds the phone ringing.
        assert await r.daemon.telephony.answer_for_agent(interaction_id, "PJSIP/1001") is True
        await eventually(lambda: routing.contacts[interaction_id].state == "talking")
        assert r.sim.notifies == [("1001", ["Event=talk"])]
        # A phone dialled from the agent context rang as an agent's phone (until answered).
        assert r.sim.phones.rings["pjsip/1001"] == 1


async def test_without_remote_answer_the_agent_picks_up_the_phone(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with rig(tmp_path, remote_answer="none") as r:
        interaction_id = await r.controls.place_call("5551009", "support")
        routing = r.daemon.routing
        await eventually(lambda: _leg(r.sim, "PJSIP/1001") is not None)
        assert await r.daemon.telephony.answer_for_agent(interaction_id, "PJSIP/1001") is False
        await asyncio.sleep(0.2)
        assert r.sim.notifies == []
        assert routing.contacts[interaction_id].state == "offered"  # still ringing
        # The agent's hand on the phone: it answers, and the call is theirs.
        leg = _leg(r.sim, "PJSIP/1001")
        r.sim.apply(r.sim.model.answer(leg.uniqueid, r.sim.clock()))
        await eventually(lambda: routing.contacts[interaction_id].state == "talking")


async def test_a_refused_notify_leaves_the_answer_to_the_agent(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with rig(tmp_path, remote_answer="pjsip-talk") as r:
        r.sim.endpoints = {"2002"}  # 1001 is not configured: "Unable to retrieve endpoint"
        interaction_id = await r.controls.place_call("5551009", "support")
        await eventually(lambda: _leg(r.sim, "PJSIP/1001") is not None)
        assert await r.daemon.telephony.answer_for_agent(interaction_id, "PJSIP/1001") is False
        assert r.daemon.routing.contacts[interaction_id].state == "offered"
        # Not ringing for this call: an error, as before.
        with pytest.raises(TelephonyError, match="not ringing"):
            await r.daemon.telephony.answer_for_agent(interaction_id, "PJSIP/2002")


# --- what the simulated PBX learns from the daemon's FastAGI --------------------------


@pytest.mark.parametrize(
    ("keys", "outcome", "end_cause"),
    [
        (["1"], "queued", None),
        (["2"], "voicemail", "ivr: voicemail"),
        (["3"], "transferred", "ivr: transferred"),
        (["4"], "callback", "ivr: callback"),
        (["5"], "hangup", "ivr: hangup"),
        (["hangup"], "caller_hangup", "ivr: caller_hangup"),
    ],
)
async def test_the_simulated_caller_keys_through_the_ivr_and_learns_how_it_ended(
    tmp_path: Path, fast_hasher: None, keys: list[str], outcome: str, end_cause: str | None
) -> None:
    async with rig(tmp_path, remote_answer="none") as r:
        interaction_id, got = await r.controls.call_through_ivr("5551009", "exits", keys)
        assert got == outcome
        call = next(iter(r.sim.calls.values()))
        assert call.interaction_id == interaction_id
        # The channel was tagged before the first prompt; the caller answered GET DATA.
        assert call.agi_commands[0] == f'SET VARIABLE CC_INTERACTION_ID "{interaction_id}"'
        assert call.agi_commands[1].startswith("GET DATA menu")
        if outcome not in ("queued", "caller_hangup"):
            assert f'SET VARIABLE CC_IVR_OUTCOME "{outcome}"' in call.agi_commands
        await r.daemon.routing.writer.flush()
        async with r.daemon.sessionmaker() as db:
            stored = await db.get(Interaction, interaction_id)
        assert stored is not None and stored.external_id == call.uniqueid
        assert stored.end_cause == end_cause
        assert stored.ivr_path and stored.ivr_path[0] == "menu"


async def test_a_number_that_skips_the_ivr_queues_with_what_it_attached(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with rig(tmp_path, remote_answer="none") as r:
        interaction_id = await r.controls.place_call(
            "5551009",
            "support",
            priority=7,
            skills={"support": 2},
            ivr_path=["welcome", "menu"],
            ivr_inputs={"account": "12 345&x"},
        )
        call = next(iter(r.sim.calls.values()))
        assert call.agi_script == queue_script(
            "support",
            priority=7,
            skills={"support": 2},
            ivr_path=["welcome", "menu"],
            ivr_inputs={"account": "12 345&x"},
        )
        assert call.agi_commands == [
            f'SET VARIABLE CC_INTERACTION_ID "{interaction_id}"',
            "SET CONTEXT cc-holding",
            "SET EXTENSION s",
            "SET PRIORITY 1",
        ]
        routing = r.daemon.routing
        await eventually(lambda: interaction_id in routing.contacts)
        info = routing.contacts[interaction_id]
        assert (info.queue, info.priority, info.skills) == ("support", 7, {"support": 2})
        assert info.ivr_path == ["welcome", "menu"]
        assert info.ivr_inputs == {"dnis": "5000", "account": "12 345&x"}
        await r.daemon.routing.writer.flush()
        async with r.daemon.sessionmaker() as db:
            stored = await db.get(Interaction, interaction_id)
        assert stored is not None
        assert (stored.queue, stored.ivr_path) == ("support", ["welcome", "menu"])
        assert stored.ivr_inputs == {"account": "12 345&x"}


async def test_a_queue_script_without_a_queue_is_hung_up(tmp_path: Path, fast_hasher: None) -> None:
    async with rig(tmp_path, remote_answer="none") as r:
        call = r.sim.place_call("5551009", "5000", agi_script="queue")
        await asyncio.wait_for(call.ended.wait(), 5)
        assert call.interaction_id is None and call.ivr_outcome is None
        assert call.agi_commands[-1] == "HANGUP"
        # A flow the controls offer but the daemon does not have: hung up, no contact.
        controls = SimulatorControls(r.sim, {"ghost": object()})
        with pytest.raises(TelephonyError, match="without a contact") as refused:
            await controls.call_through_ivr("5551010", "ghost", [])
        assert refused.value.error_id == "telephony.no_ivr"
        with pytest.raises(TelephonyError) as unknown:
            await controls.call_through_ivr("5551010", "nowhere", [])
        assert unknown.value.error_id == "telephony.no_flow"
