"""Replay a recorded AMI session: framing, call tracker and router on a virtual clock.

The core, `replay()`, is pure: the bytes Asterisk sent (a `*.ami.txt` recording), the
times its messages arrived (from the `.timeline.tsv` beside it) and, optionally, the
queues, policy and agents of a configuration go in; the call tracker's domain events and
the router's decisions come out as JSON-ready dicts, each with `type`, `call_id` and `at`
(seconds on the virtual clock, from the start of the recording). Nothing reads a clock or
iterates an unordered set, so one recording always gives the same output.

Time: with a timeline, a message is at the time of the `recv` row that completes it.
Without one, a message carrying a `Timestamp` header (`timestampevents = yes` in
manager.conf) is at that stamp less the first stamp seen, and any other message at the
time of the message before it; a recording with no stamps at all is replayed entirely at
0 s (order kept, no timers fire). The clock never goes backwards.

Routing, when given: every agent and supervisor is ready from 0 s (their live statuses
say nothing about the time of the recording). A call is queued in the router, once, when
it joins an Asterisk queue of a configured name (`CallQueued`), or when its caller's
channel enters the holding context with `CTI_QUEUE` naming a configured queue. What the
recording shows then drives the router: an answer by the offered agent's device accepts
the offer, an answer by anyone else takes the call out of the router (the answering
agent, if known, is busy with it), a failed ring of the offered device moves the offer
on, and the caller's hang-up removes a waiting call or ends an agent's contact (wrap-up). An
offer that the recording overtakes (answered elsewhere, caller gone) is reported as an
`OfferWithdrawn` record; the other routing records are the router's own decisions
(`Offer`, `OfferExpired`, `MaxWaitReached`, `WrapUpEnded`).
The router's own timers (offer timeouts, relaxation, maximum wait, wrap-up ends) fire
at their exact times on the virtual clock. Customer tiers and IVR choices are not in an
AMI recording: a call's priority is its queue's.

The file reading and the store's agents (read-only) are at the bottom: the I/O shell
`contact-center replay` uses.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapters.ami.calls import TRACKED_EVENTS, CallTracker
from adapters.ami.events import CallQueued, DomainEvent
from adapters.ami.framing import AmiMessage, AmiParser
from adapters.asterisk.call_contacts import CallContacts
from adapters.asterisk.channel import VOICE
from contact_center.errors import ContactCenterError
from routing.channels import Channels
from routing.effects import Decided, Deliver, Effect, OfferClosed
from routing.events import (
    ContactAnswered,
    ContactHeld,
    ContactQueued,
    ContactRingFailed,
    ContactUnheld,
)
from routing.lifecycle import ContactLifeCycle
from routing.model import (
    Agent,
    Channel,
    Decision,
    MaxWaitReached,
    Offer,
    OfferExpired,
    Policy,
    QueueDef,
    WrapUpEnded,
)
from routing.router import Router, RoutingError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from contact_center.config import Config

BANNER = b"Asterisk Call Manager/"
_END = b"\r\n\r\n"
_QUEUE_VAR = "CTI_QUEUE"


class ReplayError(ContactCenterError):
    """The input cannot be replayed at all (not a recording, unreadable, bad timeline)."""

    error_id = "replay.unreadable"


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cut:
    """A timeline `recv` row: the bytes up to `end` had arrived `at` seconds in."""

    at: float
    end: int


@dataclass(frozen=True, slots=True)
class ReplayAgent:
    """A user the router may offer calls to, as the store holds them."""

    user_id: int
    username: str
    skills: Mapping[str, int]
    device: str | None = None
    # Per-channel overrides of the policy's capacity (the user's `capacities`).
    capacities: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoutingSetup:
    """What the router needs: queue definitions, the floor policy, the agents."""

    queues: tuple[QueueDef, ...]
    policy: Policy
    agents: tuple[ReplayAgent, ...]
    # The context where our dialplan parks waiting callers (pbx.holding_context).
    holding_context: str | None = None


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay produced.

    `problem` says why the recording stops short (truncated); everything before the cut
    is in `records`. `notes` are worth telling but change nothing.
    """

    records: list[dict[str, Any]]
    problem: str | None = None
    notes: list[str] = field(default_factory=list)


