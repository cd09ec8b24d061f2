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

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapters.ami.calls import TRACKED_EVENTS, CallTracker
from adapters.ami.events import (
    AgentNotAnswered,
    CallAnswered,
    CallEnded,
    CallQueued,
    DomainEvent,
)
from adapters.ami.framing import AmiMessage, AmiParser
from contact_center.errors import ContactCenterError
from routing.model import (
    Agent,
    Channel,
    Contact,
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
# Ring failures the router must not hear about: in the live daemon "cancel" is its own
# Redirect (adapters/asterisk/pbx.py); in a recording it is Asterisk giving up the ring
# because someone else answered or the caller left, which other events report.
_OWN_DIAL_ENDINGS = frozenset({"cancel"})


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
    from routing.definitions import policy_from_config, queues_from_config

    return RoutingSetup(
        queues=tuple(queues_from_config(config)),
        policy=policy_from_config(config),
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
    """The router, fed what the recording shows (see the module docstring)."""

    def __init__(self, setup: RoutingSetup) -> None:
        self.router = Router(setup.queues, setup.policy)
        self.holding_context = setup.holding_context
        self.agents = {a.user_id: a for a in sorted(setup.agents, key=lambda a: a.user_id)}
        self.notes: list[str] = []
        # Calls the router was ever given: each is queued once (a caller looping in the
        # holding context, or let go at its maximum wait, is not queued again).
        self._queued: set[str] = set()
        self._active: dict[str, int] = {}  # call id -> agent on it
        self._last_ended: dict[int, str] = {}  # agent -> last call ended (wrap-up's)
        self._unroutable: set[str] = set()
        policy = setup.policy
        for agent in sorted(setup.agents, key=lambda a: a.user_id):
            capacity: dict[Channel, int] = {
                c: int(agent.capacities.get(c, policy.capacity.get(c, 0))) for c in policy.capacity
            }
            self.router.add_agent(
                Agent(agent.user_id, agent.username, dict(agent.skills), capacity), 0.0
            )
            self.router.set_status(agent.user_id, "ready", 0.0)

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
            self._emit(self.router.tick(at), at, out)

    def on_event(self, event: DomainEvent, out: list[dict[str, Any]]) -> None:
        if isinstance(event, CallQueued):
            self._enqueue(event.call_id, event.queue, event.at, out)
        elif isinstance(event, CallAnswered):
            self._answered(event, out)
        elif isinstance(event, AgentNotAnswered):
            offer = self.router.offers.get(event.call_id)
            if (
                offer is not None
                and event.reason not in _OWN_DIAL_ENDINGS
                and self._rang(offer.agent_id, event.device, event.agent_channel)
            ):
                self._emit(
                    self.router.ring_failed(event.call_id, offer.agent_id, event.at),
                    event.at,
                    out,
                )
        elif isinstance(event, CallEnded):
            self._ended(event.call_id, event.at, out)

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
        definition = self.router.queues.get(queue)
        if definition is None or call_id in self._queued or call_id in self._active:
            return
        self._queued.add(call_id)
        contact = Contact(
            id=call_id,
            channel="voice",
            queue=queue,
            enqueued_at=now,
            priority=definition.priority,
            queue_entered_at=now,
        )
        try:
            decisions = self.router.enqueue(contact, now)
        except RoutingError as exc:
            self.notes.append(f"call {call_id} not routed: {exc.message}")
            return
        self._emit(decisions, now, out)

    def _answered(self, event: CallAnswered, out: list[dict[str, Any]]) -> None:
        call_id, now = event.call_id, event.at
        offer = self.router.offers.get(call_id)
        if offer is not None and self._rang(offer.agent_id, event.device, event.agent_channel):
            self.router.accept(call_id, offer.agent_id, now)
            self._active[call_id] = offer.agent_id
            return
        # Answered by someone the router did not choose (Asterisk's own queue, a
        # transfer): the call leaves the router, and whoever took it is busy with it.
        decisions = self._remove(call_id, now, f"answered by {event.device}", out)
        previous = self._active.pop(call_id, None)
        if previous is not None:
            decisions += self.router.end_contact(call_id, previous, now)
            self._last_ended[previous] = call_id
        taker = self._agent_with_device(event.device, event.agent_channel)
        if taker is not None:
            self.router.start_direct(call_id, taker, "voice", now)
            self._active[call_id] = taker
        self._emit(decisions, now, out)

    def _ended(self, call_id: str, now: float, out: list[dict[str, Any]]) -> None:
        decisions = self._remove(call_id, now, "the call ended", out)
        agent_id = self._active.pop(call_id, None)
        if agent_id is not None:
            decisions += self.router.end_contact(call_id, agent_id, now)
            self._last_ended[agent_id] = call_id
        self._emit(decisions, now, out)

    def _remove(
        self, call_id: str, now: float, why: str, out: list[dict[str, Any]]
    ) -> list[Decision]:
        """Take a call out of the router; an offer it withdraws gets a record of its own
        (the router decides nothing there, but the offer's fate is worth seeing)."""
        if call_id not in self.router.contacts:
            return []
        offer = self.router.offers.get(call_id)
        decisions = self.router.remove_contact(call_id, now)
        if offer is not None:
            out.append(
                {
                    "type": "OfferWithdrawn",
                    "call_id": call_id,
                    "at": now,
                    "agent_id": offer.agent_id,
                    "agent": self.agents[offer.agent_id].username,
                    "reason": why,
                }
            )
        return decisions

    def _emit(self, decisions: Sequence[Decision], now: float, out: list[dict[str, Any]]) -> None:
        for decision in decisions:
            out.append(self._record(decision, now))

    def _record(self, decision: Decision, now: float) -> dict[str, Any]:
        if isinstance(decision, Offer):
            agent = self.agents[decision.agent_id]
            return {
                "type": "Offer",
                "call_id": decision.contact_id,
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
                "call_id": decision.contact_id,
                "at": now,
                "agent_id": decision.agent_id,
                "agent": self.agents[decision.agent_id].username,
                "agent_set_not_ready": decision.agent_set_not_ready,
            }
        if isinstance(decision, MaxWaitReached):
            return {
                "type": "MaxWaitReached",
                "call_id": decision.contact_id,
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
            "call_id": self._last_ended.get(decision.agent_id),
            "at": now,
            "agent_id": decision.agent_id,
            "agent": self.agents[decision.agent_id].username,
        }

    def _rang(self, agent_id: int, device: str, agent_channel: str) -> bool:
        return _same_device(self.agents[agent_id].device, device, agent_channel)

    def _agent_with_device(self, device: str, agent_channel: str) -> int | None:
        for agent_id in sorted(self.agents):
            if _same_device(self.agents[agent_id].device, device, agent_channel):
                return agent_id
        return None


def _same_device(mine: str | None, device: str, agent_channel: str) -> bool:
    """Is this leg the agent's phone? `PJSIP/1001` rings as `PJSIP/1001-0000002a`;
    Asterisk keeps the technology's case, people may not."""
    if not mine:
        return False
    wanted = mine.lower()
    return device.lower() == wanted or agent_channel.lower().startswith(wanted + "-")


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
