"""Queue and agent statistics from contact lifecycle records, with `now` as a parameter.

Definitions (also in the README):

- A contact is counted in a window when it *leaves the queue* inside the window:
  answered, abandoned (the customer left), or another exit (callback request, voicemail,
  overflow to another queue, disconnect at maximum wait). Its wait is the time from
  entering this queue to leaving it.
- offered = every contact that left the queue in the window, whatever the exit.
- answered within T: answered with a wait <= the queue's service-level threshold T.
- service level = answered within T / answered.
- service level (with abandons) = answered within T / (answered + abandoned after the
  short-abandon threshold).
- ASA (average speed of answer) = mean wait of the answered contacts.
- AHT (average handle time) = mean of talk + hold + wrap-up, over contacts whose handling
  (wrap-up included) finished in the window.
- abandonment rate = abandoned after the short-abandon threshold / offered.
- Short abandons (the customer left within the short-abandon threshold, inclusive) are
  counted apart and are not abandons; callback requests and voicemails are not abandons
  either.
- A ratio with nothing to divide by is None ("no data"), never 0 or 1.

Windows: the last N minutes for each configured N, and "today", since midnight in the
configured time zone; a window includes both ends.

Live figures (`live_queue_figures`, the only definition; the wallboard and the API show
them): contacts waiting (offered ones included: the customer still waits), the longest
wait from first arrival, and the agents able to take the queue's contacts counted by
status and by activity (an offline agent's leftover work is not counted as an activity).
Of those, agents ready = ready and idle; agents busy = not offline and not idle (offered,
on a contact, in wrap-up); agents not ready = status not ready, whatever they are doing.

Where the records come from: `Tally` turns the contact life-cycle events (`LifeCycleEvent`,
also the rows of the store's contact-event log) into `QueueExit` and `Handled` records
and status changes. The live service feeds it each event as it happens; after a restart
`fold_events` feeds it the stored ones, so the same events always give the same figures.

Life-cycle events (`kind`), with the contact, channel, queue and agent they concern:

- queued: the contact enters `queue` (a transfer to a queue queues it again);
- offered, offer_declined, offer_timeout (a missed offer), transferred (`target`);
- dialing (an agent's outbound call, outside any queue), dial_failed;
- answered: the contact leaves its queue, answered, and the agent's talk starts;
- held, unheld: hold time, counted apart from talk;
- ended (`cause`): the handled contact is over, wrap-up starts;
- wrap_up_ended: the agent's handling is over (handle time = talk + hold + wrap-up);
- abandoned (`cause`), callback, voicemail, disconnect: the contact leaves its queue so;
  overflow (`target`): it leaves its queue for another one;
- status (`status`, `reason`, no contact): an agent's status changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from routing.model import Agent, Contact

Exit = Literal["answered", "abandoned", "callback", "voicemail", "overflow", "disconnect"]
Figures = dict[str, float | int | None]


@dataclass(frozen=True, slots=True)
class QueueExit:
    """A contact left a queue."""

    queue: str
    channel: str
    entered_at: float
    left_at: float
    exit: Exit

    @property
    def wait(self) -> float:
        """Seconds spent in the queue."""
        return self.left_at - self.entered_at


@dataclass(frozen=True, slots=True)
class Handled:
    """An agent finished a contact, wrap-up included."""

    queue: str | None
    channel: str
    agent_id: int
    finished_at: float
    talk: float
    hold: float
    wrap_up: float

    @property
    def handle_time(self) -> float:
        """Talk + hold + wrap-up."""
        return self.talk + self.hold + self.wrap_up


# Counters kept as running totals, in this order.
_EXIT_FIELDS = (
    "offered",
    "answered",
    "answered_within_sla",
    "abandoned",
    "short_abandoned",
    "callbacks",
    "voicemails",
    "overflowed",
    "disconnected",
    "answered_wait",
)
_BY_EXIT = {"callback": 5, "voicemail": 6, "overflow": 7, "disconnect": 8}


class _Series:
    """Records in time order with running totals: any window is two bisects away."""

    def __init__(self, width: int) -> None:
        self.times: list[float] = []
        self.rows: list[tuple[float, ...]] = []
        self.totals: list[tuple[float, ...]] = [(0.0,) * width]

    def add(self, at: float, row: tuple[float, ...]) -> None:
        """Add one record; a late one is slotted in and the totals after it redone."""
        index = bisect.bisect_right(self.times, at)
        self.times.insert(index, at)
        self.rows.insert(index, row)
        del self.totals[index + 1 :]
        for later in self.rows[index:]:
            self.totals.append(tuple(a + b for a, b in zip(self.totals[-1], later, strict=True)))

    def window(self, start: float, end: float) -> tuple[float, ...]:
        """Sums of the records with start <= time <= end."""
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        return tuple(b - a for a, b in zip(self.totals[lo], self.totals[hi], strict=True))

    def drop_before(self, at: float) -> None:
        """Forget records older than `at` (differences of totals stay valid)."""
        index = bisect.bisect_left(self.times, at)
        # Trim in batches: slicing is linear, so do it when there is a lot to drop.
        if index and index * 2 >= len(self.times):
            del self.times[:index]
            del self.rows[:index]
            del self.totals[:index]


@dataclass(slots=True)
class _AgentDay:
    handled: dict[str, int] = field(default_factory=dict)
    talk: float = 0.0
    hold: float = 0.0
    wrap_up: float = 0.0
    offers_missed: int = 0
    # "ready", "offline", or "not_ready:<reason>" -> seconds
    time_in_status: dict[str, float] = field(default_factory=dict)
    status_key: str = "offline"
    status_since: float | None = None


class Statistics:
    """Keeps today's records, indexed per queue, and computes windowed figures on demand."""

    def __init__(
        self,
        sla_seconds: Mapping[str, float],
        *,
        short_abandon_seconds: float,
        windows_minutes: Iterable[int],
        timezone: str,
    ) -> None:
        self.sla = dict(sla_seconds)
        self.short_abandon = short_abandon_seconds
        self.windows = sorted(set(windows_minutes))
        self.tz = ZoneInfo(timezone)
        self._exits: dict[str, _Series] = {}
        self._handled: dict[str, _Series] = {}
        self._agents: dict[int, _AgentDay] = {}
        self._day_start: float | None = None

    # --- recording ---------------------------------------------------------------

    def record_exit(self, record: QueueExit) -> None:
        """A contact left a queue."""
        self._roll(record.left_at)
        wait = record.wait
        row = [0.0] * len(_EXIT_FIELDS)
        row[0] = 1
        if record.exit == "answered":
            row[1] = 1
            row[2] = 1 if wait <= self.sla.get(record.queue, 20.0) else 0
            row[9] = wait
        elif record.exit == "abandoned":
            row[3 if wait > self.short_abandon else 4] = 1
        else:
            row[_BY_EXIT[record.exit]] = 1
        series = self._exits.setdefault(record.queue, _Series(len(_EXIT_FIELDS)))
        series.add(record.left_at, tuple(row))

    def record_handled(self, record: Handled) -> None:
        """An agent finished a contact (wrap-up included)."""
        self._roll(record.finished_at)
        if record.queue is not None:
            series = self._handled.setdefault(record.queue, _Series(2))
            series.add(record.finished_at, (1.0, record.handle_time))
        day = self._agent(record.agent_id)
        day.handled[record.channel] = day.handled.get(record.channel, 0) + 1
        day.talk += record.talk
        day.hold += record.hold
        day.wrap_up += record.wrap_up

    def record_missed_offer(self, agent_id: int, at: float) -> None:
        """An agent let an offer time out."""
        self._roll(at)
        self._agent(agent_id).offers_missed += 1

    def record_status(self, agent_id: int, status: str, reason: str | None, at: float) -> None:
        """An agent's status changed at `at`."""
        self._roll(at)
        day = self._agent(agent_id)
        self._close_status(day, at)
        day.status_key = f"not_ready:{reason}" if status == "not_ready" else status
        day.status_since = at

    # --- reading -----------------------------------------------------------------

    def queue_figures(self, queue: str, now: float) -> dict[str, Figures]:
        """Figures per window ("15m", "60m", ..., "today") for one queue."""
        self._roll(now)
        starts = {f"{m}m": now - m * 60 for m in self.windows}
        starts["today"] = self._midnight(now)
        return {name: self._window(queue, start, now) for name, start in starts.items()}

    def agent_figures(self, agent_id: int, now: float) -> dict[str, object]:
        """Today's figures for one agent."""
        self._roll(now)
        day = self._agents.get(agent_id, _AgentDay())
        times = dict(day.time_in_status)
        if day.status_since is not None:
            times[day.status_key] = times.get(day.status_key, 0.0) + now - day.status_since
        return {
            "handled": dict(day.handled),
            "talk_seconds": round(day.talk, 3),
            "hold_seconds": round(day.hold, 3),
            "wrap_up_seconds": round(day.wrap_up, 3),
            "offers_missed": day.offers_missed,
            "time_in_status_seconds": {k: round(v, 3) for k, v in sorted(times.items())},
        }

    def _window(self, queue: str, start: float, end: float) -> Figures:
        exits = self._exits.get(queue)
        sums = exits.window(start, end) if exits else (0.0,) * len(_EXIT_FIELDS)
        got = dict(zip(_EXIT_FIELDS, sums, strict=True))
        counts = {k: round(v) for k, v in got.items() if k != "answered_wait"}
        handled = self._handled.get(queue)
        done, handle_time = handled.window(start, end) if handled else (0.0, 0.0)
        offered, answered = counts["offered"], counts["answered"]
        within, abandoned = counts["answered_within_sla"], counts["abandoned"]
        figures: Figures = dict(counts)
        figures.update(
            service_level=_ratio(within, answered),
            service_level_with_abandons=_ratio(within, answered + abandoned),
            asa_seconds=_mean(got["answered_wait"], answered),
            aht_seconds=_mean(handle_time, round(done)),
            abandonment_rate=_ratio(abandoned, offered),
        )
        return figures

    def history_start(self, now: float) -> float:
        """The earliest time whose records the figures at `now` depend on: local midnight,
        or the start of the longest window if that is earlier."""
        longest = self.windows[-1] * 60 if self.windows else 0
        return min(self._midnight(now), now - longest)

    # --- housekeeping ------------------------------------------------------------

    def _midnight(self, now: float) -> float:
        local = datetime.fromtimestamp(now, self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.timestamp()

    def _roll(self, now: float) -> None:
        # Keep what the longest window or "today" still needs; a new day starts afresh.
        midnight = self._midnight(now)
        if self._day_start is not None and midnight > self._day_start:
            for day in self._agents.values():
                self._close_status(day, midnight)
                day.handled.clear()
                day.talk = day.hold = day.wrap_up = 0.0
                day.offers_missed = 0
                day.time_in_status.clear()
                if day.status_since is not None:
                    day.status_since = midnight
        if self._day_start is None or midnight > self._day_start:
            self._day_start = midnight
            keep_from = min(midnight, now - (self.windows[-1] * 60 if self.windows else 0))
            for series in (*self._exits.values(), *self._handled.values()):
                series.drop_before(keep_from)

    def _agent(self, agent_id: int) -> _AgentDay:
        return self._agents.setdefault(agent_id, _AgentDay())

    @staticmethod
    def _close_status(day: _AgentDay, at: float) -> None:
        if day.status_since is not None and at > day.status_since:
            day.time_in_status[day.status_key] = (
                day.time_in_status.get(day.status_key, 0.0) + at - day.status_since
            )
        day.status_since = at


def live_queue_figures(
    contacts: Iterable[Contact], agents: Iterable[Agent], now: float
) -> dict[str, Any]:
    """Real-time figures of one queue from its contacts and the agents who serve it."""
    waits = [now - c.enqueued_at for c in contacts]
    by_status: dict[str, int] = {"ready": 0, "not_ready": 0, "offline": 0}
    by_activity: dict[str, int] = {"idle": 0, "offered": 0, "on_contact": 0, "wrap_up": 0}
    by_reason: dict[str, int] = {}
    ready_idle = 0
    for agent in agents:
        by_status[agent.status] += 1
        if agent.status == "offline":
            continue  # an offline agent's leftover work is not the queue's capacity
        activity = agent.activity(now)
        by_activity[activity] += 1
        if agent.status == "ready" and activity == "idle":
            ready_idle += 1
        if agent.status == "not_ready" and agent.reason:
            by_reason[agent.reason] = by_reason.get(agent.reason, 0) + 1
    return {
        "waiting": len(waits),
        "longest_wait_seconds": round(max(waits, default=0.0), 1),
        "agents_ready": ready_idle,
        "agents_busy": sum(n for activity, n in by_activity.items() if activity != "idle"),
        "agents_not_ready": by_status["not_ready"],
        "agents_by_status": by_status,
        "agents_by_activity": by_activity,
        "not_ready_by_reason": dict(sorted(by_reason.items())),
    }


# --- from life-cycle events to records ---------------------------------------------

QUEUE_EXITS: frozenset[str] = frozenset({"abandoned", "callback", "voicemail", "disconnect"})


@dataclass(frozen=True, slots=True)
class LifeCycleEvent:
    """One step of a contact's life cycle (or an agent's status change); see the module
    docstring for the kinds and their details."""

    kind: str
    at: float
    interaction_id: int | None = None
    channel: str | None = None
    queue: str | None = None
    agent_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Waiting:
    queue: str
    channel: str
    entered_at: float


@dataclass(slots=True)
class _Handling:
    queue: str | None
    channel: str
    answered_at: float | None = None
    held_since: float | None = None
    hold: float = 0.0
    ended_at: float | None = None


class Tally:
    """Feeds `Statistics` from life-cycle events: the one place that says what an event
    counts for (a queue exit, a handled contact, a missed offer, a status)."""

    def __init__(self, stats: Statistics) -> None:
        self.stats = stats
        self._waiting: dict[int, _Waiting] = {}
        # By (contact, agent): a contact sent back to a queue may be handled by another
        # agent while the first one is still in its wrap-up.
        self._handling: dict[tuple[int, int], _Handling] = {}

    def apply(self, event: LifeCycleEvent) -> None:
        """Account for one event (in the order they happened)."""
        kind, at, contact, agent = event.kind, event.at, event.interaction_id, event.agent_id
        if kind == "status":
            if agent is not None:
                status = str(event.details.get("status", "offline"))
                reason = event.details.get("reason")
                self.stats.record_status(agent, status, None if reason is None else str(reason), at)
            return
        if kind == "offer_timeout":
            if agent is not None:
                self.stats.record_missed_offer(agent, at)
            return
        if contact is None:
            return
        if kind == "queued" and event.queue is not None:
            self._waiting[contact] = _Waiting(event.queue, event.channel or "", at)
        elif kind in QUEUE_EXITS or kind == "overflow":
            self._exit(contact, kind, at, event.details.get("target"))
        elif agent is None:
            return
        elif kind in ("answered", "dialing"):
            waited = self._exit(contact, "answered", at) if kind == "answered" else None
            key = (contact, agent)
            handling = self._handling.get(key)
            if handling is None:
                queue = waited.queue if waited else event.queue
                channel = waited.channel if waited else event.channel or ""
                handling = self._handling[key] = _Handling(queue, channel)
            if kind == "answered":
                handling.answered_at = at
        elif kind == "dial_failed":
            self._handling.pop((contact, agent), None)
        else:
            self._handling_step(contact, agent, kind, at)

    def _exit(self, contact: int, exit_: str, at: float, target: object = None) -> _Waiting | None:
        waited = self._waiting.pop(contact, None)
        if waited is None:
            return None
        self.stats.record_exit(
            QueueExit(waited.queue, waited.channel, waited.entered_at, at, exit_)  # type: ignore[arg-type]
        )
        if exit_ == "overflow" and isinstance(target, str) and target:
            self._waiting[contact] = _Waiting(target, waited.channel, at)
        return waited

    def _handling_step(self, contact: int, agent: int, kind: str, at: float) -> None:
        handling = self._handling.get((contact, agent))
        if handling is None:
            return
        if kind == "held" and handling.held_since is None:
            handling.held_since = at
        elif kind in ("unheld", "ended") and handling.held_since is not None:
            handling.hold += max(0.0, at - handling.held_since)
            handling.held_since = None
        if kind == "ended":
            handling.ended_at = at
        elif kind == "wrap_up_ended":
            del self._handling[contact, agent]
            ended = handling.ended_at if handling.ended_at is not None else at
            answered = handling.answered_at if handling.answered_at is not None else ended
            talk = max(0.0, ended - answered - handling.hold)
            self.stats.record_handled(
                Handled(
                    handling.queue,
                    handling.channel,
                    agent,
                    at,
                    talk,
                    handling.hold,
                    max(0.0, at - ended),
                )
            )


def fold_events(stats: Statistics, events: Iterable[LifeCycleEvent]) -> Tally:
    """Feed stored events, in the order written, into `stats` (rebuilding the day's
    figures after a restart); the returned tally carries on with live events."""
    tally = Tally(stats)
    for event in events:
        tally.apply(event)
    return tally


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _mean(total: float, count: int) -> float | None:
    return None if count == 0 else round(total / count, 3)