def parse_timeline(text: str, name: str = "timeline") -> list[Cut]:
    """The `recv` rows of a `.timeline.tsv` (t_ms, dir, file_offset, length, summary)."""
    cuts: list[Cut] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) < 4:
            raise ReplayError(
                f"{name} line {number}: expected t_ms, dir, file_offset, length, summary "
                "separated by tabs"
            )
        if columns[1] != "recv":
            continue
        try:
            t_ms, offset, length = float(columns[0]), int(columns[2]), int(columns[3])
        except ValueError:
            raise ReplayError(
                f"{name} line {number}: t_ms, file_offset and length must be numbers"
            ) from None
        if not math.isfinite(t_ms) or t_ms < 0 or offset < 0 or length < 0:
            raise ReplayError(f"{name} line {number}: negative or invalid numbers")
        cuts.append(Cut(t_ms / 1000, offset + length))
    return cuts


def routing_setup(config: Config, agents: Sequence[ReplayAgent]) -> RoutingSetup:
    """The router's inputs from a validated configuration and the store's agents."""
    from adapters.channels import CHANNEL_SPECS
    from routing.definitions import policy_from_config, queues_from_config

    return RoutingSetup(
        queues=tuple(queues_from_config(config)),
        policy=policy_from_config(config, CHANNEL_SPECS),
        agents=tuple(sorted(agents, key=lambda a: a.user_id)),
        holding_context=config.pbx.holding_context,
    )


def to_json(record: Mapping[str, Any]) -> str:
    """One output line: sorted keys and ASCII only, so it never depends on the locale."""
    return json.dumps(record, sort_keys=True)


# --- the core -------------------------------------------------------------------------


def replay(
    data: bytes,
    timeline: Sequence[Cut] | None = None,
    routing: RoutingSetup | None = None,
) -> Replay:
    """Replay a recording: call events and routing decisions, in the order they happen.

    Raises ReplayError when `data` is not an AMI recording (no banner); a recording that
    ends in the middle of a message gives what came before it and a `problem`.
    """
    check_recording(data)
    parser = AmiParser(TRACKED_EVENTS)
    tracker = CallTracker()
    feed = _RoutingFeed(routing) if routing is not None else None
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    clock = _Clock(stamped=timeline is None)
    if feed is not None:
        notes.append(feed.describe())
    for chunk_at, chunk in _chunks(data, timeline):
        for message in parser.feed(chunk):
            now = clock.at(message, chunk_at)
            if feed is not None:
                feed.advance(now, records)
            for event in tracker.feed_message(message, now):
                records.append(_event_record(event))
                if feed is not None:
                    feed.on_event(event, records)
            if feed is not None and message.event == "Newexten":
                feed.on_newexten(message, tracker, now, records)
    if feed is not None:
        notes += feed.notes
    if parser.malformed:
        notes.append(f"{parser.malformed} blocks were neither events nor responses: skipped")
    if parser.oversized:
        notes.append(f"{parser.oversized} oversized messages were dropped")
    if tracker.report["internal_error"]:
        notes.append(f"the call tracker failed on {tracker.report['internal_error']} messages")
    return Replay(records, _truncation(data, timeline), notes)


def check_recording(data: bytes) -> None:
    """Raise ReplayError unless `data` starts like an AMI session (the banner line)."""
    if not data.startswith(BANNER):
        raise ReplayError(
            f"not an AMI recording: it does not start with the {BANNER.decode()!r} banner line"
        )
    newline = data.find(b"\n")
    if newline >= 0 and data[newline - 1 : newline] != b"\r":
        # An editor or git's line-ending conversion: every message would run into the next.
        raise ReplayError(
            "not an AMI recording as Asterisk sends it: its lines end in LF, not CRLF"
        )


def _chunks(data: bytes, timeline: Sequence[Cut] | None) -> Iterator[tuple[float, bytes]]:
    """The recording as the socket delivered it: one piece per timeline row, with its time.

    Without a timeline, one piece (time then comes from the messages themselves). A row
    that goes back or past the end of the data only cuts what is there.
    """
    if timeline is None:
        yield 0.0, data
        return
    pos, at = 0, 0.0
    for cut in timeline:
        at = max(at, cut.at)
        end = min(cut.end, len(data))
        if end > pos:
            yield at, data[pos:end]
            pos = end
    if pos < len(data):
        yield at, data[pos:]


