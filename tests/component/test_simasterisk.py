"""The simulated Asterisk on loopback: its AMI speaks to our AmiClient, and the whole
daemon (`pbx.mode: asterisk`) runs calls through it end to end: IVR over FastAGI, queue,
delivery by Setvar + Redirect, answer, talk, hang-up, abandon, no answer, AMI loss."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from adapters.ami.client import AmiClient, AmiError
from adapters.ami.framing import AmiMessage
from adapters.simasterisk import NEVER_ANSWERS, PhonePolicy, SimCall, SimulatedAsterisk
from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import users
from crm_store.actors import Actor
from crm_store.models import Interaction
from tests.component.api_fixtures import FLOW, config_for


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `check()` is true (polling), or fail."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


# --- AMI over a real socket ---------------------------------------------------------


async def _client(sim: SimulatedAsterisk, secret: str) -> tuple[AmiClient, list[AmiMessage]]:
    events: list[AmiMessage] = []
    client = AmiClient(
        host="127.0.0.1",
        port=sim.ami_port,
        username="cti",
        secret=secret,
        on_event=events.append,
        reconnect_max=60,
    )
    await client.start()
    return client, events


async def test_ami_login_ping_and_unknown_action() -> None:
    sim = SimulatedAsterisk(ami_port=0)
    await sim.start()
    client, events = await _client(sim, "cti-secret")
    try:
        await client.wait_connected(5)
        await eventually(lambda: any(e.event == "SuccessfulAuth" for e in events))
        assert [e.event for e in events][:2] == ["FullyBooted", "SuccessfulAuth"]
        pong = await client.send({"Action": "Ping"})
        assert pong.get("Ping") == "Pong"
        assert float(pong.get("Timestamp")) > 0
        try:
            await client.send({"Action": "NoSuchAction"})
        except AmiError as exc:
            assert "Invalid/unknown command" in str(exc)
        else:
            raise AssertionError("an unknown action must be refused")
        listed = await client.send({"Action": "CoreShowChannels"}, as_list=True)
        assert [m.get("Event") for m in listed][-1] == "CoreShowChannelsComplete"
        # Every reply carries the client's ActionID (panoramisk matched them by it).
        assert all(a.action_id for a in sim.ami.actions)
    finally:
        await client.stop()
        await sim.stop()


async def test_ami_wrong_secret_is_refused_and_closed() -> None:
    sim = SimulatedAsterisk(ami_port=0, auth_fail_delay=0.05)
    await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
        banner = await reader.readline()
        assert banner == b"Asterisk Call Manager/11.0.0\r\n"
        writer.write(b"Action: Ping\r\nActionID: p-1\r\n\r\n")
        denied = await reader.readuntil(b"\r\n\r\n")
        assert denied == b"Response: Error\r\nActionID: p-1\r\nMessage: Permission denied\r\n\r\n"
        writer.write(b"Action: Login\r\nActionID: l-1\r\nUsername: cti\r\nSecret: wrong\r\n\r\n")
        failed = await asyncio.wait_for(reader.read(), 5)  # the reply, then EOF
        assert failed == (
            b"Response: Error\r\nActionID: l-1\r\nMessage: Authentication failed\r\n\r\n"
        )
        writer.close()
        client, _events = await _client(sim, "wrong")
        await asyncio.sleep(0.3)
        assert not client.connected
        await client.stop()
    finally:
        await sim.stop()


# --- the daemon end to end ----------------------------------------------------------


@dataclass
class Rig:
    """The daemon in asterisk mode and the simulator it talks to."""

    sim: SimulatedAsterisk
    daemon: Any
    agent_id: int

    async def interaction(self, call: SimCall) -> Interaction:
        """The stored interaction of a simulated call (by its Uniqueid)."""
        await self.daemon.routing.writer.flush()
        async with self.daemon.sessionmaker() as db:
            found = (
                await db.scalars(
                    select(Interaction).where(Interaction.external_id == call.uniqueid)
                )
            ).one()
            return found

    async def abandoned(self, queue: str) -> int:
        """Abandoned calls of the queue in today's figures (short abandons included)."""
        figures = self.daemon.routing.stats.queue_figures(queue, self.daemon.routing.clock())
        today = figures["today"]
        return int(today["abandoned"]) + int(today["short_abandoned"])


