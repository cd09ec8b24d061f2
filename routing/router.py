"""The skill-based router: pure, deterministic, indexed.

Inputs are method calls carrying `now` (seconds); outputs are decisions (`Offer`,
`MaxWaitReached`, `OfferExpired`, `WrapUpEnded`). Nothing here awaits or reads a clock,
so replaying the same calls gives the same decisions.

Indexes keep a decision away from scanning everything:
- each queue keeps its waiting contacts in a sorted list (priority, age, arrival);
- each (queue, relaxation step, channel) keeps a heap of agents able to take a contact
  now, ordered by the queue's strategy; entries are invalidated lazily by a per-agent
  version number, so updating an agent is a few pushes, never a search;
- a heap of deadlines (offer expiry, wrap-up end, relaxation steps, maximum wait) tells
  `tick` exactly what is due.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

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
    Status,
    WrapUpEnded,
)


class RoutingError(Exception):
    """A request the router cannot honour (unknown agent, contact or queue; bad state)."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message


_HeapKey = tuple[float, ...]
COMPACT_EVERY = 50_000


@dataclass(slots=True)
class _Deadline:
    at: float
    kind: str  # "offer", "wrap_up", "relax", "max_wait"
    ref: str | int
    version: int

    def __lt__(self, other: _Deadline) -> bool:
        return (self.at, self.kind, str(self.ref)) < (other.at, other.kind, str(other.ref))