def _truncation(data: bytes, timeline: Sequence[Cut] | None) -> str | None:
    """Why the recording stops short, or None when it ends on a message boundary."""
    banner_end = data.find(b"\r\n")
    if banner_end < 0:
        return "truncated: the file ends inside the banner line"
    body_start = banner_end + 2
    if len(data) > body_start and not data.endswith(_END):
        last = data.rfind(_END, body_start)
        start = body_start if last < 0 else last + 4
        return (
            f"truncated: the file ends in the middle of a message (the one from byte {start}"
            f" to the end, byte {len(data)})"
        )
    expected = max((cut.end for cut in timeline or ()), default=0)
    if expected > len(data):
        return (
            f"truncated: the file ends at byte {len(data)} but its timeline goes on to "
            f"byte {expected}"
        )
    return None


class _Clock:
    """The virtual clock: seconds from the start of the recording, never going back."""

    def __init__(self, *, stamped: bool) -> None:
        self.stamped = stamped
        self.now = 0.0
        self.first: float | None = None

    def at(self, message: AmiMessage, chunk_at: float) -> float:
        if not self.stamped:
            self.now = max(self.now, chunk_at)
        else:
            stamp = _float(message.get("Timestamp"))
            if stamp is not None:
                if self.first is None:
                    self.first = stamp
                self.now = max(self.now, stamp - self.first)
        # Rounded so that the same instant is always the same float, in the router too.
        self.now = round(self.now, 6)
        return self.now


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _event_record(event: DomainEvent) -> dict[str, Any]:
    return {"type": type(event).__name__, **asdict(event)}