@asynccontextmanager
async def daemon_with_simulator(
    tmp_path: Path,
    policy: PhonePolicy,
    *,
    offer_timeout: int = 20,
    **pbx: Any,
) -> AsyncIterator[Rig]:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "main.yaml").write_text(FLOW)
    sim = SimulatedAsterisk(ami_port=0, auth_fail_delay=0.05)
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
                **pbx,
            },
            "agi": {"host": "127.0.0.1", "port": 0},
        },
        ivr={"flows_dir": str(flows), "default_flow": "main"},
        queues=[
            {"name": "billing", "channels": ["voice"], "skills": {"billing": 5}},
            {
                "name": "support",
                "channels": ["voice"],
                "skills": {"support": 3},
                "offer_timeout_seconds": offer_timeout,
            },
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
                device="PJSIP/1001",
            )
        sim.set_phone("PJSIP/1001", policy)
        await daemon.routing.sync_user(agent.id)
        await daemon.routing.set_status(
            agent.id, "ready", None, actor=Actor(agent.id, "alice", "agent")
        )
        yield Rig(sim, daemon, agent.id)
    finally:
        await server.close()
        await sim.stop()


def _no_live_calls(rig: Rig) -> None:
    telephony = rig.daemon.telephony
    assert telephony.tracker.calls() == {}
    assert telephony.calls == {}
    assert rig.daemon.routing.contacts == {} or all(
        c.state in ("wrap_up", "closed") for c in rig.daemon.routing.contacts.values()
    )
    assert telephony.tracker.report["internal_error"] == 0
    assert rig.sim.model.channels == {}


async def test_a_call_goes_through_ivr_queue_agent_and_ends(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=0.5)
    ) as rig:
        call = rig.sim.place_call("5551009", "5000", name="Quinn Queue", digits=["2"])
        routing = rig.daemon.routing
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        talking = next(c for c in routing.contacts.values() if c.state == "talking")
        assert (talking.queue, talking.agent_id, talking.address) == (
            "support",
            rig.agent_id,
            "5551009",
        )
        assert talking.address_name == "Quinn Queue"  # the caller id name, for the pop
        await asyncio.wait_for(call.ended.wait(), 10)
        assert call.device == "PJSIP/1001" and call.connected_at is not None
        # Tagged with its interaction first, then the flow's prompt and menu.
        assert call.agi_commands[0] == f'SET VARIABLE CC_INTERACTION_ID "{call.interaction_id}"'
        assert call.agi_commands[1:3] == ['STREAM FILE welcome ""', "GET DATA menu 5000 1"] or (
            call.agi_commands[1].startswith("STREAM FILE welcome")
        )
        assert call.agi_commands[-3:] == [
            "SET CONTEXT cc-holding",
            "SET EXTENSION s",
            "SET PRIORITY 1",
        ]
        await eventually(lambda: rig.daemon.telephony.calls == {})
        stored = await rig.interaction(call)
        assert stored.ivr_path and stored.ivr_path[0] == "welcome" and "menu" in stored.ivr_path
        assert stored.ivr_inputs == {"menu": "2"}
        assert stored.queue == "support"
        assert stored.address_name == "Quinn Queue"
        assert stored.agent_id == rig.agent_id
        assert stored.offered_at is not None and stored.answered_at is not None
        assert stored.ended_at is not None
        assert stored.offered_at <= stored.answered_at <= stored.ended_at
        talk = (stored.ended_at - stored.answered_at).total_seconds()
        assert 0.3 < talk < 3
        _no_live_calls(rig)


