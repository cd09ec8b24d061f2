"""Queue and agent statistics from contact lifecycle records, with `now` as a parameter.

Definitions (also in the README):

- A contact is counted in a window when it *leaves the queue* inside the window:
  answered, abandoned (the customer left), or another exit (callback request, voicemail,
  overflow to another queue, disconnect at maximum wait).
- offered = every contact that left the queue in the window, whatever the exit.
- answered within T: answered with a wait <= the queue's service-level threshold T.
- service level = answered within T / answered.
- service level (with abandons) = answered within T / (answered + abandoned after the
  short-abandon threshold).
- ASA (average speed of answer) = mean wait of the answered contacts.
- AHT (average handle time) = mean of talk + hold + wrap-up, over contacts whose handling
  (wrap-up included) finished in the window.
- abandonment rate = abandoned after the short-abandon threshold / offered.
- Short abandons (the customer left within the short-abandon threshold) are counted apart
  and are not abandons; callback requests and voicemails are not abandons either.

Windows: the last N minutes for each configured N, and "today", since midnight in the
configured time zone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

Exit = Literal["answered", "abandoned", "callback", "voicemail", "overflow", "disconnect"]


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
    """Keeps today's records and computes windowed figures on demand."""

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
        self._exits: deque[QueueExit] = deque()
        self._handled: deque[Handled] = deque()
        self._agents: dict[int, _AgentDay] = {}
        self._day_start: float | None = None

    # --- recording ---------------------------------------------------------------

    def record_exit(self, record: QueueExit) -> None:
        """A contact left a queue (records arrive in time order)."""
        self._roll(record.left_at)
        self._exits.append(record)

    def record_handled(self, record: Handled) -> None:
        """An agent finished a contact."""
        self._roll(record.finished_at)
        self._handled.append(record)
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

    def queue_figures(self, queue: str, now: float) -> dict[str, dict[str, float | int | None]]:
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

    def _window(self, queue: str, start: float, end: float) -> dict[str, float | int | None]:
        threshold = self.sla.get(queue, 20.0)
        exits = [e for e in self._exits if e.queue == queue and start <= e.left_at <= end]
        answered = [e for e in exits if e.exit == "answered"]
        abandoned = [e for e in exits if e.exit == "abandoned" and e.wait > self.short_abandon]
        short = [e for e in exits if e.exit == "abandoned" and e.wait <= self.short_abandon]
        within = [e for e in answered if e.wait <= threshold]
        handled = [h for h in self._handled if h.queue == queue and start <= h.finished_at <= end]
        offered = len(exits)
        return {
            "offered": offered,
            "answered": len(answered),
            "answered_within_sla": len(within),
            "abandoned": len(abandoned),
            "short_abandoned": len(short),
            "callbacks": sum(1 for e in exits if e.exit == "callback"),
            "voicemails": sum(1 for e in exits if e.exit == "voicemail"),
            "overflowed": sum(1 for e in exits if e.exit == "overflow"),
            "disconnected": sum(1 for e in exits if e.exit == "disconnect"),
            "service_level": _ratio(len(within), len(answered)),
            "service_level_with_abandons": _ratio(len(within), len(answered) + len(abandoned)),
            "asa_seconds": _mean([e.wait for e in answered]),
            "aht_seconds": _mean([h.handle_time for h in handled]),
            "abandonment_rate": _ratio(len(abandoned), offered),
        }

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
        self._day_start = midnight
        keep_from = min(midnight, now - (self.windows[-1] * 60 if self.windows else 0))
        while self._exits and self._exits[0].left_at < keep_from:
            self._exits.popleft()
        while self._handled and self._handled[0].finished_at < keep_from:
            self._handled.popleft()

    def _agent(self, agent_id: int) -> _AgentDay:
        return self._agents.setdefault(agent_id, _AgentDay())

    @staticmethod
    def _close_status(day: _AgentDay, at: float) -> None:
        if day.status_since is not None and at > day.status_since:
            day.time_in_status[day.status_key] = (
                day.time_in_status.get(day.status_key, 0.0) + at - day.status_since
            )
        day.status_since = at


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _mean(values: list[float]) -> float | None:
    return None if not values else round(sum(values) / len(values), 3)