class _RoutingFeed:
    """The live daemon's contact life cycle, fed what the recording shows (see the module
    docstring): call events become contact events through the same mapping the Asterisk
    adapter uses, and the life cycle's effects become records."""

    def __init__(self, setup: RoutingSetup) -> None:
        self.router = Router(setup.queues, setup.policy)
        self.life = ContactLifeCycle(self.router, Channels([VOICE]))
        self.contacts = CallContacts()
        self.holding_context = setup.holding_context
        self.agents = {a.user_id: a for a in sorted(setup.agents, key=lambda a: a.user_id)}
        self.notes: list[str] = []
        # Calls the router was ever given: each is queued once (a caller looping in the
        # holding context, or let go at its maximum wait, is not queued again).
        self._queued: set[str] = set()
        self._call_ids: dict[int, str] = {}  # interaction id (given here) -> call id
        self._ids = itertools.count(1)
        self._unroutable: set[str] = set()
        policy = setup.policy
        for agent in self.agents.values():
            capacity: dict[Channel, int] = {
                c: int(agent.capacities.get(c, policy.capacity.get(c, 0))) for c in policy.capacity
            }
            self.router.add_agent(
                Agent(agent.user_id, agent.username, dict(agent.skills), capacity), 0.0
            )
            self.router.set_status(agent.user_id, "ready", 0.0)
            self.life.devices[agent.user_id] = agent.device

    def describe(self) -> str:
        names = [a.username for a in self.agents.values()]
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        queues = ", ".join(self.router.queues)
        agents = f"{len(names)} agent{'' if len(names) == 1 else 's'}"
        return f"routing: {agents} ready from 0 s ({shown}); queues {queues}"

    def advance(self, now: float, out: list[dict[str, Any]]) -> None:
        """Fire the router's timers due by `now`, each at its own time."""
        while (deadline := self.router.next_deadline()) is not None and deadline <= now:
            at = round(deadline, 6)
            self._emit(self.life.tick(at), at, out)

    def on_event(self, event: DomainEvent, out: list[dict[str, Any]]) -> None:
        if isinstance(event, CallQueued):
            self.contacts.feed(event)
            self._enqueue(event.call_id, event.queue, event.at, out)
            return
        for contact_event in self.contacts.feed(event):
            now = contact_event.at
            if isinstance(contact_event, ContactAnswered):
                effects = self.life.answered(
                    contact_event.interaction_id,
                    contact_event.agent_id,
                    now,
                    device=contact_event.device,
                    leg=contact_event.leg,
                )
            elif isinstance(contact_event, ContactRingFailed):
                effects = self.life.ring_failed(
                    contact_event.interaction_id, contact_event.agent_id, now
                )
            elif isinstance(contact_event, ContactHeld):
                effects = self.life.held(contact_event.interaction_id, now)
            elif isinstance(contact_event, ContactUnheld):
                effects = self.life.unheld(contact_event.interaction_id, now)
            else:
                effects = self.life.ended(contact_event.interaction_id, now, contact_event.cause)
            self._emit(effects, now, out)

    def on_newexten(
        self,
        message: AmiMessage,
        tracker: CallTracker,
        now: float,
        out: list[dict[str, Any]],
    ) -> None:
        """A caller's channel entering the holding context is waiting for an agent."""
        if self.holding_context is None or message.get("Context") != self.holding_context:
            return
        uniqueid = message.get("Uniqueid")
        call = next((c for c in tracker.calls().values() if c.uniqueid == uniqueid), None)
        if call is None or call.call_id in self._queued:
            return
        queue = message.chan_vars.get(_QUEUE_VAR, "")
        if queue in self.router.queues:
            self._enqueue(call.call_id, queue, now, out)
        elif call.call_id not in self._unroutable:
            self._unroutable.add(call.call_id)
            self.notes.append(
                f"call {call.call_id} waits in {self.holding_context} with no configured "
                f"queue in {_QUEUE_VAR} ({queue!r}): not routed"
            )

    # --- steps ----------------------------------------------------------------------

    def _enqueue(self, call_id: str, queue: str, now: float, out: list[dict[str, Any]]) -> None:
        if queue not in self.router.queues or call_id in self._queued:
            return
        interaction_id = next(self._ids)
        if not self.contacts.adopt(interaction_id, call_id):
            return
        self._queued.add(call_id)
        self._call_ids[interaction_id] = call_id
        event = ContactQueued(interaction_id, VOICE.name, queue, now)
        try:
            effects = self.life.queued(event, 0, now)
        except RoutingError as exc:
            self.notes.append(f"call {call_id} not routed: {exc.message}")
            return
        self._emit(effects, now, out)

    def _emit(self, effects: Sequence[Effect], now: float, out: list[dict[str, Any]]) -> None:
        """What the live service would carry out, as far as a recording shows it: the
        router's decisions and the offers the recording overtakes become records, and a
        delivered offer rings the device (as the adapter's ring_agent notes it)."""
        for effect in effects:
            if isinstance(effect, Decided):
                out.append(self._record(effect.decision, effect.interaction_id, now))
            elif isinstance(effect, Deliver):
                agent = self.agents[effect.offer.agent_id]
                if effect.ring:
                    self.contacts.ringing(
                        effect.contact.interaction_id, agent.user_id, agent.device or ""
                    )
            elif isinstance(effect, OfferClosed):
                if effect.take_back is not None:
                    self.contacts.not_ringing(effect.interaction_id)
                if effect.outcome in ("abandoned", "answered_elsewhere"):
                    out.append(
                        {
                            "type": "OfferWithdrawn",
                            "call_id": self._call_ids[effect.interaction_id],
                            "at": now,
                            "agent_id": effect.agent_id,
                            "agent": self.agents[effect.agent_id].username,
                            "reason": effect.reason,
                        }
                    )

    def _record(self, decision: Decision, interaction_id: int | None, now: float) -> dict[str, Any]:
        call_id = self._call_ids.get(interaction_id) if interaction_id is not None else None
        if isinstance(decision, Offer):
            agent = self.agents[decision.agent_id]
            return {
                "type": "Offer",
                "call_id": call_id,
                "at": now,
                "agent_id": decision.agent_id,
                "agent": agent.username,
                "device": agent.device,
                "queue": decision.queue,
                "channel": decision.channel,
                "expires_at": round(decision.expires_at, 6),
                "explanation": dict(decision.explanation),
            }
        if isinstance(decision, OfferExpired):
            return {
                "type": "OfferExpired",
                "call_id": call_id,
                "at": now,
                "agent_id": decision.agent_id,
                "agent": self.agents[decision.agent_id].username,
                "agent_set_not_ready": decision.agent_set_not_ready,
            }
        if isinstance(decision, MaxWaitReached):
            return {
                "type": "MaxWaitReached",
                "call_id": call_id,
                "at": now,
                "queue": decision.queue,
                "action": decision.action,
                "target": decision.target,
                "waited": decision.waited,
            }
        assert isinstance(decision, WrapUpEnded)
        return {
            "type": "WrapUpEnded",
            # The wrap-up is the one of the agent's last call.
            "call_id": call_id,
            "at": now,
            "agent_id": decision.agent_id,
            "agent": self.agents[decision.agent_id].username,
        }