@pytest.mark.parametrize(
    ("name", "shown"),
    [('Zhang "Wei" 张伟', 'Zhang "Wei" 张伟'), ("<unknown>", None), ("", None), ("a\tb", "a b")],
)
async def test_caller_names_reach_the_offer_and_the_store(
    tmp_path: Path, fast_hasher: None, name: str, shown: str | None
) -> None:
    """Issue 11, 12: the caller id name as Asterisk gives it to FastAGI, cleaned."""
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=0.3)
    ) as rig:
        call = rig.sim.place_call("5551020", "5000", name=name, digits=["2"])
        routing = rig.daemon.routing
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        talking = next(c for c in routing.contacts.values() if c.state == "talking")
        assert talking.address_name == shown
        await asyncio.wait_for(call.ended.wait(), 10)
        await eventually(lambda: rig.daemon.telephony.calls == {})
        assert (await rig.interaction(call)).address_name == shown


async def test_a_call_whose_channel_vanished_is_ended_not_held_against_the_agent(
    tmp_path: Path, fast_hasher: None
) -> None:
    """Ringing a caller whose channel is gone without a Hangup reaching us (it went while
    AMI was away; a dialplan that never tagged it) ends the contact: it used to stay
    waiting for ever, re-offered and each time counted as the agent's miss."""
    async with daemon_with_simulator(tmp_path, NEVER_ANSWERS) as rig:
        routing = rig.daemon.routing
        actor = Actor(rig.agent_id, "alice", "agent")
        await routing.set_status(rig.agent_id, "not_ready", "break", actor=actor)
        call = rig.sim.place_call("5551021", "5000", digits=["2"], patience=60.0)
        await eventually(lambda: any(c.state == "waiting" for c in routing.contacts.values()))
        # Asterisk forgets the caller's channel and says nothing.
        for key in [k for k, ch in rig.sim.model.channels.items() if "5551021" in str(ch.cid_num)]:
            del rig.sim.model.channels[key]
        await routing.set_status(rig.agent_id, "ready", None, actor=actor)
        await eventually(
            lambda: (
                routing.contacts == {}
                or all(c.state == "closed" for c in routing.contacts.values())
            )
        )
        stored = await rig.interaction(call)
        assert stored.ended_at is not None and stored.end_cause == "caller gone"
        assert routing.router.agents[rig.agent_id].status == "ready"  # no miss counted


