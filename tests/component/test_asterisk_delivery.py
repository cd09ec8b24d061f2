"""Delivering a waiting call to an agent's phone on Asterisk, on recorded bytes.

The caller of trace e1 waits on music on hold (its CoreShowChannels lists it); the daemon
finds it at start-up (an open interaction with its Uniqueid) and queues it. The agent's
device is the one e1 dials, so when the daemon Redirects the caller to the agent context
the replay answers with what Asterisk really sent after e1's Redirect: the Dial, the
answer, the bridge, and five seconds later both hang-ups. The recording is cut where the
test needs time to act (hold, unhold, a phone that does not answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import interactions, migrate, users
from crm_store.actors import Actor
from crm_store.database import make_engine, make_sessionmaker
from routing.router import RoutingError
from routing.telephony import TelephonyError
from tests.component.api_fixtures import asterisk_config_for
from tests.fakes.ami_replay import TRACES, ReplayServer, Scenario

CALLER = "Local/5551004@simcaller-00000007;1"
CALLER_UNIQUEID = "1795327460.14"
AGENT_DEVICE = "Local/agent1002@agents"
AGENT_LEG = "Local/agent1002@agents-00000008;1"


@dataclass
class Delivery:
    """The daemon, its fake Asterisk, the waiting call and the ready agent."""

    daemon: Any
    ami: ReplayServer
    interaction_id: int
    agent_id: int
    rest: bytes  # what Asterisk sent after the cut, to push when the test wants it
    daemon_server: TestServer | None = None  # the daemon's HTTP side, for browser-like tests

    def actions(self, name: str) -> list[str]:
        return [b for b in self.ami.received_blocks if b.startswith(f"Action: {name}\r\n")]


def cut_after_redirect(marker: bytes) -> tuple[Scenario, bytes]:
    """e1, with the reply to its Redirect cut just before `marker`."""
    scenario = Scenario.load("e1_hold_redirect_to_agent")
    step = next(s for s in scenario.steps if s.action == "redirect")
    at = step.reply.index(marker)
    step.reply, rest = step.reply[:at], step.reply[at:]
    return scenario, rest


async def wait_for(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def delivery(tmp_path: Path, marker: bytes) -> AsyncIterator[Delivery]:
    """The daemon on e1 cut at `marker`: the call is adopted, offered and rung."""
    scenario, rest = cut_after_redirect(marker)
    ami = await ReplayServer(scenario, answer_unknown=True).start()
    config = asterisk_config_for(
        tmp_path,
        ami.port,
        # A long offer timeout: whatever moves the offer on here comes from Asterisk.
        queues=[
            {"name": name, "channels": ["voice"], "offer_timeout_seconds": 60}
            for name in ("support", "billing", "spanish")  # the bundled flows name them
        ],
    )
    await migrate.upgrade(config.database.url)
    engine = make_engine(config.database.url)
    async with make_sessionmaker(engine).begin() as db:
        waiting = await interactions.record_interaction(
            db,
            channel="voice",
            external_id=CALLER_UNIQUEID,
            queue="support",
            address="5551004",
            started_at=datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
        )
        agent = await users.create_user(
            db,
            username="bob",
            role="agent",
            password="agent-pass-1",
            skills={},
            device=AGENT_DEVICE,
        )
    await engine.dispose()
    app = make_app(config)
    server = TestServer(app)
    await server.start_server()
    try:
        daemon = app[DAEMON]
        found = Delivery(daemon, ami, waiting.id, agent.id, rest, server)
        await wait_for(lambda: waiting.id in daemon.routing.contacts, "the call to be adopted")
        await daemon.routing.set_status(
            agent.id, "ready", None, actor=Actor(agent.id, "bob", "agent")
        )
        await wait_for(lambda: bool(found.actions("Redirect")), "the ring")
        yield found
    finally:
        await server.close()
        await ami.stop()


async def test_answered_on_the_phone_held_and_unheld_from_the_desktop_then_hung_up(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: SoftHangupRequest") as d:
        routing = d.daemon.routing
        ring = d.actions("Redirect")[0]
        assert f"Channel: {CALLER}" in ring and "Context: cc-agents" in ring
        assert any(f"Value: {AGENT_DEVICE}" in b for b in d.actions("Setvar"))
        # e1's Dial, answer and bridge: the agent picked up.
        await wait_for(lambda: routing.contacts[d.interaction_id].state == "talking", "answer")
        assert routing.contacts[d.interaction_id].agent_id == d.agent_id

        await routing.call_action(d.agent_id, d.interaction_id, "hold", None)
        hold = d.actions("Redirect")[1]
        for line in (
            f"Channel: {CALLER}",
            "Context: cc-hold",
            f"ExtraChannel: {AGENT_LEG}",
            "ExtraContext: cc-hold-agent",
        ):
            assert line in hold, (line, hold)
        await wait_for(lambda: routing.contacts[d.interaction_id].state == "held", "hold")
        # Hold twice is a clear error, and sends nothing.
        with pytest.raises(RoutingError, match="already on hold"):
            await routing.call_action(d.agent_id, d.interaction_id, "hold", None)
        assert len(d.actions("Redirect")) == 2

        await asyncio.sleep(0.05)
        await routing.call_action(d.agent_id, d.interaction_id, "unhold", None)
        (bridge,) = d.actions("Bridge")
        assert f"Channel1: {CALLER}" in bridge and f"Channel2: {AGENT_LEG}" in bridge
        await wait_for(lambda: routing.contacts[d.interaction_id].state == "talking", "unhold")
        assert routing.contacts[d.interaction_id].hold_total > 0

        # The rest of e1: the agent hangs up, then the caller's channel goes.
        await d.ami.push(d.rest)
        await wait_for(
            lambda: routing.contacts[d.interaction_id].state == "wrap_up", "the end of the call"
        )
        await routing.writer.flush()
        async with d.daemon.sessionmaker() as db:
            ix = await interactions.get_interaction(db, d.interaction_id)
        assert ix.agent_id == d.agent_id
        assert ix.offered_at is not None and ix.answered_at is not None
        assert ix.ended_at is not None and ix.end_cause


async def test_a_phone_that_does_not_answer_moves_the_offer_on_at_once(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: DialEnd") as d:
        routing = d.daemon.routing
        assert routing.contacts[d.interaction_id].state == "offered"
        # Asterisk's own DialEnd for this Dial, as the phone would end it unanswered.
        dial_end = d.rest[: d.rest.index(b"\r\n\r\n") + 4]
        assert b"DialStatus: ANSWER\r\n" in dial_end
        await d.ami.push(dial_end.replace(b"DialStatus: ANSWER", b"DialStatus: NOANSWER"))
        # Long before the 60 s offer timeout: the agent missed it and is not ready.
        await wait_for(lambda: routing.router.agents[d.agent_id].status == "not_ready", "not ready")
        assert routing.router.agents[d.agent_id].reason == "missed-offer"
        assert routing.contacts[d.interaction_id].state == "waiting"
        # [cc-agents] already sends the caller back to [cc-holding]: no second Redirect.
        await asyncio.sleep(0.1)
        assert len(d.actions("Redirect")) == 1


async def test_a_cancelled_dial_from_an_earlier_ring_is_not_a_miss(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: DialEnd") as d:
        routing = d.daemon.routing
        dial_end = d.rest[: d.rest.index(b"\r\n\r\n") + 4]
        # CANCEL is the daemon's own Redirect ending a Dial (or the caller hanging up).
        await d.ami.push(dial_end.replace(b"DialStatus: ANSWER", b"DialStatus: CANCEL"))
        await asyncio.sleep(0.2)
        assert routing.router.agents[d.agent_id].status == "ready"
        assert routing.contacts[d.interaction_id].state == "offered"
        # A failed leg of another device is not this ring's either.
        other = dial_end.replace(b"agent1002@agents", b"agent1003@agents")
        await d.ami.push(other.replace(b"DialStatus: ANSWER", b"DialStatus: NOANSWER"))
        await asyncio.sleep(0.2)
        assert routing.contacts[d.interaction_id].state == "offered"


async def test_hold_before_the_agent_answers_is_refused(tmp_path: Path, fast_hasher: None) -> None:
    async with delivery(tmp_path, b"Event: DialEnd") as d:
        with pytest.raises(TelephonyError, match="not connected to an agent"):
            await d.daemon.telephony.hold(d.interaction_id)
        with pytest.raises(TelephonyError, match="not connected to an agent"):
            await d.daemon.telephony.unhold(d.interaction_id)
        assert d.actions("Bridge") == []


def _blocks(data: bytes) -> list[bytes]:
    return [b + b"\r\n\r\n" for b in data.split(b"\r\n\r\n") if b.strip()]


async def test_a_caller_who_hangs_up_while_the_agent_rings_is_abandoned_and_frees_the_agent(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with delivery(tmp_path, b"Event: DialEnd") as d:
        routing = d.daemon.routing
        # From the rest of e1, only the caller's own channel going away (as when the
        # caller hangs up during the ring); the agent's leg is left out.
        gone = b"".join(
            b
            for b in _blocks(d.rest)
            if b.startswith(
                (b"Event: HangupRequest", b"Event: SoftHangupRequest", b"Event: Hangup")
            )
            and f"Channel: {CALLER}\r\n".encode() in b
        )
        assert gone.count(b"Event: Hangup\r\n") == 1
        await d.ami.push(gone)
        await wait_for(lambda: d.interaction_id not in routing.contacts, "the abandon")
        assert routing.router.agents[d.agent_id].status == "ready"
        assert routing.router.agents[d.agent_id].offered == {}
        await routing.writer.flush()
        async with d.daemon.sessionmaker() as db:
            ix = await interactions.get_interaction(db, d.interaction_id)
        assert ix.ended_at is not None and ix.answered_at is None
        assert ix.end_cause


def _e2_block(event: bytes, channel: bytes) -> bytes:
    """The first `event` about `channel` in trace e2 (a CTI-originated agent leg)."""
    data = (TRACES / "e2_originate_agent_then_bridge.ami.txt").read_bytes()
    for block in _blocks(data):
        if block.startswith(b"Event: " + event + b"\r\n") and b"Channel: " + channel in block:
            return block
    raise AssertionError(f"no {event!r} for {channel!r} in e2")


async def test_click_to_dial_is_followed_from_the_agents_phone_to_the_end(
    tmp_path: Path, fast_hasher: None
) -> None:
    ami = await ReplayServer(
        Scenario.load("e1_hold_redirect_to_agent"), answer_unknown=True
    ).start()
    config = asterisk_config_for(
        tmp_path,
        ami.port,
    )
    app = make_app(config)
    server = TestServer(app)
    await server.start_server()
    try:
        daemon = app[DAEMON]
        await daemon.telephony.ami.wait_connected(5)
        async with daemon.sessionmaker.begin() as db:
            agent = await users.create_user(
                db,
                username="dee",
                role="agent",
                password="agent-pass-1",
                device="Local/agent1001@agents",
            )
        await daemon.routing.sync_user(agent.id)
        interaction_id = await daemon.routing.dial(agent.id, "+442079460018")
        (originate,) = [b for b in ami.received_blocks if b.startswith("Action: Originate")]
        uid = f"cc-dial-{interaction_id}"
        for line in (
            "Channel: Local/agent1001@agents",
            "Context: cc-outbound",
            "Exten: +442079460018",
            f"ChannelId: {uid}",
            f"Variable: CC_INTERACTION_ID={interaction_id}",
            f"Variable: CTI_CALLID={uid}",
        ):
            assert line in originate, (line, originate)

        # e2's originated agent leg and the leg it is bridged to, given the Uniqueid
        # and tag the Originate asked for (the tag shows from the channel's second event).
        leg = b"Local/agent1001@agents-0000000a;1"
        ours = uid.encode()

        def as_ours(block: bytes) -> bytes:
            # e2's agent leg becomes ours; the leg it meets keeps its own Uniqueid but,
            # as in e2, shares the call's Linkedid.
            block = block.replace(b"Uniqueid: 1795327471.20", b"Uniqueid: " + ours)
            block = re.sub(rb"Linkedid: [0-9.]+", b"Linkedid: " + ours, block)
            return block.replace(b"CTI_CALLID=\r\n", b"CTI_CALLID=" + ours + b"\r\n")

        await daemon.routing.writer.flush()
        await ami.push(_e2_block(b"Newchannel", leg).replace(b"1795327471.20", uid.encode()))
        await ami.push(as_ours(_e2_block(b"BridgeEnter", leg)))
        customer = _e2_block(b"BridgeEnter", b"Local/5551005@simcaller-00000009;1")
        await ami.push(as_ours(customer))
        routing = daemon.routing
        await wait_for(lambda: routing.contacts[interaction_id].state == "talking", "answer")
        assert daemon.telephony.calls[interaction_id].channel == leg.decode()

        # Hold on a click-to-dial puts the customer's leg (not the agent's) on music.
        await routing.call_action(agent.id, interaction_id, "hold", None)
        hold = [b for b in ami.received_blocks if b.startswith("Action: Redirect")][-1]
        assert "Channel: Local/5551005@simcaller-00000009;1" in hold
        assert f"ExtraChannel: {leg.decode()}" in hold

        await ami.push(as_ours(_e2_block(b"Hangup", leg)))
        await wait_for(lambda: routing.contacts[interaction_id].state == "wrap_up", "the end")
        await routing.writer.flush()
        async with daemon.sessionmaker() as db:
            ix = await interactions.get_interaction(db, interaction_id)
        assert (ix.direction, ix.agent_id) == ("outbound", agent.id)
        assert ix.answered_at is not None and ix.ended_at is not None
    finally:
        await server.close()
        await ami.stop()
