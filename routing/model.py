"""The routing model: queue definitions, agents, contacts, offers. Plain data, no I/O.

An agent's *status* is what the agent (or a supervisor) chose: offline, ready, or not
ready with a reason. Their *activity* follows from the work they hold: offered (a contact
is reserved for them), on contact, wrap-up, or idle. The two are kept apart, as
FreeSWITCH's mod_callcenter does, so "ready but on a call" needs no special state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# A channel's name, as the channel declares itself (routing.channels): routing never
# names one.
Channel = str
Status = Literal["offline", "ready", "not_ready"]
Activity = Literal["idle", "offered", "on_contact", "wrap_up"]
MaxWaitKind = Literal["voicemail", "callback", "overflow", "disconnect"]
Strategy = Literal["longest_idle", "most_skilled"]


@dataclass(frozen=True, slots=True)
class RelaxStep:
    """After `after_seconds` of waiting: lower minimum levels, drop skills, widen to queues."""

    after_seconds: float
    lower_levels: Mapping[str, int] = field(default_factory=dict)
    drop_skills: tuple[str, ...] = ()
    widen_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueDef:
    """A configured queue."""

    name: str
    channels: tuple[Channel, ...]
    skills: Mapping[str, int]
    sla_seconds: float = 20
    offer_timeout_seconds: float = 20
    max_wait_seconds: float | None = None
    on_max_wait: MaxWaitKind = "voicemail"
    overflow_to: str | None = None
    priority: int = 0
    strategy: Strategy = "longest_idle"
    relaxation: tuple[RelaxStep, ...] = ()

    def step_at(self, waited: float) -> int:
        """Relaxation steps reached after waiting `waited` seconds (0 = none)."""
        step = 0
        for i, relax in enumerate(self.relaxation, start=1):
            if waited >= relax.after_seconds:
                step = i
        return step

    def requirements(self, step: int) -> tuple[dict[str, int], tuple[str, ...]]:
        """(minimum levels, widened queues) once steps 1..`step` applied (they accumulate)."""
        levels = dict(self.skills)
        widened: list[str] = []
        for relax in self.relaxation[:step]:
            for skill, level in relax.lower_levels.items():
                if skill in levels:
                    levels[skill] = min(levels[skill], level)
            for skill in relax.drop_skills:
                levels.pop(skill, None)
            widened.extend(q for q in relax.widen_to if q not in widened)
        return levels, tuple(widened)


@dataclass(frozen=True, slots=True)
class Policy:
    """Floor-wide rules."""

    capacity: Mapping[Channel, int]
    # While handling a contact on the key channel, no new contacts on the listed channels.
    blocks: Mapping[Channel, tuple[Channel, ...]]
    wrap_up_seconds: float = 30
    not_ready_after_missed: int = 1  # 0: never
    missed_reason: str = "missed-offer"
    tier_priority: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Agent:
    """An agent as the router sees them."""

    id: int
    name: str
    skills: dict[str, int]
    capacity: dict[Channel, int]
    status: Status = "offline"
    reason: str | None = None
    status_since: float = 0.0
    # When the agent last became free of all work: "longest idle" orders by this.
    idle_since: float = 0.0
    # contact id -> channel: contacts being handled (answered).
    active: dict[str, Channel] = field(default_factory=dict)
    # contact id -> channel: contacts offered to the agent and not yet answered.
    offered: dict[str, Channel] = field(default_factory=dict)
    wrap_up_until: float | None = None
    activity_since: float = 0.0
    missed_in_row: int = 0
    # A "ready" restored from the store after a restart is not trusted until a desktop of
    # the agent connects (the agent may have left while the daemon was down): until then,
    # or until this time passes and the agent goes offline, nothing is offered.
    confirm_by: float | None = None

    def activity(self, now: float) -> Activity:
        """What the agent is doing, derived from the work they hold."""
        if self.offered:
            return "offered"
        if self.active:
            return "on_contact"
        if self.wrap_up_until is not None and self.wrap_up_until > now:
            return "wrap_up"
        return "idle"

    def time_in_status(self, now: float) -> float:
        """Seconds since the status last changed."""
        return max(0.0, now - self.status_since)

    def time_in_activity(self, now: float) -> float:
        """Seconds since the activity last changed (wrap-up counts from its own end)."""
        if (
            self.wrap_up_until is not None
            and self.wrap_up_until <= now
            and self.activity(now) == "idle"
        ):
            # The timer ran out but nobody ticked yet: idle since it ran out.
            return max(0.0, now - self.wrap_up_until)
        return max(0.0, now - self.activity_since)

    def load(self, channel: Channel) -> int:
        """Contacts held or reserved on `channel` (an offer reserves capacity)."""
        return [*self.active.values()].count(channel) + [*self.offered.values()].count(channel)

    def can_take(self, channel: Channel, policy: Policy, now: float) -> bool:
        """Ready (and confirmed), out of wrap-up, under capacity, and not blocked by another
        channel."""
        if self.status != "ready" or self.confirm_by is not None:
            return False
        if self.wrap_up_until is not None and self.wrap_up_until > now:
            return False
        if self.load(channel) >= self.capacity.get(channel, 0):
            return False
        for held in (*self.active.values(), *self.offered.values()):
            # A rule reads "while on <held>, no new <channel>"; a channel never blocks
            # itself (capacity covers that).
            if held != channel and channel in policy.blocks.get(held, ()):
                return False
        return True


@dataclass(slots=True)
class Contact:
    """A contact waiting (or offered) in a queue."""

    id: str
    channel: Channel
    queue: str
    enqueued_at: float
    priority: int = 0
    # Skills required on top of the queue's (set by the IVR, say), with minimum levels.
    extra_skills: dict[str, int] = field(default_factory=dict)
    # When the contact entered its current queue: relaxation counts from here.
    queue_entered_at: float = 0.0
    seq: int = 0  # arrival order: ties broken by it, and a re-queued contact keeps it
    # Relaxation step the router filed the contact under (maintained by the router).
    step: int = 0
    offered_to: int | None = None
    declined_by: set[int] = field(default_factory=set)
    overflowed_from: str | None = None

    def sort_key(self) -> tuple[int, float, int]:
        """Higher priority first, then oldest, then arrival order."""
        return (-self.priority, self.enqueued_at, self.seq)


@dataclass(frozen=True, slots=True)
class Offer:
    """The router's decision: offer `contact_id` to `agent_id`, and why."""

    contact_id: str
    agent_id: int
    channel: Channel
    queue: str
    expires_at: float
    explanation: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class MaxWaitReached:
    """A contact waited its queue's maximum: what to do with it now."""

    contact_id: str
    queue: str
    action: MaxWaitKind
    target: str | None
    waited: float


@dataclass(frozen=True, slots=True)
class OfferExpired:
    """Nobody answered an offer in time; the contact is waiting again."""

    contact_id: str
    agent_id: int
    agent_set_not_ready: bool


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    """An agent's wrap-up timer ran out."""

    agent_id: int


Decision = Offer | MaxWaitReached | OfferExpired | WrapUpEnded
