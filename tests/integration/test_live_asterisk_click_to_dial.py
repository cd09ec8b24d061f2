"""A click-to-dial from a `Local/` device, through the real Asterisk 22 and through the
simulated one, comes out the same for the daemon.

The same daemon (`pbx.mode: asterisk`) places the same click-to-dial
(adapters/asterisk/pbx.py `dial`) once against the test bed on a real Asterisk
(tests/integration/live_asterisk.py) and once against the simulator running the same
dialplan (contrib/asterisk/testbed with the shipped one included). The agent's phone is
Local/2007@tb-answer-stay (answers, stays); the test bed has no SIP trunk, so
[cc-outbound] dials a Local phone that answers and hangs up after TB_TALK_SECONDS. Both
must give the same interaction (outbound, answered, ended, the same end cause, about the
same talk time) and leave the agent on no contact, idle once wrap-up is over. Skipped
without the Asterisk build (a failure under CC_REQUIRE_INTEGRATION=1).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from adapters.ami.calls import TRACKED_EVENTS
from adapters.ami.client import AmiClient
from adapters.ami.framing import AmiMessage
from adapters.simasterisk import SimulatedAsterisk
from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import users
from crm_store.actors import Actor
from crm_store.models import Interaction
from tests.component.api_fixtures import FLOW, config_for
from tests.integration.live_asterisk import (
    CONTRIB,
    DAEMON_SECRET,
    DAEMON_USER,
    TESTBED,
    LiveAsterisk,
    asterisk_dir,
    free_port,
)

AGENT_DEVICE = "Local/2007@tb-answer-stay"
NUMBER = "02071838750"
TRUNK_DIAL = "Dial(PJSIP/${EXTEN}@trunk,60)"
LOCAL_DIAL = "Dial(Local/${EXTEN}@tb-answer,60)"


def _without_trunk(shipped: Path) -> None:
    """[cc-outbound] dials a Local phone instead of the (absent) SIP trunk."""
    text = shipped.read_text()
    assert TRUNK_DIAL in text
    shipped.write_text(text.replace(TRUNK_DIAL, LOCAL_DIAL))


def _daemon_config(tmp_path: Path, ami_port: int, agi_port: int) -> Any:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "main.yaml").write_text(FLOW)
    pbx = {
        "mode": "asterisk",
        "ami": {
            "host": "127.0.0.1",
            "port": ami_port,
            "username": DAEMON_USER,
            "secret": DAEMON_SECRET,
            "reconnect_max_seconds": 1,
        },
        "agi": {"host": "127.0.0.1", "port": agi_port},
    }
    return config_for(tmp_path, pbx=pbx, ivr={"flows_dir": str(flows), "default_flow": "main"})


@asynccontextmanager
async def _daemon(tmp_path: Path, ami_port: int, agi_port: int) -> AsyncIterator[Any]:
    app = make_app(_daemon_config(tmp_path, ami_port, agi_port))
    server = TestServer(app)
    await server.start_server()
    try:
        daemon = app[DAEMON]
        await daemon.telephony.ami.wait_connected(10)
        yield daemon
    finally:
        await server.close()


@asynccontextmanager
async def real_asterisk(
    tmp_path: Path, events: list[AmiMessage] | None = None
) -> AsyncIterator[Any]:
    """The daemon on a real Asterisk running the test bed (`events`: every AMI event
    from its start, as the test's own AMI user receives them)."""
    asterisk_dir()  # skips (or fails under CC_REQUIRE_INTEGRATION=1) without a build
    asterisk = LiveAsterisk(tmp_path, agi_port=free_port())
    if events is not None:
        asterisk.events = events
    try:
        await asterisk.start()
        _without_trunk(asterisk.conf / "extensions_contact_center.conf")
        await asterisk.cli("dialplan reload")
        async with _daemon(tmp_path, asterisk.ami_port, asterisk.agi_port) as daemon:
            yield daemon
    finally:
        await asterisk.stop()


@asynccontextmanager
async def simulated_asterisk(
    tmp_path: Path, events: list[AmiMessage] | None = None
) -> AsyncIterator[Any]:
    """The daemon on the simulated Asterisk running the same dialplan (`events`: as
    `real_asterisk`, through an AMI session of its own)."""
    conf = tmp_path / "sim-conf"
    conf.mkdir(parents=True)
    shutil.copy(TESTBED / "extensions.conf", conf)
    shutil.copy(CONTRIB / "extensions_contact_center.conf", conf)
    _without_trunk(conf / "extensions_contact_center.conf")
    agi_port = free_port()
    sim = SimulatedAsterisk(
        ami_port=0,
        agi_address=("127.0.0.1", agi_port),
        username=DAEMON_USER,
        secret=DAEMON_SECRET,
        dialplan_path=conf / "extensions.conf",
        auth_fail_delay=0.05,
    )
    await sim.start()
    watcher = AmiClient(
        host="127.0.0.1",
        port=sim.ami_port,
        username=DAEMON_USER,
        secret=DAEMON_SECRET,
        on_event=(events if events is not None else []).append,
        reconnect_max=1,
    )
    try:
        await watcher.start()
        await watcher.wait_connected(5)
        async with _daemon(tmp_path, sim.ami_port, agi_port) as daemon:
            yield daemon
        assert sim.model.channels == {}, "the simulator left channels behind"
    finally:
        await watcher.stop()
        await sim.stop()


async def _until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _dialer(daemon: Any, device: str) -> int:
    """A ready agent whose phone is `device`."""
    async with daemon.sessionmaker.begin() as db:
        user = await users.create_user(
            db,
            username="clicker",
            role="agent",
            password="agent-pass-1",
            skills={"support": 5},
            device=device,
        )
    agent_id = int(user.id)
    await daemon.routing.sync_user(agent_id)
    await daemon.routing.set_status(
        agent_id, "ready", None, actor=Actor(agent_id, "clicker", "agent")
    )
    return agent_id


async def click_to_dial(daemon: Any) -> dict[str, Any]:
    """An agent with AGENT_DEVICE clicks to dial NUMBER; what the daemon made of it."""
    agent_id = await _dialer(daemon, AGENT_DEVICE)
    routing = daemon.routing
    interaction_id = await routing.dial(agent_id, NUMBER)

    async def stored() -> Interaction:
        await routing.writer.flush()
        async with daemon.sessionmaker() as db:
            found = await db.get(Interaction, interaction_id)
        assert found is not None
        return found

    async def talking() -> bool:
        contact = routing.contacts.get(interaction_id)
        return contact is not None and contact.state == "talking"

    async def closed() -> bool:
        return (await stored()).ended_at is not None

    await _until(talking, 8, "the click-to-dial to be answered")
    await _until(closed, 8, "the click-to-dial to end")
    await _until(lambda: _no_calls(daemon), 5, "the daemon to forget the call")
    ix = await stored()
    agent = routing.router.agents[agent_id]
    contact = routing.contacts.get(interaction_id)
    assert ix.answered_at is not None and ix.ended_at is not None
    after_wrap_up = (agent.wrap_up_until or 0.0) + 0.001
    return {
        "direction": ix.direction,
        "channel": ix.channel,
        "address": ix.address,
        "agent": ix.agent_id == agent_id,
        "answered": True,
        "ended": True,
        "end_cause": ix.end_cause,
        "talk_about_2s": 1.5 <= (ix.ended_at - ix.answered_at).total_seconds() <= 4.0,
        "contact": None if contact is None else contact.state,
        "agent_active": dict(agent.active),
        "agent_idle_after_wrap_up": agent.activity(after_wrap_up),
        "tracker_errors": daemon.telephony.tracker.report["internal_error"],
    }


async def _no_calls(daemon: Any) -> bool:
    telephony = daemon.telephony
    return telephony.calls == {} and telephony.tracker.calls() == {}


async def test_click_to_dial_from_a_local_device_is_the_same_on_both(tmp_path: Path) -> None:
    async with real_asterisk(tmp_path / "real") as daemon:
        real = await click_to_dial(daemon)
    async with simulated_asterisk(tmp_path / "sim") as daemon:
        simulated = await click_to_dial(daemon)
    assert real["direction"] == "outbound" and real["agent_active"] == {}
    assert real["agent_idle_after_wrap_up"] == "idle" and real["talk_about_2s"]
    assert simulated == real


async def busy_click_to_dial(daemon: Any) -> dict[str, Any]:
    """The agent's phone is busy (Local/2004@tb-busy): the click-to-dial fails."""
    agent_id = await _dialer(daemon, "Local/2004@tb-busy")
    routing = daemon.routing
    interaction_id = await routing.dial(agent_id, NUMBER)

    async def stored() -> Interaction:
        await routing.writer.flush()
        async with daemon.sessionmaker() as db:
            found = await db.get(Interaction, interaction_id)
        assert found is not None
        return found

    async def closed() -> bool:
        return (await stored()).ended_at is not None

    await _until(closed, 8, "the failed click-to-dial to end")
    await _until(lambda: _no_calls(daemon), 5, "the daemon to forget the call")
    ix = await stored()
    agent = routing.router.agents[agent_id]
    contact = routing.contacts.get(interaction_id)
    return {
        "direction": ix.direction,
        "answered": ix.answered_at is not None,
        "end_cause": ix.end_cause,
        "contact": None if contact is None else contact.state,
        "agent_active": dict(agent.active),
        "agent_offered": dict(agent.offered),
        "tracker_errors": daemon.telephony.tracker.report["internal_error"],
    }


async def test_a_click_to_dial_to_a_busy_local_phone_is_the_same_on_both(tmp_path: Path) -> None:
    async with real_asterisk(tmp_path / "real") as daemon:
        real = await busy_click_to_dial(daemon)
    async with simulated_asterisk(tmp_path / "sim") as daemon:
        simulated = await busy_click_to_dial(daemon)
    assert real["direction"] == "outbound" and not real["answered"]
    assert simulated == real


SUPERVISOR_DEVICE, SPIED_DEVICE = "Local/2011@tb-answer-stay", "Local/2010@tb-answer-stay"
COMPARED = TRACKED_EVENTS | {"Newstate", "LocalBridge", "HangupRequest", "SoftHangupRequest"}


def _pair_events(events: list[AmiMessage], device: str) -> set[tuple[str, str, str]]:
    """(event, half, Application) of the events about `device`'s pair (as Channel or
    Dest), run-independent; OriginateResponse with its Response and Reason."""
    rows = set()
    for m in events:
        name = str(m.get("DestChannel") or m.get("Channel") or m.get("LocalOneChannel") or "")
        if m.event not in COMPARED or not name.startswith(f"{device}-"):
            continue
        if m.event == "OriginateResponse":
            detail = f"{m.get('Response')} {m.get('Reason')} {m.get('Application')}"
        else:
            detail = str(m.get("Application") or m.get("DialStatus") or "")
        rows.add((str(m.event), name.rpartition(";")[2], detail))
    return rows


async def spy(daemon: Any, events: list[AmiMessage]) -> set[tuple[str, str, str]]:
    """The agent's phone waits in [cc-hold-agent]; the supervisor's phone spies on it,
    then hangs up; what the supervisor's pair sent."""
    telephony = daemon.telephony
    await telephony.ami.send(
        {
            "Action": "Originate",
            "Channel": SPIED_DEVICE,
            "Context": "cc-hold-agent",
            "Exten": "s",
            "Priority": "1",
            "Async": "true",
        }
    )
    await _until(lambda: _named(events, SPIED_DEVICE, "Wait"), 5, "the agent's leg")
    await telephony.spy(SUPERVISOR_DEVICE, SPIED_DEVICE, "listen")
    await _until(lambda: _named(events, SUPERVISOR_DEVICE, "Wait"), 5, "the spy to answer")
    await asyncio.sleep(0.3)
    for device in (SUPERVISOR_DEVICE, SPIED_DEVICE):
        phone = next(
            str(m.get("Channel"))
            for m in events
            if m.event == "Newchannel" and str(m.get("Channel")).startswith(f"{device}-")
        )
        await telephony.ami.send({"Action": "Hangup", "Channel": phone.replace(";1", ";2")})
        await asyncio.sleep(0.5)
    await _until(lambda: _gone(events, SUPERVISOR_DEVICE), 5, "the spy to end")
    return _pair_events(events, SUPERVISOR_DEVICE)


async def _named(events: list[AmiMessage], device: str, app: str) -> bool:
    return any(
        m.event == "Newexten"
        and str(m.get("Channel")).startswith(f"{device}-")
        and m.get("Application") == app
        for m in events
    )


async def _gone(events: list[AmiMessage], device: str) -> bool:
    hung = {
        str(m.get("Channel"))[-1]
        for m in events
        if m.event == "Hangup" and str(m.get("Channel")).startswith(f"{device}-")
    }
    return hung == {"1", "2"}


async def test_a_spy_from_a_local_device_is_the_same_on_both(tmp_path: Path) -> None:
    real_events: list[AmiMessage] = []
    async with real_asterisk(tmp_path / "real", real_events) as daemon:
        real = await spy(daemon, real_events)
    simulated_events: list[AmiMessage] = []
    async with simulated_asterisk(tmp_path / "sim", simulated_events) as daemon:
        simulated = await spy(daemon, simulated_events)
    assert ("OriginateResponse", "1", "Success 4 ChanSpy") in real
    assert not any(row[0] == "Newexten" and row[2] == "ChanSpy" for row in real)
    assert simulated == real
