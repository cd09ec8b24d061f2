"""The same recorded AMI session gives the same decisions through the live daemon's parts
and through `contact-center replay` (issue 9).

Live: the real Asterisk adapter (`AsteriskPbx`: its call tracker and call -> contact
mapping) is fed the recording's messages as they arrived, publishes contact events on
the daemon's bus, and the real routing service (real store, real notifier port) decides
and rings through the adapter; only the AMI socket is absent (actions are answered
"Success", as Asterisk answers a Setvar or a Redirect). Calls are queued where replay
queues them (an Asterisk queue join, or the holding context with `CTI_QUEUE`), as the
IVR would. Decisions are read from what the service stored and told the desktop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from adapters.ami.calls import TRACKED_EVENTS
from adapters.ami.events import CallQueued, CallStarted
from adapters.ami.framing import AmiParser
from adapters.asterisk.pbx import AsteriskPbx
from adapters.asterisk.settings import PbxConfig
from adapters.channels import CHANNEL_SPECS
from contact_center.bus import EventBus
from contact_center.config import parse_config
from contact_center.replay import Cut, ReplayAgent, read_timeline, replay, routing_setup
from crm_store import migrate, users
from crm_store.actors import Actor
from crm_store.database import make_engine, make_sessionmaker
from crm_store.models import ContactEvent
from crm_store.screen_pop import ScreenPopReader
from routing.channels import Channels
from routing.events import (
    ContactAnswered,
    ContactEnded,
    ContactHeld,
    ContactQueued,
    ContactRingFailed,
    ContactTransferred,
    ContactUnheld,
)
from routing.intake import open_contact
from routing.service import RoutingService

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-traces"
ALICE_DEVICE = "Local/agent1001@agents"  # the member that answers in b and h2's queue
BASE = 1_800_000_000.0  # the live clock's epoch for the recording's 0 s


def config(queue: str, offer_timeout: int, missed: int) -> Any:
    return parse_config(
        {
            "skills": [{"name": queue}],
            "queues": [
                {
                    "name": queue,
                    "channels": ["voice"],
                    "skills": {queue: 3},
                    "offer_timeout_seconds": offer_timeout,
                }
            ],
            "routing": {
                "wrap_up_seconds": 1,
                "not_ready_after_missed": missed,
                "restore_grace_seconds": 0,
                "timezone": "UTC",
            },
            "pbx": {"mode": "off"},
        },
        {},
    )


class Notices:
    """The notifier port: what the desktop was told (offers and how they ended)."""

    def __init__(self) -> None:
        self.ended: list[tuple[int, int, str]] = []  # (interaction, agent, outcome)
        self.at: list[float] = []

    def offer(self, agent_id: int, contact: Any, offer: Any, pop: Mapping[str, Any]) -> None:
        pass

    def offer_ended(self, agent_id: int, interaction_id: int, outcome: str) -> None:
        self.ended.append((interaction_id, agent_id, outcome))

    def agent_changed(self, agent_id: int, state: Mapping[str, Any]) -> None:
        pass

    def contact_changed(self, agent_id: int, contact: Any) -> None:
        pass

    def floor(self, at: float, queues: Sequence[Any], agents: Sequence[Any]) -> None:
        pass

    def supervisors_connected(self) -> int:
        return 0


def chunks(data: bytes, timeline: list[Cut]) -> list[tuple[float, bytes]]:
    out, pos = [], 0
    for cut in timeline:
        if cut.end > pos:
            out.append((cut.at, data[pos : cut.end]))
            pos = cut.end
    return out


async def live(
    tmp_path: Path, name: str, agents: list[tuple[str, str | None]], cfg: Any
) -> list[tuple[str, str, str, float]]:
    """Decisions of the live adapter + service: (type, call id, agent, at)."""
    data = (TRACES / f"{name}.ami.txt").read_bytes()
    timeline = read_timeline(TRACES / f"{name}.ami.txt")
    assert timeline is not None
    url = f"sqlite+aiosqlite:///{tmp_path}/live.db"
    await migrate.upgrade(url)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    pops = await ScreenPopReader.open(url, default_region="GB")
    now = [BASE]
    bus = EventBus()
    pbx = AsteriskPbx(
        PbxConfig(),
        bus=bus,
        sessionmaker=sessionmaker,
        flows={},
        default_flow="main",
        region="GB",
        clock=lambda: now[0],
    )

    async def answered_by_asterisk(action: dict[str, Any]) -> dict[str, Any]:
        return {"Response": "Success"}

    pbx._action = answered_by_asterisk  # type: ignore[method-assign]
    notices = Notices()
    service = RoutingService(
        cfg,
        bus=bus,
        sessionmaker=sessionmaker,
        notifier=notices,
        screen_pops=pops,
        channels=Channels(CHANNEL_SPECS, {"voice": pbx}),
        telephony=pbx,
        clock=lambda: now[0],
    )
    for event_type, handler in (
        (ContactQueued, service.on_queued),
        (ContactAnswered, service.on_answered),
        (ContactRingFailed, service.on_ring_failed),
        (ContactHeld, service.on_held),
        (ContactUnheld, service.on_unheld),
        (ContactTransferred, service.on_transferred),
        (ContactEnded, service.on_ended),
    ):
        bus.subscribe(event_type, handler)
    ids: dict[str, int] = {}
    async with sessionmaker.begin() as db:
        for username, device in agents:
            user = await users.create_user(
                db,
                username=username,
                role="agent",
                password="a long enough password",
                skills={q.name: 5 for q in cfg.queues},
                device=device,
            )
            ids[username] = user.id
    names = {user_id: username for username, user_id in ids.items()}
    bus.start()
    await service.start()
    for task in service._tasks:  # the test drives the clock and the timer's steps
        task.cancel()
    for user_id in sorted(names):
        await service.set_status(user_id, "ready", None, actor=Actor(user_id, "x", "agent"))
    calls: dict[int, str] = {}
    started: dict[str, CallStarted] = {}
    queued: set[str] = set()
    parser = AmiParser(TRACKED_EVENTS)
    original_feed = pbx.tracker.feed_message
    seen: list[Any] = []

    def feed(message: Any, at: float) -> list[Any]:
        events = original_feed(message, at)
        seen.extend(events)
        return events

    pbx.tracker.feed_message = feed  # type: ignore[method-assign]
    try:
        for at, chunk in chunks(data, timeline):
            for message in parser.feed(chunk):
                while (deadline := service.router.next_deadline()) is not None and (
                    deadline <= BASE + at
                ):
                    now[0] = deadline
                    await service.advance(deadline)
                    await bus.drain()
                    await service.settle()
                now[0] = max(now[0], BASE + at)
                seen.clear()
                pbx._on_ami_event(message)
                await bus.drain()
                await service.settle()
                to_queue = [(e.call_id, e.queue) for e in seen if isinstance(e, CallQueued)]
                for e in seen:
                    if isinstance(e, CallStarted):
                        started[e.call_id] = e
                if message.event == "Newexten" and message.get("Context") == "cc-holding":
                    call = next(
                        (c for c in started.values() if c.uniqueid == message.get("Uniqueid")),
                        None,
                    )
                    if call is not None:
                        to_queue.append((call.call_id, message.chan_vars.get("CTI_QUEUE", "")))
                for call_id, queue in to_queue:
                    if (
                        call_id in queued
                        or call_id not in started
                        or queue not in {q.name for q in cfg.queues}
                    ):
                        continue
                    queued.add(call_id)
                    opened = await open_contact(
                        sessionmaker,
                        channel="voice",
                        address=None,
                        region="GB",
                        address_kind="phone",
                        at=now[0],
                    )
                    calls[opened.interaction_id] = call_id
                    pbx._link(
                        opened.interaction_id, started[call_id].channel, started[call_id].uniqueid
                    )
                    bus.publish(ContactQueued(opened.interaction_id, "voice", queue, now[0]))
                    await bus.drain()
                    await service.settle()
        # What is still due after the last message (a wrap-up's end).
        while (deadline := service.router.next_deadline()) is not None:
            now[0] = deadline
            await service.advance(deadline)
            await bus.drain()
            await service.settle()
        await service.writer.flush()
        async with sessionmaker() as db:
            rows = (
                await db.execute(ContactEvent.__table__.select().order_by(ContactEvent.id))
            ).all()
    finally:
        await service.stop()
        await bus.stop()
        await pops.close()
        await engine.dispose()
    kinds = {"offered": "Offer", "offer_timeout": "OfferExpired", "wrap_up_ended": "WrapUpEnded"}
    kinds.update({k: "MaxWaitReached" for k in ("voicemail", "callback", "disconnect", "overflow")})
    decisions = []
    for row in rows:
        if row.kind in kinds and row.interaction_id in calls:
            when = row.at.timestamp() - BASE
            decisions.append(
                (
                    kinds[row.kind],
                    calls[row.interaction_id],
                    names.get(row.agent_id, ""),
                    round(when, 3),
                )
            )
    for interaction_id, agent_id, outcome in notices.ended:
        if outcome in ("abandoned", "answered_elsewhere"):
            decisions.append(("OfferWithdrawn", calls[interaction_id], names[agent_id], None))  # type: ignore[arg-type]
    return decisions


def through_replay(
    name: str, agents: list[tuple[str, str | None]], cfg: Any
) -> list[tuple[str, str, str, float]]:
    path = TRACES / f"{name}.ami.txt"
    setup = routing_setup(
        cfg,
        [
            ReplayAgent(i, username, {q.name: 5 for q in cfg.queues}, device)
            for i, (username, device) in enumerate(agents, 1)
        ],
    )
    result = replay(path.read_bytes(), read_timeline(path), setup)
    decisions = []
    for record in result.records:
        kind = record["type"]
        if kind in ("Offer", "OfferExpired", "WrapUpEnded", "MaxWaitReached"):
            decisions.append(
                (kind, record["call_id"], record.get("agent", ""), round(record["at"], 3))
            )
        elif kind == "OfferWithdrawn":
            decisions.append((kind, record["call_id"], record["agent"], None))
    return decisions  # type: ignore[return-value]


def ordered(decisions: list[Any]) -> list[Any]:
    timed = [d for d in decisions if d[3] is not None]
    return timed + sorted(d for d in decisions if d[3] is None)


CASES = {
    # An offer accepted on the offered device, the call ends, the wrap-up ends.
    "answered by the offered agent": (
        "b_queue_answered",
        "support",
        [("alice", ALICE_DEVICE), ("bob", "PJSIP/1002")],
        20,
        1,
    ),
    # Asterisk's own queue answers on a device routing did not offer: withdrawn.
    "answered elsewhere": ("b_queue_answered", "support", [("bob", "PJSIP/1002")], 20, 1),
    # The offered device rings out (AgentRingNoAnswer): the next agent at once.
    "a failed ring": (
        "c_queue_abandon",
        "sales",
        [("dave", "Local/agent2001@agents-noanswer"), ("erin", "PJSIP/2002")],
        20,
        0,
    ),
    # Nobody answers: the offer expires on the clock, the caller leaves.
    "an expired offer": ("c_queue_abandon", "sales", [("dave", "PJSIP/2001")], 2, 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_same_recording_gives_the_same_decisions_live_and_in_replay(
    tmp_path: Path, case: str
) -> None:
    name, queue, agents, timeout, missed = CASES[case]
    cfg = config(queue, timeout, missed)
    expected = through_replay(name, agents, cfg)
    assert expected, "the replay decided nothing: not a test of anything"
    got = await live(tmp_path, name, agents, cfg)
    # Times: the live service stores microseconds; both are rounded to the millisecond.
    assert ordered(got) == ordered(expected)
    await asyncio.sleep(0)