async def test_a_caller_who_hangs_up_while_waiting_is_counted_abandoned(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(tmp_path, NEVER_ANSWERS) as rig:
        await rig.daemon.routing.set_status(
            rig.agent_id, "not_ready", "break", actor=Actor(rig.agent_id, "alice", "agent")
        )
        call = rig.sim.place_call("5551010", "5000", digits=["2"], patience=1.0)
        await asyncio.wait_for(call.ended.wait(), 10)
        assert call.abandoned and call.connected_at is None
        await eventually(lambda: rig.daemon.telephony.calls == {})
        stored = await rig.interaction(call)
        assert stored.queue == "support"
        assert stored.ended_at is not None and stored.answered_at is None
        assert await rig.abandoned("support") == 1
        _no_live_calls(rig)


async def test_an_unanswered_phone_moves_the_offer_on_and_the_agent_goes_not_ready(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(tmp_path, NEVER_ANSWERS, offer_timeout=1) as rig:
        call = rig.sim.place_call("5551011", "5000", digits=["2"], patience=4.0)
        routing = rig.daemon.routing
        await eventually(lambda: routing.router.agents[rig.agent_id].status == "not_ready")
        # The Dial timed out (DialEnd NOANSWER) and the dialplan put the caller back on
        # music on hold, where the daemon finds it waiting again.
        await eventually(lambda: any(c.state == "waiting" for c in routing.contacts.values()))
        caller = rig.sim.model.get(call.uniqueid)
        assert caller is not None and caller.context == "cc-holding"
        assert rig.sim.phones.rings["pjsip/1001"] == 1
        await asyncio.wait_for(call.ended.wait(), 10)
        await eventually(lambda: rig.daemon.telephony.calls == {})
        stored = await rig.interaction(call)
        assert stored.ended_at is not None and stored.answered_at is None
        _no_live_calls(rig)


async def test_the_daemon_reconnects_after_ami_loss_and_still_closes_the_call(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=2.0)
    ) as rig:
        ami = rig.daemon.telephony.ami
        call = rig.sim.place_call("5551012", "5000", digits=["2"])
        routing = rig.daemon.routing
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        logins = ami.logins
        await rig.sim.drop_ami_connections()
        await eventually(lambda: ami.logins > logins and ami.connected)
        await asyncio.wait_for(call.ended.wait(), 10)
        await eventually(lambda: rig.daemon.telephony.calls == {})
        stored = await rig.interaction(call)
        assert stored.answered_at is not None and stored.ended_at is not None
        assert stored.end_cause != "gone after reconnect"
        _no_live_calls(rig)


async def test_hold_and_unhold_from_the_desktop_move_both_legs(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=None)
    ) as rig:
        call = rig.sim.place_call("5551013", "5000", digits=["2"])
        routing = rig.daemon.routing
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        info = next(c for c in routing.contacts.values() if c.state == "talking")
        model = rig.sim.model
        await routing.call_action(rig.agent_id, info.interaction_id, "hold", None)
        await eventually(lambda: info.state == "held")
        caller, leg = model.get(call.uniqueid), model.get(call.agent_leg or "")
        assert caller is not None and leg is not None
        assert (caller.context, caller.app, leg.context, leg.app) == (
            "cc-hold",
            "MusicOnHold",
            "cc-hold-agent",
            "Wait",
        )
        await routing.call_action(rig.agent_id, info.interaction_id, "unhold", None)
        await eventually(lambda: info.state == "talking")
        assert caller.bridge is not None and caller.bridge == leg.bridge
        # The agent hangs up: the caller's [cc-hold] goes on to its Hangup().
        rig.sim.apply(model.remote_hangup(leg.uniqueid, rig.sim.clock()))
        await asyncio.wait_for(call.ended.wait(), 5)
        await eventually(lambda: rig.daemon.telephony.calls == {})
        stored = await rig.interaction(call)
        assert stored.ended_at is not None and stored.answered_at is not None
        _no_live_calls(rig)


async def test_click_to_dial_is_followed_from_the_agent_phone_to_its_end(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=0.8)
    ) as rig:
        routing = rig.daemon.routing
        interaction_id = await routing.dial(rig.agent_id, "02079460018")
        await eventually(lambda: routing.contacts[interaction_id].state == "talking")
        # The agent's phone was originated with our ChannelId; the trunk leg it dialled.
        names = sorted(c.name for c in rig.sim.model.channels.values())
        assert names == ["PJSIP/1001-00000000", "PJSIP/trunk-00000001"]
        assert rig.sim.model.get(f"cc-dial-{interaction_id}") is not None
        await eventually(lambda: routing.contacts[interaction_id].state == "wrap_up")
        await routing.writer.flush()
        async with rig.daemon.sessionmaker() as db:
            stored = await db.get(Interaction, interaction_id)
        assert stored is not None and stored.ended_at is not None
        assert stored.agent_id == rig.agent_id
        _no_live_calls(rig)