class Router:
    """Contacts waiting in queues, agents and their capacity, and the offers between them."""

    def __init__(self, queues: Iterable[QueueDef], policy: Policy) -> None:
        self.queues: dict[str, QueueDef] = {q.name: q for q in queues}
        self.policy = policy
        self.agents: dict[int, Agent] = {}
        self.contacts: dict[str, Contact] = {}
        self.offers: dict[str, Offer] = {}
        self._waiting: dict[str, list[tuple[tuple[int, float, int], str]]] = {
            name: [] for name in self.queues
        }
        self._heaps: dict[tuple[str, int, Channel], list[tuple[_HeapKey, int, int]]] = {}
        self._agent_version: dict[int, int] = {}
        # agent -> [(queue, step)] whose minimum levels the agent meets.
        self._eligible: dict[int, list[tuple[str, int]]] = {}
        # agent -> {queue: lowest step at which the agent may take its contacts}
        self._reach: dict[int, dict[str, int]] = {}
        self._contact_version: dict[str, int] = {}
        self._deadlines: list[_Deadline] = []
        self._seq = itertools.count(1)
        self._pushes = 0
        # Channels each queue's agent heaps are kept for: its own, and those of queues
        # that widen to it.
        self._heap_channels: dict[str, set[Channel]] = {
            name: set(q.channels) for name, q in self.queues.items()
        }
        for q in self.queues.values():
            for relax in q.relaxation:
                for target in relax.widen_to:
                    if target in self._heap_channels:
                        self._heap_channels[target].update(q.channels)

    # --- agents ------------------------------------------------------------------

    def add_agent(self, agent: Agent, now: float) -> list[Decision]:
        """Start routing to `agent` (replacing a previous one with the same id)."""
        if agent.id in self.agents:
            raise RoutingError("routing.duplicate_agent", f"agent {agent.id} is already known")
        self.agents[agent.id] = agent
        self._index_skills(agent)
        return self._after_agent_change(agent, now)

    def update_skills(self, agent_id: int, skills: dict[str, int], now: float) -> list[Decision]:
        """Change an agent's skills (an admin edited them)."""
        agent = self._agent(agent_id)
        agent.skills = dict(skills)
        self._index_skills(agent)
        return self._after_agent_change(agent, now)

    def set_status(
        self, agent_id: int, status: Status, now: float, reason: str | None = None
    ) -> list[Decision]:
        """Set offline / ready / not ready (with a reason); going ready may bring an offer."""
        agent = self._agent(agent_id)
        if status == "not_ready" and not reason:
            raise RoutingError("routing.reason_required", "not ready needs a reason code")
        decisions: list[Decision] = []
        changed = (agent.status, agent.reason) != (
            status,
            reason if status == "not_ready" else None,
        )
        if changed:
            agent.status = status
            agent.reason = reason if status == "not_ready" else None
            agent.status_since = now
        if status != "ready":
            # Offers not yet answered go back to their queues at once (to someone else:
            # the status is already set).
            for contact_id in list(agent.offered):
                decisions += self._withdraw_offer(contact_id, now, missed=False)
        if status == "ready" and changed:
            agent.missed_in_row = 0
            if not agent.active and not agent.offered:
                agent.idle_since = now
            # Back at the desk: contacts this agent missed may be offered to them again.
            for contact in self.contacts.values():
                contact.declined_by.discard(agent.id)
        return decisions + self._after_agent_change(agent, now)

    # --- contacts ----------------------------------------------------------------

    def enqueue(self, contact: Contact, now: float) -> list[Decision]:
        """A contact starts waiting in its queue; it may be offered at once."""
        queue = self._queue(contact.queue)
        if contact.channel not in queue.channels:
            raise RoutingError(
                "routing.wrong_channel",
                f"queue {queue.name!r} takes {', '.join(queue.channels)}, not {contact.channel}",
            )
        if contact.id in self.contacts:
            raise RoutingError("routing.duplicate_contact", f"contact {contact.id} is queued")
        if not contact.seq:
            contact.seq = next(self._seq)
        if not contact.queue_entered_at:
            contact.queue_entered_at = now
        self.contacts[contact.id] = contact
        self._contact_version[contact.id] = 0
        self._wait(contact)
        self._schedule_contact(contact)
        return self._match_contact(contact, now)

    def accept(self, contact_id: str, agent_id: int, now: float) -> None:
        """The agent took the offered contact (answered the phone, accepted the chat)."""
        offer = self.offers.get(contact_id)
        if offer is None or offer.agent_id != agent_id:
            raise RoutingError(
                "routing.no_such_offer", f"contact {contact_id} is not offered to agent {agent_id}"
            )
        agent = self._agent(agent_id)
        del self.offers[contact_id]
        channel = agent.offered.pop(contact_id)
        agent.active[contact_id] = channel
        agent.missed_in_row = 0
        agent.activity_since = now
        self.contacts.pop(contact_id, None)
        self._contact_version.pop(contact_id, None)
        self._bump(agent, now)

    def reject(self, contact_id: str, agent_id: int, now: float) -> list[Decision]:
        """The agent declined the offer: the contact goes to someone else."""
        offer = self.offers.get(contact_id)
        if offer is None or offer.agent_id != agent_id:
            raise RoutingError(
                "routing.no_such_offer", f"contact {contact_id} is not offered to agent {agent_id}"
            )
        self.contacts[contact_id].declined_by.add(agent_id)
        return self._withdraw_offer(contact_id, now, missed=False)

    def remove_contact(self, contact_id: str, now: float) -> list[Decision]:
        """The contact left before being answered (caller hung up, chat closed)."""
        contact = self.contacts.pop(contact_id, None)
        if contact is None:
            return []
        self._contact_version.pop(contact_id, None)
        self._unwait(contact)
        offer = self.offers.pop(contact_id, None)
        if offer is None:
            return []
        agent = self.agents.get(offer.agent_id)
        if agent is None:
            return []
        agent.offered.pop(contact_id, None)
        self._became_lighter(agent, now)
        return self._after_agent_change(agent, now)

    def end_contact(self, contact_id: str, agent_id: int, now: float) -> list[Decision]:
        """The agent finished a contact: wrap-up starts (if configured), then more work."""
        agent = self._agent(agent_id)
        if agent.active.pop(contact_id, None) is None:
            raise RoutingError(
                "routing.no_such_contact", f"agent {agent_id} is not handling {contact_id}"
            )
        if self.policy.wrap_up_seconds > 0:
            agent.wrap_up_until = now + self.policy.wrap_up_seconds
            self._push_deadline(agent.wrap_up_until, "wrap_up", agent.id, self._bump(agent, now))
        self._became_lighter(agent, now)
        return self._after_agent_change(agent, now)

    def start_direct(self, contact_id: str, agent_id: int, channel: Channel, now: float) -> None:
        """The agent started a contact themselves (click-to-dial): it takes capacity."""
        agent = self._agent(agent_id)
        agent.active[contact_id] = channel
        agent.activity_since = now
        self._bump(agent, now)

    def queues_for_agent(self, agent_id: int) -> list[str]:
        """The queues whose contacts the agent may take (at some relaxation step)."""
        return sorted(self._reach.get(agent_id, {}))

    def finish_wrap_up(self, agent_id: int, now: float) -> list[Decision]:
        """The agent ended wrap-up early."""
        agent = self._agent(agent_id)
        agent.wrap_up_until = None
        agent.activity_since = now
        return self._after_agent_change(agent, now)

    # --- time --------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `tick` has something to do next."""
        while self._deadlines and not self._deadline_live(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        return self._deadlines[0].at if self._deadlines else None

    def tick(self, now: float) -> list[Decision]:
        """Everything due by `now`: expired offers, wrap-ups ended, relaxation, max wait."""
        decisions: list[Decision] = []
        while self._deadlines and self._deadlines[0].at <= now:
            deadline = heapq.heappop(self._deadlines)
            if not self._deadline_live(deadline):
                continue
            if deadline.kind == "offer":
                decisions += self._withdraw_offer(str(deadline.ref), now, missed=True)
            elif deadline.kind == "wrap_up":
                agent = self.agents[int(deadline.ref)]
                agent.wrap_up_until = None
                agent.activity_since = now
                decisions.append(WrapUpEnded(agent.id))
                decisions += self._after_agent_change(agent, now)
            elif deadline.kind == "relax":
                contact = self.contacts[str(deadline.ref)]
                if contact.offered_to is None:
                    decisions += self._match_contact(contact, now)
            elif deadline.kind == "max_wait":
                decisions += self._max_wait(self.contacts[str(deadline.ref)], now)
        return decisions

    # --- reading -----------------------------------------------------------------

    def waiting(self, queue: str) -> list[Contact]:
        """Contacts waiting (not offered) in a queue, in routing order."""
        return [self.contacts[cid] for _key, cid in self._waiting[queue]]

    def queued(self, queue: str) -> list[Contact]:
        """Every contact in a queue, offered or not."""
        return [c for c in self.contacts.values() if c.queue == queue]

    # --- matching ----------------------------------------------------------------

    def _match_contact(self, contact: Contact, now: float) -> list[Decision]:
        found = self._best_agent_for(contact, now)
        if found is None:
            return []
        agent, step, via = found
        return [self._offer(contact, agent, step, via, now)]

    def _best_agent_for(self, contact: Contact, now: float) -> tuple[Agent, int, str] | None:
        queue = self.queues[contact.queue]
        step = queue.step_at(now - contact.queue_entered_at)
        _levels, widened = queue.requirements(step)
        best: tuple[_HeapKey, Agent, str] | None = None
        for source, source_step in [(queue.name, step), *((w, 0) for w in widened)]:
            agent = self._first_agent(source, source_step, contact, now)
            if agent is None:
                continue
            key = self._agent_key(queue, agent, contact.channel)
            if best is None or key < best[0]:
                best = (key, agent, source)
        if best is None:
            return None
        return best[1], step, best[2]

    def _first_agent(self, queue: str, step: int, contact: Contact, now: float) -> Agent | None:
        heap = self._heaps.get((queue, step, contact.channel))
        if not heap:
            return None
        skipped: list[tuple[_HeapKey, int, int]] = []
        found: Agent | None = None
        while heap:
            entry = heap[0]
            _key, version, agent_id = entry
            agent = self.agents.get(agent_id)
            if (
                agent is None
                or self._agent_version.get(agent_id) != version
                or not agent.can_take(contact.channel, self.policy, now)
            ):
                heapq.heappop(heap)  # stale: the agent changed since this entry
                continue
            if agent_id in contact.declined_by or not _meets(agent.skills, contact.extra_skills):
                skipped.append(heapq.heappop(heap))
                continue
            found = agent
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def _match_agent(self, agent: Agent, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        while True:
            best: tuple[tuple[int, float, int], Contact, int, str] | None = None
            for queue_name, min_step in self._reach.get(agent.id, {}).items():
                queue = self.queues[queue_name]
                if not any(agent.can_take(c, self.policy, now) for c in queue.channels):
                    continue
                for key, contact_id in self._waiting[queue_name]:
                    if best is not None and key >= best[0]:
                        break  # this queue's remaining contacts rank lower
                    contact = self.contacts[contact_id]
                    step = queue.step_at(now - contact.queue_entered_at)
                    if step < min_step or not agent.can_take(contact.channel, self.policy, now):
                        continue
                    if agent.id in contact.declined_by:
                        continue
                    if not _meets(agent.skills, contact.extra_skills):
                        continue
                    via = self._via(queue, step, agent)
                    best = (key, contact, step, via)
                    break
            if best is None:
                return decisions
            _key, contact, step, via = best
            decisions.append(self._offer(contact, agent, step, via, now))

    def _via(self, queue: QueueDef, step: int, agent: Agent) -> str:
        levels, widened = queue.requirements(step)
        if _meets(agent.skills, levels):
            return queue.name
        for target in widened:
            if _meets(agent.skills, self.queues[target].skills):
                return target
        return queue.name

    def _offer(self, contact: Contact, agent: Agent, step: int, via: str, now: float) -> Offer:
        queue = self.queues[contact.queue]
        levels, _widened = queue.requirements(step)
        required = {**levels, **contact.extra_skills}
        if via != queue.name:
            required = {**self.queues[via].skills, **contact.extra_skills}
        explanation: dict[str, object] = {
            "queue": queue.name,
            "step": step,
            "strategy": queue.strategy,
            "required": required,
            "skills_matched": {s: agent.skills.get(s, 0) for s in sorted(required)},
            "wait_seconds": round(now - contact.enqueued_at, 3),
            "agent_idle_seconds": round(now - agent.idle_since, 3),
            "priority": contact.priority,
        }
        if via != queue.name:
            explanation["widened_to"] = via
        if contact.overflowed_from:
            explanation["overflowed_from"] = contact.overflowed_from
        offer = Offer(
            contact_id=contact.id,
            agent_id=agent.id,
            channel=contact.channel,
            queue=queue.name,
            expires_at=now + queue.offer_timeout_seconds,
            explanation=explanation,
        )
        self._unwait(contact)
        contact.offered_to = agent.id
        self.offers[contact.id] = offer
        agent.offered[contact.id] = contact.channel
        agent.activity_since = now
        version = self._bump_contact(contact)
        self._push_deadline(offer.expires_at, "offer", contact.id, version)
        self._bump(agent, now)
        return offer

    def _withdraw_offer(self, contact_id: str, now: float, *, missed: bool) -> list[Decision]:
        offer = self.offers.pop(contact_id, None)
        if offer is None:
            return []
        contact = self.contacts[contact_id]
        agent = self.agents[offer.agent_id]
        agent.offered.pop(contact_id, None)
        contact.offered_to = None
        decisions: list[Decision] = []
        went_not_ready = False
        if missed:
            agent.missed_in_row += 1
            limit = self.policy.not_ready_after_missed
            if limit and agent.missed_in_row >= limit and agent.status == "ready":
                agent.status = "not_ready"
                agent.reason = self.policy.missed_reason
                agent.status_since = now
                went_not_ready = True
                for other in list(agent.offered):
                    decisions += self._withdraw_offer(other, now, missed=False)
            contact.declined_by.add(agent.id)
            decisions.insert(0, OfferExpired(contact_id, agent.id, went_not_ready))
        # Back in the queue with its original place (same priority, age and arrival).
        self._wait(contact)
        self._schedule_contact(contact)
        self._became_lighter(agent, now)
        decisions += self._match_contact(contact, now)
        decisions += self._after_agent_change(agent, now)
        return decisions

    def _max_wait(self, contact: Contact, now: float) -> list[Decision]:
        if contact.offered_to is not None:
            return []  # being offered: let the offer run its course
        queue = self.queues[contact.queue]
        waited = now - contact.queue_entered_at
        decision = MaxWaitReached(
            contact.id, queue.name, queue.on_max_wait, queue.overflow_to, round(waited, 3)
        )
        self._unwait(contact)
        if queue.on_max_wait == "overflow" and queue.overflow_to in self.queues:
            target = self.queues[queue.overflow_to]
            contact.overflowed_from = queue.name
            contact.queue = target.name
            contact.queue_entered_at = now
            contact.priority += target.priority - queue.priority
            contact.declined_by.clear()
            self._wait(contact)
            self._schedule_contact(contact)
            return [decision, *self._match_contact(contact, now)]
        self.contacts.pop(contact.id, None)
        self._contact_version.pop(contact.id, None)
        return [decision]

    # --- bookkeeping -------------------------------------------------------------

    def _after_agent_change(self, agent: Agent, now: float) -> list[Decision]:
        self._bump(agent, now)
        return self._match_agent(agent, now)

    def _became_lighter(self, agent: Agent, now: float) -> None:
        if not agent.active and not agent.offered:
            agent.idle_since = now
        agent.activity_since = now

    def _bump(self, agent: Agent, now: float) -> int:
        """New version for the agent; re-push it where it can take work now."""
        version = self._agent_version.get(agent.id, 0) + 1
        self._agent_version[agent.id] = version
        self._pushes += 1
        if self._pushes % COMPACT_EVERY == 0:
            self._compact()
        if agent.status != "ready":
            return version
        for queue_name, step in self._eligible.get(agent.id, ()):
            queue = self.queues[queue_name]
            for channel in self._heap_channels[queue_name]:
                if agent.can_take(channel, self.policy, now):
                    key = self._agent_key(queue, agent, channel)
                    heapq.heappush(
                        self._heaps.setdefault((queue_name, step, channel), []),
                        (key, version, agent.id),
                    )
        return version

    def _compact(self) -> None:
        # Stale entries sink and are only dropped when they reach the top: rebuild now and
        # then so a long day does not grow the heaps without bound.
        for key, heap in self._heaps.items():
            live = [e for e in heap if self._agent_version.get(e[2]) == e[1]]
            heapq.heapify(live)
            self._heaps[key] = live
        self._deadlines = [d for d in self._deadlines if self._deadline_live(d)]
        heapq.heapify(self._deadlines)

    def _agent_key(self, queue: QueueDef, agent: Agent, channel: Channel | None = None) -> _HeapKey:
        # Fewest contacts on the channel first (spreads chats), then the queue's strategy.
        load = float(agent.load(channel)) if channel is not None else 0.0
        if queue.strategy == "most_skilled":
            skill = float(sum(agent.skills.get(s, 0) for s in queue.skills))
            return (load, -skill, agent.idle_since, float(agent.id))
        return (load, agent.idle_since, float(agent.id))

    def _index_skills(self, agent: Agent) -> None:
        eligible: list[tuple[str, int]] = []
        for queue in self.queues.values():
            for step in range(len(queue.relaxation) + 1):
                levels, _ = queue.requirements(step)
                if _meets(agent.skills, levels):
                    eligible.append((queue.name, step))
        self._eligible[agent.id] = eligible
        direct = {(q, s) for q, s in eligible}
        reach: dict[str, int] = {}
        for queue in self.queues.values():
            for step in range(len(queue.relaxation) + 1):
                _levels, widened = queue.requirements(step)
                if (queue.name, step) in direct or any((w, 0) in direct for w in widened):
                    reach[queue.name] = step
                    break
        self._reach[agent.id] = reach

    def _wait(self, contact: Contact) -> None:
        bisect.insort(self._waiting[contact.queue], (contact.sort_key(), contact.id))

    def _unwait(self, contact: Contact) -> None:
        waiting = self._waiting[contact.queue]
        entry = (contact.sort_key(), contact.id)
        index = bisect.bisect_left(waiting, entry)
        if index < len(waiting) and waiting[index] == entry:
            del waiting[index]

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


def _meets(skills: dict[str, int], required: dict[str, int] | object) -> bool:
    assert isinstance(required, dict)
    return all(skills.get(skill, 0) >= level for skill, level in required.items())