# --- the I/O shell --------------------------------------------------------------------


def read_recording(path: Path) -> bytes:
    """The bytes of a recording; ReplayError (naming the file) when it cannot be read or
    is not an AMI session."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        check_recording(data)
    except ReplayError as exc:
        raise ReplayError(f"{path}: {exc.message}") from None
    return data


def timeline_path(path: Path) -> Path:
    """Where a recording's timeline is: `NAME.timeline.tsv` beside `NAME.ami.txt`."""
    name = path.name
    base = name[: -len(".ami.txt")] if name.endswith(".ami.txt") else Path(name).stem
    return path.with_name(f"{base}.timeline.tsv")


def read_timeline(path: Path) -> list[Cut] | None:
    """The timeline beside the recording at `path`, or None when there is none."""
    beside = timeline_path(path)
    if not beside.exists():
        return None
    try:
        text = beside.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ReplayError(f"{beside}: cannot read ({reason or exc})") from None
    return parse_timeline(text, str(beside))


async def load_agents(url: str) -> tuple[list[ReplayAgent], str | None]:
    """The store's active agents and supervisors, read without changing anything.

    Returns the agents, or none and why: the database does not exist, has no users
    table, or no active agent. A database that exists but cannot be read raises (the
    caller reports it as a database error).
    """
    from sqlalchemy import inspect, select
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    from crm_store.database import describe_database
    from crm_store.models import User

    where = describe_database(url)
    target, missing = _read_only(url)
    if target is None:
        return [], f"database {where} {missing}"
    engine = create_async_engine(target)
    try:
        async with engine.connect() as connection:
            has_users = await connection.run_sync(
                lambda sync: inspect(sync).has_table(User.__tablename__)
            )
            if not has_users:
                return [], f"database {where} has no users table"
            rows = (
                await connection.execute(
                    select(User.id, User.username, User.skills, User.device, User.capacities)
                    .where(User.is_active.is_(True), User.role.in_(("agent", "supervisor")))
                    .order_by(User.id)
                )
            ).all()
    except DBAPIError as exc:
        # PostgreSQL's "database ... does not exist" (SQLSTATE 3D000) is a missing
        # store like a missing SQLite file, not a failure.
        if getattr(exc.orig, "sqlstate", None) == "3D000":
            return [], f"database {where} does not exist"
        raise
    finally:
        await engine.dispose()
    agents = [
        ReplayAgent(
            user_id=row.id,
            username=row.username,
            skills={str(k): int(v) for k, v in (row.skills or {}).items()},
            device=row.device,
            capacities={str(k): int(v) for k, v in (row.capacities or {}).items()},
        )
        for row in rows
    ]
    if not agents:
        return [], f"database {where} has no active agents or supervisors"
    return agents, None


def _read_only(url: str) -> tuple[URL | None, str]:
    """The URL to read the store at `url` without writing it; or None and what is amiss."""
    from sqlalchemy.engine import make_url

    from crm_store.database import is_sqlite

    target = make_url(url)
    if not is_sqlite(url):
        return target, ""
    database = target.database or ""
    if database in ("", ":memory:"):
        return None, "is in memory (nothing stored)"
    file = Path(database).expanduser()
    if not file.is_file():
        return None, "does not exist"
    # mode=ro: a replay never creates, migrates nor writes the store.
    return target.set(database=f"file:{quote(str(file))}", query={"mode": "ro", "uri": "true"}), ""