async def test_a_caller_who_hangs_up_in_the_ivr_closes_the_interaction(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(tmp_path, NEVER_ANSWERS) as rig:
        call = rig.sim.place_call("5551014", "5000", digits=["hangup"])
        await asyncio.wait_for(call.ended.wait(), 5)
        assert call.agi_commands[-1].startswith("GET DATA")
        await eventually(lambda: rig.daemon.telephony.calls == {})
        stored = await rig.interaction(call)
        assert stored.ivr_path == ["welcome", "menu"]
        assert stored.ended_at is not None


async def test_the_agent_hanging_up_while_the_caller_is_held_ends_the_call(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=None)
    ) as rig:
        call = rig.sim.place_call("5551015", "5000", digits=["2"])
        routing = rig.daemon.routing
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        info = next(c for c in routing.contacts.values() if c.state == "talking")
        await routing.call_action(rig.agent_id, info.interaction_id, "hold", None)
        await eventually(lambda: info.state == "held")
        # The agent's phone goes on-hook while the customer listens to music: [cc-hold]
        # would play it forever; the daemon hangs the customer up.
        rig.sim.apply(rig.sim.model.remote_hangup(call.agent_leg or "", rig.sim.clock()))
        await asyncio.wait_for(call.ended.wait(), 5)
        await eventually(lambda: rig.daemon.telephony.calls == {})
        await eventually(lambda: info.state == "wrap_up")
        stored = await rig.interaction(call)
        assert stored.ended_at is not None
        _no_live_calls(rig)


async def test_a_blind_transfer_releases_the_agent_and_ends_their_part(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=None)
    ) as rig:
        rig.sim.set_phone("PJSIP/3000", PhonePolicy(answer_after=0.1, talk_seconds=0.5))
        call = rig.sim.place_call("5551016", "5000", digits=["2"])
        routing = rig.daemon.routing
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        info = next(c for c in routing.contacts.values() if c.state == "talking")
        await routing.call_action(rig.agent_id, info.interaction_id, "transfer", "3000")
        # The agent is done with it at once, whatever the extension does next.
        await eventually(lambda: info.state == "wrap_up")
        stored = await rig.interaction(call)
        answered_at, ended_at = stored.answered_at, stored.ended_at
        assert ended_at is not None and stored.end_cause == "transferred to 3000"
        # The extension answers and talks; nothing of that is the agent's.
        await asyncio.wait_for(call.ended.wait(), 10)
        await asyncio.sleep(0.2)
        stored = await rig.interaction(call)
        assert (stored.answered_at, stored.ended_at) == (answered_at, ended_at)
        assert stored.agent_id == rig.agent_id
        _no_live_calls(rig)


async def test_a_transfer_to_a_queue_rings_the_next_agent_on_the_same_call(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with daemon_with_simulator(
        tmp_path, PhonePolicy(answer_after=0.2, talk_seconds=None)
    ) as rig:
        async with rig.daemon.sessionmaker.begin() as db:
            bob = await users.create_user(
                db,
                username="bob",
                role="agent",
                password="agent-pass-1",
                skills={"billing": 7},
                device="PJSIP/1002",
            )
        rig.sim.set_phone("PJSIP/1002", PhonePolicy(answer_after=0.2, talk_seconds=0.5))
        routing = rig.daemon.routing
        await routing.sync_user(bob.id)
        await routing.set_status(bob.id, "ready", None, actor=Actor(bob.id, "bob", "agent"))
        call = rig.sim.place_call("5551017", "5000", digits=["2"])
        await eventually(lambda: any(c.state == "talking" for c in routing.contacts.values()))
        info = next(c for c in routing.contacts.values() if c.state == "talking")
        assert info.agent_id == rig.agent_id
        await routing.call_action(rig.agent_id, info.interaction_id, "transfer", "billing")
        # Same caller, same interaction: now Bob's, answered on his phone.
        await eventually(
            lambda: (
                (c := routing.contacts.get(info.interaction_id)) is not None
                and c.agent_id == bob.id
                and c.state == "talking"
            )
        )
        assert call.device == "PJSIP/1002"
        await asyncio.wait_for(call.ended.wait(), 10)
        stored = await rig.interaction(call)
        assert stored.agent_id == bob.id and stored.queue == "billing"
        assert stored.ended_at is not None
        _no_live_calls(rig)
