"""The router's indexes and their bookkeeping (see `routing.router` for what they are).

`RouterIndex` holds the state: queues and their sorted bins of waiting contacts, the agent
heaps per (queue, step, channel) with lazy invalidation by version, the skill index, and
the heap of deadlines. `Router` adds the decisions on top.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from routing.errors import RoutingError
from routing.model import (
    Activity,
    Agent,
    Channel,
    Contact,
    Decision,
    Offer,
    Policy,
    QueueDef,
)

_HeapKey = tuple[float, ...]
_HeapEntry = tuple[_HeapKey, int, int]  # (order key, agent version, agent id)
_ContactKey = tuple[int, float, int]
_Bin = list[tuple[_ContactKey, str]]
# A heap is rebuilt from its live entries once it holds this many times its members.
_COMPACT_FACTOR = 3
_COMPACT_SLACK = 64


@dataclass(slots=True)
class _Deadline:
    at: float
    kind: str  # "offer", "wrap_up", "relax", "max_wait"
    ref: str | int
    version: int

    def __lt__(self, other: _Deadline) -> bool:
        return (self.at, self.kind, str(self.ref)) < (other.at, other.kind, str(other.ref))


class RouterIndex:
    """The router's state and the bookkeeping that keeps its indexes true."""

    def _match_agent(self, agent: Agent, now: float) -> list[Decision]:
        """Offers for an agent who can take more work (the router's matching)."""
        raise NotImplementedError

    def __init__(self, queues: Iterable[QueueDef], policy: Policy) -> None:
        self.queues: dict[str, QueueDef] = {q.name: q for q in queues}
        self.policy = policy
        self.agents: dict[int, Agent] = {}
        self.contacts: dict[str, Contact] = {}
        self.offers: dict[str, Offer] = {}
        # Requirements per (queue, step), computed once: they are read on every decision.
        self._levels: dict[tuple[str, int], dict[str, int]] = {}
        self._widened: dict[tuple[str, int], tuple[str, ...]] = {}
        for q in self.queues.values():
            for step in range(len(q.relaxation) + 1):
                self._levels[q.name, step], self._widened[q.name, step] = q.requirements(step)
        # (queue, step) pairs by one skill they require: an agent without that skill cannot
        # meet them, so indexing an agent only looks at the pairs of skills they hold.
        self._pairs_by_skill: dict[str | None, list[tuple[str, int]]] = {}
        for pair, levels in self._levels.items():
            needed = [skill for skill, level in levels.items() if level > 0]
            first = min(needed) if needed else None
            self._pairs_by_skill.setdefault(first, []).append(pair)
        self._bins: dict[str, list[_Bin]] = {
            name: [[] for _ in range(len(q.relaxation) + 1)] for name, q in self.queues.items()
        }
        self._members: dict[str, set[str]] = {name: set() for name in self.queues}
        self._heaps: dict[tuple[str, int, Channel], list[_HeapEntry]] = {}
        self._agent_version: dict[int, int] = {}
        # agent -> [(queue, step)] whose minimum levels the agent meets.
        self._eligible: dict[int, list[tuple[str, int]]] = {}
        self._eligible_count: dict[tuple[str, int], int] = {}
        # agent -> {queue: lowest step at which the agent may take its contacts}
        self._reach: dict[int, dict[str, int]] = {}
        self._contact_version: dict[str, int] = {}
        self._deadlines: list[_Deadline] = []
        self._seq = itertools.count(1)
        self._max_steps = max((len(q.relaxation) for q in self.queues.values()), default=0)
        # Every channel in a stable order (the policy's, then any only a queue names):
        # the order channels are tried in, so the same inputs give the same offers.
        self.channels: tuple[Channel, ...] = tuple(policy.capacity) + tuple(
            sorted({c for q in self.queues.values() for c in q.channels} - set(policy.capacity))
        )
        # Channels whose contacts are not offered for now (their PBX is unreachable).
        self.paused: set[Channel] = set()
        # Channels each queue's agent heaps are kept for: its own, and those of queues
        # that widen to it.
        self._heap_channels: dict[str, tuple[Channel, ...]] = {}
        wanted: dict[str, set[Channel]] = {n: set(q.channels) for n, q in self.queues.items()}
        for q in self.queues.values():
            for relax in q.relaxation:
                for target in relax.widen_to:
                    if target in wanted:
                        wanted[target].update(q.channels)
        for name, channels in wanted.items():
            self._heap_channels[name] = tuple(c for c in self.channels if c in channels)

    # --- bookkeeping -------------------------------------------------------------

    def _after_agent_change(self, agent: Agent, now: float) -> list[Decision]:
        self._bump(agent, now)
        return self._match_agent(agent, now)

    def _became_lighter(self, agent: Agent, before: Activity, now: float) -> None:
        if not agent.active and not agent.offered:
            agent.idle_since = now
        self._activity_changed(agent, before, now)

    @staticmethod
    def _end_wrap_up(agent: Agent, at: float) -> None:
        # Longest idle counts from when the agent became available again, not from the
        # end of the contact: wrap-up is work.
        agent.wrap_up_until = None
        if not agent.active and not agent.offered:
            agent.idle_since = at
            agent.activity_since = at

    @staticmethod
    def _activity_changed(agent: Agent, before: Activity, now: float) -> None:
        # Time in activity counts from the last real change, not from every touch.
        if agent.activity(now) != before:
            agent.activity_since = now

    def _bump(self, agent: Agent, now: float) -> int:
        """New version for the agent; re-push it where it can take work now."""
        version = self._agent_version.get(agent.id, 0) + 1
        self._agent_version[agent.id] = version
        if agent.status != "ready":
            return version
        takes = [c for c in self.channels if agent.can_take(c, self.policy, now)]
        if not takes:
            return version
        for queue_name, step in self._eligible.get(agent.id, ()):
            queue = self.queues[queue_name]
            for channel in self._heap_channels[queue_name]:
                if channel not in takes:
                    continue
                heap = self._heaps.setdefault((queue_name, step, channel), [])
                heapq.heappush(heap, (self._agent_key(queue, agent, channel), version, agent.id))
                limit = _COMPACT_FACTOR * self._eligible_count.get((queue_name, step), 0)
                if len(heap) > limit + _COMPACT_SLACK:
                    self._compact_heap(heap)
        return version

    def _compact_heap(self, heap: list[_HeapEntry]) -> None:
        # Stale entries only leave when they reach the top; rebuild a heap that has
        # grown to several times its members so a long day stays bounded.
        live = [e for e in heap if self._agent_version.get(e[2]) == e[1]]
        heapq.heapify(live)
        heap[:] = live

    def _agent_key(self, queue: QueueDef, agent: Agent, channel: Channel) -> _HeapKey:
        # Fewest contacts on the channel first (spreads chats), then the queue's strategy,
        # then the agent id so ties always fall the same way.
        load = float(agent.load(channel))
        if queue.strategy == "most_skilled":
            skill = float(sum(agent.skills.get(s, 0) for s in queue.skills))
            return (load, -skill, agent.idle_since, float(agent.id))
        return (load, agent.idle_since, float(agent.id))

    def _index_skills(self, agent: Agent) -> None:
        for pair in self._eligible.get(agent.id, ()):
            self._eligible_count[pair] -= 1
        candidates = list(self._pairs_by_skill.get(None, ()))
        for skill in agent.skills:
            candidates += self._pairs_by_skill.get(skill, ())
        eligible = sorted(pair for pair in candidates if _meets(agent.skills, self._levels[pair]))
        for pair in eligible:
            self._eligible_count[pair] = self._eligible_count.get(pair, 0) + 1
        self._eligible[agent.id] = eligible
        direct = set(eligible)
        reach: dict[str, int] = {}
        for queue in self.queues.values():
            for step in range(len(queue.relaxation) + 1):
                widened = self._widened[queue.name, step]
                if (queue.name, step) in direct or any((w, 0) in direct for w in widened):
                    reach[queue.name] = step
                    break
        self._reach[agent.id] = reach

    def _wait(self, contact: Contact, now: float) -> None:
        queue = self.queues[contact.queue]
        contact.step = queue.step_at(now - contact.queue_entered_at)
        bisect.insort(self._bins[contact.queue][contact.step], (contact.sort_key(), contact.id))

    def _unwait(self, contact: Contact) -> None:
        waiting = self._bins[contact.queue][contact.step]
        entry = (contact.sort_key(), contact.id)
        index = bisect.bisect_left(waiting, entry)
        if index < len(waiting) and waiting[index] == entry:
            del waiting[index]

    def _restep(self, contact: Contact, now: float) -> None:
        step = self.queues[contact.queue].step_at(now - contact.queue_entered_at)
        if step != contact.step:
            self._unwait(contact)
            self._wait(contact, now)

    def _forget_contact(self, contact_id: str) -> None:
        contact = self.contacts.pop(contact_id, None)
        if contact is not None:
            self._members[contact.queue].discard(contact_id)
        self._contact_version.pop(contact_id, None)

    def _bump_contact(self, contact: Contact) -> int:
        version = self._contact_version.get(contact.id, 0) + 1
        self._contact_version[contact.id] = version
        return version

    def _schedule_contact(self, contact: Contact) -> None:
        version = self._bump_contact(contact)
        queue = self.queues[contact.queue]
        for relax in queue.relaxation:
            self._push_deadline(
                contact.queue_entered_at + relax.after_seconds, "relax", contact.id, version
            )
        if queue.max_wait_seconds is not None:
            self._push_deadline(
                contact.queue_entered_at + queue.max_wait_seconds, "max_wait", contact.id, version
            )

    def _push_deadline(self, at: float, kind: str, ref: str | int, version: int) -> None:
        heapq.heappush(self._deadlines, _Deadline(at, kind, ref, version))
        live = len(self.contacts) * (self._max_steps + 2) + len(self.agents)
        if len(self._deadlines) > _COMPACT_FACTOR * live + 1024:
            self._deadlines = [d for d in self._deadlines if self._deadline_live(d)]
            heapq.heapify(self._deadlines)

    def _deadline_live(self, deadline: _Deadline) -> bool:
        if deadline.kind == "wrap_up":
            agent = self.agents.get(int(deadline.ref))
            return agent is not None and agent.wrap_up_until == deadline.at
        contact_id = str(deadline.ref)
        if self._contact_version.get(contact_id) != deadline.version:
            return False
        contact = self.contacts.get(contact_id)
        if contact is None:
            return False
        if deadline.kind == "offer":
            return contact_id in self.offers
        return contact.offered_to is None or deadline.kind == "max_wait"

    def _offer_of(self, contact_id: str, agent_id: int) -> Offer:
        offer = self.offers.get(contact_id)
        if offer is None or offer.agent_id != agent_id:
            raise RoutingError(
                "routing.no_such_offer", f"contact {contact_id} is not offered to agent {agent_id}"
            )
        return offer

    def _agent(self, agent_id: int) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise RoutingError("routing.unknown_agent", f"no agent {agent_id} in the router")
        return agent

    def _queue(self, name: str) -> QueueDef:
        queue = self.queues.get(name)
        if queue is None:
            raise RoutingError("routing.unknown_queue", f"no queue named {name!r}")
        return queue


def _meets(skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
    """Whether `skills` reach every minimum level in `required`."""
    return all(skills.get(skill, 0) >= level for skill, level in required.items())
