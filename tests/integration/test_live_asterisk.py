"""The daemon in `pbx.mode: asterisk` against a real Asterisk 22 (contrib/asterisk/testbed).

Each test starts its own Asterisk (about 1 s) and daemon on free ports, places callers
as Local channels into the shipped contrib dialplan, and checks what the daemon recorded.
Skipped when the Asterisk build is absent (a failure under CC_REQUIRE_INTEGRATION=1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from contact_center.app import make_app
from contact_center.keys import DAEMON
from contact_center.notifier import contact_message
from crm_store import users
from crm_store.actors import Actor
from crm_store.models import Interaction
from tests.component.api_fixtures import FLOW, config_for
from tests.integration.live_asterisk import (
    DAEMON_SECRET,
    DAEMON_USER,
    LiveAsterisk,
    asterisk_dir,
    free_port,
)


@dataclass
class Bed:
    """A running Asterisk and the daemon connected to it."""

    asterisk: LiveAsterisk
    app: web.Application
    server: TestServer
    running: list[TestServer]

    async def start_daemon(self) -> None:
        """Start the daemon (stopped by the fixture at the end) and wait for its AMI."""
        await self.server.start_server()
        self.running.append(self.server)
        await self.daemon.telephony.ami.wait_connected(10)

    @property
    def daemon(self) -> Any:
        return self.app[DAEMON]

    async def agent(self, username: str, device: str | None, skills: dict[str, int]) -> int:
        """A ready agent with `device` (None: no phone)."""
        daemon = self.daemon
        async with daemon.sessionmaker.begin() as db:
            user = await users.create_user(
                db,
                username=username,
                role="agent",
                password="agent-pass-1",
                skills=skills,
                device=device,
            )
        await daemon.routing.sync_user(user.id)
        await daemon.routing.set_status(
            user.id, "ready", None, actor=Actor(user.id, username, "agent")
        )
        return int(user.id)

    async def interactions(self) -> list[Interaction]:
        """Every interaction as stored now, oldest first."""
        await self.daemon.routing.writer.flush()
        async with self.daemon.sessionmaker() as db:
            return list((await db.scalars(select(Interaction).order_by(Interaction.id))).all())

    async def interaction(self, external_id: str | None = None) -> Interaction:
        """The (only, or given) voice interaction as stored now."""
        await self.daemon.routing.writer.flush()
        async with self.daemon.sessionmaker() as db:
            rows = (await db.scalars(select(Interaction).order_by(Interaction.id))).all()
        if external_id is not None:
            rows = [r for r in rows if r.external_id == external_id]
        assert rows, "no interaction recorded"
        return rows[-1]

    async def call(self, caller: str, key: str = "2", *, wait_for: str = "GET DATA") -> str:
        """A caller dials in and presses `key` at the IVR's menu; their phone's channel."""
        since = len(self.asterisk.events)
        phone = await self.asterisk.call(caller)
        await self.asterisk.wait_event(agi_command(wait_for), since=since)
        await self.asterisk.press(phone, key)
        return phone

    async def until(
        self, check: Callable[[], Awaitable[bool]], within: float = 15, what: str = ""
    ) -> None:
        """Poll `check` until true."""
        deadline = time.monotonic() + within
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what or check}\n{self.asterisk.console_tail(15)}"
                )
            await asyncio.sleep(0.1)


def daemon_config(tmp_path: Path, asterisk: LiveAsterisk, **sections: Any) -> Any:
    """The shipped config, `pbx.mode: asterisk` on the test bed, the test flow."""
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "main.yaml").write_text(FLOW)
    pbx = {
        "mode": "asterisk",
        "ami": {
            "host": "127.0.0.1",
            "port": asterisk.ami_port,
            "username": DAEMON_USER,
            "secret": DAEMON_SECRET,
            "reconnect_max_seconds": 1,
        },
        "agi": {"host": "127.0.0.1", "port": asterisk.agi_port},
    }
    sections.setdefault("ivr", {"flows_dir": str(flows), "default_flow": "main"})
    return config_for(tmp_path, pbx=pbx, **sections)


@pytest.fixture
def asterisk_build() -> Path:
    """The Asterisk build, or a skip with the reason."""
    return asterisk_dir()


BedFactory = Callable[..., Awaitable[Bed]]


@pytest.fixture
async def bed(tmp_path: Path, asterisk_build: Path) -> AsyncIterator[BedFactory]:
    """Start Asterisk then the daemon (options: LiveAsterisk's and config sections);
    both are stopped at the end whatever happened."""
    started: list[LiveAsterisk] = []
    servers: list[TestServer] = []

    async def make(start_daemon: bool = True, **options: Any) -> Bed:
        sections = options.pop("sections", {})
        asterisk = LiveAsterisk(tmp_path, agi_port=free_port(), **options)
        started.append(asterisk)
        await asterisk.start()
        app = make_app(daemon_config(tmp_path, asterisk, **sections))
        made = Bed(asterisk, app, TestServer(app), servers)
        if start_daemon:
            await made.start_daemon()
        return made

    try:
        yield make
    finally:
        for server in servers:
            await server.close()
        for asterisk in started:
            await asterisk.stop()


async def test_ivr_queue_answer_talk_hangup(bed: BedFactory) -> None:
    """The core path: IVR over FastAGI (a key pressed on the caller's phone), the queue,
    the ready agent's phone answers, they talk, the agent hangs up: the interaction is
    closed with its answer time and the talk time the phone spent."""
    b = await bed()
    agent_id = await b.agent("alice", "Local/2001@tb-answer", {"support": 5})
    # The caller presses 2 (support) while the menu's GET DATA runs.
    await b.call("5551001", "2")

    async def closed() -> bool:
        ix = await b.interaction()
        return ix.ended_at is not None

    await b.until(closed, within=20, what="the interaction to close")
    ix = await b.interaction()
    assert ix.queue == "support"
    assert ix.agent_id == agent_id
    assert ix.ivr_inputs is not None and ix.ivr_inputs.get("menu") == "2"
    assert ix.answered_at is not None and ix.offered_at is not None
    talk = (ix.ended_at - ix.answered_at).total_seconds()
    assert 1.5 <= talk <= 4.0, talk  # TB_TALK_SECONDS = 2
    assert not (ix.end_cause or "").startswith("ivr:")


def agi_command(prefix: str) -> Callable[[Any], bool]:
    """Matches the AGIExecStart of a FastAGI command starting with `prefix`."""
    return lambda m: (
        m.get("Event") == "AGIExecStart" and str(m.get("Command", "")).startswith(prefix)
    )


async def test_missing_prompts_are_skipped_not_taken_for_a_hangup(bed: BedFactory) -> None:
    """Issue 11, 1: no prompt files at all. STREAM FILE and GET DATA answer
    `200 result=-1 endpos=0` while the caller is still there: the IVR goes on without the
    sound (keys are still read), the call is queued, answered and closed normally."""
    b = await bed(prompts=())
    agent_id = await b.agent("alice", "Local/2001@tb-answer", {"billing": 5})
    await b.call("5551002", "1", wait_for="WAIT FOR DIGIT")

    async def closed() -> bool:
        return (await b.interaction()).ended_at is not None

    await b.until(closed, within=20, what="the interaction to close")
    ix = await b.interaction()
    assert ix.end_cause != "ivr: caller_hangup"
    assert (ix.queue, ix.agent_id) == ("billing", agent_id)
    assert ix.answered_at is not None


async def wait_queued(b: Bed, within: float = 15) -> int:
    """The id of the first contact the daemon holds as waiting."""

    async def queued() -> bool:
        return any(c.state == "waiting" for c in b.daemon.routing.contacts.values())

    await b.until(queued, within=within, what="a waiting contact")
    return next(i for i, c in b.daemon.routing.contacts.items() if c.state == "waiting")


async def test_holding_without_music_on_hold_waits_quietly(bed: BedFactory) -> None:
    """Issue 11, 9: with no music-on-hold class, MusicOnHold() returns at once and the
    holding context's loop spun (megabytes of AMI a second, Ping timing out). The
    shipped dialplan now waits in silence instead: a handful of events, the link up."""
    b = await bed(music_on_hold=False)
    await b.call("5551003")
    await wait_queued(b)  # no agent: the caller stays in [cc-holding]
    await asyncio.sleep(0.5)
    before = len(b.asterisk.events)
    await asyncio.sleep(2)
    burst = b.asterisk.events[before:]
    assert len(burst) < 50, f"{len(burst)} AMI events in 2 s while one caller waits"
    assert any(c.endswith(";1") and "tb-caller" in c for c in await b.asterisk.channels())
    assert b.daemon.telephony.ami.connected


async def answered_call(b: Bed, caller: str, device: str) -> tuple[int, int, str]:
    """A call answered by a new agent on `device`: (interaction, agent, caller's phone)."""
    agent_id = await b.agent(f"agent{caller}", device, {"support": 5})
    phone = await b.call(caller, "2")

    async def talking() -> bool:
        return any(c.state == "talking" for c in b.daemon.routing.contacts.values())

    await b.until(talking, what="the call to be answered")
    ix = next(i for i, c in b.daemon.routing.contacts.items() if c.state == "talking")
    return ix, agent_id, phone


async def test_caller_hanging_up_on_hold_hangs_up_the_agent_leg(bed: BedFactory) -> None:
    """Issue 11, 5: the caller hangs up while on hold; the agent's leg, parked in
    [cc-hold-agent]'s Wait(7200), is hung up too and the call ends."""
    b = await bed()
    ix, _agent, phone = await answered_call(b, "5551005", "Local/2005@tb-answer-stay")
    await b.daemon.telephony.hold(ix)
    await b.asterisk.wait_event(
        lambda m: m.get("Event") == "Newexten" and m.get("Context") == "cc-hold-agent"
    )
    await b.asterisk.hang_up(phone)

    async def agent_leg_gone() -> bool:
        return not any("tb-answer-stay" in c for c in await b.asterisk.channels())

    await b.until(agent_leg_gone, within=5, what="the agent's leg to hang up")

    async def closed() -> bool:
        return (await b.interaction()).ended_at is not None

    await b.until(closed, within=5, what="the interaction to close")


async def test_undialable_device_moves_the_offer_on_at_once(bed: BedFactory) -> None:
    """Issue 11, 6: a device Asterisk cannot dial at all (here a Local channel into a
    context that does not exist) raises no DialBegin/DialEnd; the offer used to stay for
    the whole offer timeout (20 s). The dialplan's CcRingFailed user event ends it now."""
    b = await bed()
    agent_id = await b.agent("nobody", "Local/2006@tb-nowhere", {"support": 5})
    since = len(b.asterisk.events)
    await b.call("5551006", "2")
    # The offer: the caller is Redirected into [cc-agents], whose Dial fails at once.
    await b.asterisk.wait_event(
        lambda m: m.get("Event") == "Newexten" and m.get("Application") == "Dial", since=since
    )
    started = time.monotonic()

    async def moved_on() -> bool:
        contacts = list(b.daemon.routing.contacts.values())
        agent = b.daemon.routing.router.agents[agent_id]
        return [c.state for c in contacts] == ["waiting"] and agent.status == "not_ready"

    await b.until(moved_on, within=5, what="the offer to end (a missed offer)")
    assert time.monotonic() - started < 5


async def test_agent_without_a_device_gets_no_voice_offers(bed: BedFactory) -> None:
    """Issue 11, 13: a ready agent with no phone device is never offered a voice call
    (nothing could ring); the call waits, then goes to an agent who has a phone."""
    b = await bed()
    phoneless = await b.agent("nophone", None, {"support": 9})
    since = len(b.asterisk.events)
    await b.call("5551013", "2")
    ix = await wait_queued(b)
    await asyncio.sleep(1.0)
    assert b.daemon.routing.contacts[ix].state == "waiting"
    assert b.daemon.routing.router.agents[phoneless].status == "ready"
    assert (await b.interaction()).offered_at is None
    assert not any(
        m.get("Event") == "Newexten" and m.get("Context") == "cc-agents"
        for m in b.asterisk.events[since:]
    )
    with_phone = await b.agent("withphone", "Local/2013@tb-answer", {"support": 5})

    async def answered() -> bool:
        return (await b.interaction()).answered_at is not None

    await b.until(answered, what="the agent with a phone to answer")
    assert (await b.interaction()).agent_id == with_phone


async def test_click_to_dial_does_not_wait_for_the_phone_to_answer(bed: BedFactory) -> None:
    """Issue 11, 3: the Originate of a click-to-dial waited for the agent's phone to
    answer (panoramisk held its reply until OriginateResponse) and failed at the action
    timeout while the phone went on ringing. It is answered at once now."""
    b = await bed(sections={})
    b.daemon.telephony.ami.action_timeout = 1.0  # the phone rings 2 s (TB_LATE_SECONDS)
    agent_id = await b.agent("dialer", "Local/2003@tb-answer-late", {"support": 5})
    started = time.monotonic()
    interaction_id = await b.daemon.routing.dial(agent_id, "+442071838750")
    assert time.monotonic() - started < 1.0
    assert b.daemon.routing.contacts[interaction_id].state == "dialing"


async def test_click_to_dial_to_a_busy_phone_ends_the_attempt(bed: BedFactory) -> None:
    """Issue 11, 3: with the Originate answered at once, its OriginateResponse says how
    it went: a phone that is busy ends the click-to-dial and frees the agent."""
    b = await bed()
    agent_id = await b.agent("busy", "Local/2004@tb-busy", {"support": 5})
    interaction_id = await b.daemon.routing.dial(agent_id, "+442071838750")

    async def ended() -> bool:
        return interaction_id not in b.daemon.routing.contacts or b.daemon.routing.contacts[
            interaction_id
        ].state in ("wrap_up", "closed")

    await b.until(ended, within=8, what="the failed click-to-dial to end")
    ix = await b.interaction()
    assert ix.ended_at is not None


async def test_calls_that_came_while_the_daemon_was_down_are_picked_up(
    bed: BedFactory,
) -> None:
    """Issue 11, 2: a call arrives while the daemon is down: the IVR's FastAGI fails and
    the caller waits in [cc-holding] untagged. When the daemon connects, its resync finds
    the caller there and sends them through the IVR again, and the call is answered."""
    b = await bed(start_daemon=False)
    phone = await b.asterisk.call("5551020")
    await b.asterisk.wait_event(
        lambda m: (
            m.get("Event") == "Newexten"
            and m.get("Context") == "cc-holding"
            and m.get("Application") == "MusicOnHold"
        )
    )
    since = len(b.asterisk.events)
    await b.start_daemon()
    await b.agent("late", "Local/2020@tb-answer", {"support": 5})
    await b.asterisk.wait_event(agi_command("GET DATA"), since=since)
    await b.asterisk.press(phone, "2")

    async def answered() -> bool:
        rows = await b.interactions()
        return bool(rows) and rows[-1].answered_at is not None

    await b.until(answered, what="the stray call to be answered")
    ix = await b.interaction()
    assert (ix.queue, ix.address) == ("support", "5551020")


async def test_hold_without_music_on_hold_keeps_the_caller(bed: BedFactory) -> None:
    """Issue 11, 9: without a music-on-hold class, [cc-hold]'s MusicOnHold() returned at
    once and its next priority hung the caller up. Now the caller waits in silence;
    unhold bridges them again, and when the agent hangs up nobody is left behind."""
    b = await bed(music_on_hold=False)
    ix, _agent, phone = await answered_call(b, "5551009", "Local/2009@tb-answer-stay")
    await b.daemon.telephony.hold(ix)
    await asyncio.sleep(1.0)
    assert phone in await b.asterisk.channels(), "the caller was hung up on hold"
    await b.daemon.telephony.unhold(ix)
    await b.asterisk.wait_event(
        lambda m: m.get("Event") == "BridgeEnter" and "tb-caller" in str(m.get("Channel"))
    )
    agent_leg = b.daemon.telephony.calls[ix].agent_channel
    await b.asterisk.hang_up(agent_leg)

    async def nobody_left() -> bool:
        return await b.asterisk.channels() == []

    await b.until(nobody_left, within=5, what="every channel to hang up")


async def test_click_to_dial_from_a_local_device_is_answered_and_closed(
    bed: BedFactory,
) -> None:
    """Issue 11, 4: click-to-dial from a `Local/` device. The tag showed first on the `;2`
    half (the phone), so the call was tracked there, apart from the `;1` half that
    Originate named and that dials out: the daemon never linked it, the agent stayed
    "dialing" and the interaction never closed. Here the phone answers, the far end (a
    Local phone standing in for the trunk) answers and hangs up after TB_TALK_SECONDS:
    the interaction is answered, then closed, and the agent is free of it."""
    b = await bed()
    # The test bed has no SIP trunk: [cc-outbound] dials a phone that answers instead.
    shipped = b.asterisk.conf / "extensions_contact_center.conf"
    dialplan = shipped.read_text()
    assert "Dial(PJSIP/${EXTEN}@trunk,60)" in dialplan
    shipped.write_text(dialplan.replace("PJSIP/${EXTEN}@trunk", "Local/${EXTEN}@tb-answer"))
    await b.asterisk.cli("dialplan reload")
    agent_id = await b.agent("clicker", "Local/2007@tb-answer-stay", {"support": 5})
    interaction_id = await b.daemon.routing.dial(agent_id, "02071838750")

    async def answered() -> bool:
        return (await b.interaction()).answered_at is not None

    await b.until(answered, within=8, what="the click-to-dial to be answered")
    assert b.daemon.routing.contacts[interaction_id].state == "talking"

    async def closed() -> bool:
        return (await b.interaction()).ended_at is not None

    await b.until(closed, within=8, what="the click-to-dial interaction to close")
    ix = await b.interaction()
    talk = (ix.ended_at - ix.answered_at).total_seconds()
    assert 1.5 <= talk <= 4.0, talk  # TB_TALK_SECONDS = 2
    contact = b.daemon.routing.contacts.get(interaction_id)
    assert contact is None or contact.state in ("wrap_up", "closed")
    assert str(interaction_id) not in b.daemon.routing.router.agents[agent_id].active
    assert not any("tb-answer" in c for c in await b.asterisk.channels())


async def test_accept_on_a_phone_the_desktop_cannot_answer_is_a_state(bed: BedFactory) -> None:
    """Issue 11, 10: a Local/ device cannot be answered from the desktop (no remote
    answer): Accept is not an error; the contact says "pick up your phone" until the
    phone is picked up, then it is talking as usual."""
    b = await bed()
    agent_id = await b.agent("alice", "Local/2001@tb-answer-late", {"support": 5})
    routing = b.daemon.routing
    await b.call("5551077", "2")

    def offered() -> Any:
        return next((c for c in routing.contacts.values() if c.state == "offered"), None)

    async def is_offered() -> bool:
        return offered() is not None

    await b.until(is_offered, what="the offer")
    contact = offered()
    await routing.accept(agent_id, contact.interaction_id)  # no error
    assert contact.accepted_at is not None
    assert contact_message(contact)["pick_up"] is True

    async def talking() -> bool:
        return contact.state == "talking"

    await b.until(talking, within=20, what="the late phone to answer")
    assert contact.accepted_at is None and "pick_up" not in contact_message(contact)
    assert contact.agent_id == agent_id
