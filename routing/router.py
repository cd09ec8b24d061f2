"""The skill-based router: pure, deterministic, indexed.

Inputs are method calls carrying `now` (seconds); outputs are decisions (`Offer`,
`MaxWaitReached`, `OfferExpired`, `WrapUpEnded`). Nothing here awaits or reads a clock,
so replaying the same calls gives the same decisions.

Indexes keep a decision away from scanning everything:
- each queue keeps its waiting contacts in one sorted list per relaxation step
  (priority, age, arrival), so an agent who only qualifies from step 1 never walks the
  contacts still at step 0;
- each (queue, relaxation step, channel) keeps a heap of agents able to take a contact
  now, ordered by the queue's strategy; entries are invalidated lazily by a per-agent
  version number, so updating an agent is a few pushes, never a search;
- a heap of deadlines (offer expiry, wrap-up end, relaxation steps, maximum wait) tells
  `tick` exactly what is due. Every call that can return decisions first runs what is
  due by its `now`, so a late `tick` never leaves the indexes behind the clock.
"""

from __future__ import annotations

import heapq

from routing.errors import RoutingError
from routing.model import (
    Agent,
    Channel,
    Contact,
    Decision,
    MaxWaitReached,
    Offer,
    OfferExpired,
    QueueDef,
    Status,
    WrapUpEnded,
)
from routing.router_index import RouterIndex, _ContactKey, _HeapEntry, _HeapKey, _meets

__all__ = ["Router", "RoutingError"]


class Router(RouterIndex):
    """Contacts waiting in queues, agents and their capacity, and the offers between them."""

    # --- agents ------------------------------------------------------------------

    def add_agent(self, agent: Agent, now: float) -> list[Decision]:
        """Start routing to `agent` (an agent id may be added once)."""
        if agent.id in self.agents:
            raise RoutingError("routing.duplicate_agent", f"agent {agent.id} is already known")
        self.agents[agent.id] = agent
        self._index_skills(agent)
        return self._after_agent_change(agent, now)

    def update_skills(self, agent_id: int, skills: dict[str, int], now: float) -> list[Decision]:
        """Change an agent's skills (an admin edited them)."""
        agent = self._agent(agent_id)
        decisions = self.tick(now)
        agent.skills = dict(skills)
        self._index_skills(agent)
        return decisions + self._after_agent_change(agent, now)

    def set_status(
        self, agent_id: int, status: Status, now: float, reason: str | None = None
    ) -> list[Decision]:
        """Set offline / ready / not ready (with a reason); going ready may bring an offer."""
        agent = self._agent(agent_id)
        if status == "not_ready" and not reason:
            raise RoutingError("routing.reason_required", "not ready needs a reason code")
        decisions = self.tick(now)
        new_reason = reason if status == "not_ready" else None
        changed = (agent.status, agent.reason) != (status, new_reason)
        if changed:
            agent.status = status
            agent.reason = new_reason
            agent.status_since = now
        if status != "ready":
            # Offers not yet answered go back to their queues at once (to someone else:
            # the status is already set).
            for contact_id in sorted(agent.offered):
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
        decisions = self.tick(now)
        if not contact.seq:
            contact.seq = next(self._seq)
        if not contact.queue_entered_at:
            contact.queue_entered_at = now
        contact.offered_to = None
        self.contacts[contact.id] = contact
        self._members[contact.queue].add(contact.id)
        self._contact_version[contact.id] = 0
        self._wait(contact, now)
        self._schedule_contact(contact)
        return decisions + self._match_contact(contact, now)

    def accept(self, contact_id: str, agent_id: int, now: float) -> None:
        """The agent took the offered contact (answered the phone, accepted the chat)."""
        offer = self._offer_of(contact_id, agent_id)
        agent = self._agent(offer.agent_id)
        before = agent.activity(now)
        del self.offers[contact_id]
        channel = agent.offered.pop(contact_id)
        agent.active[contact_id] = channel
        agent.missed_in_row = 0
        self._forget_contact(contact_id)
        self._activity_changed(agent, before, now)
        self._bump(agent, now)

    def reject(self, contact_id: str, agent_id: int, now: float) -> list[Decision]:
        """The agent declined the offer: the contact goes to someone else."""
        self._offer_of(contact_id, agent_id)
        decisions = self.tick(now)
        if contact_id in self.offers:  # not already expired by the catch-up above
            self.contacts[contact_id].declined_by.add(agent_id)
            decisions += self._withdraw_offer(contact_id, now, missed=False)
        return decisions

    def ring_failed(self, contact_id: str, agent_id: int, now: float) -> list[Decision]:
        """The agent's phone did not take the offered call: a missed offer, now rather
        than at the offer's timeout (it counts toward going not ready). Nothing happens
        when the offer is no longer this agent's (it expired or was withdrawn first)."""
        decisions = self.tick(now)
        offer = self.offers.get(contact_id)
        if offer is None or offer.agent_id != agent_id:
            return decisions
        return decisions + self._withdraw_offer(contact_id, now, missed=True)

    def withdraw(self, contact_id: str, agent_id: int, now: float) -> list[Decision]:
        """The offer could not even be made (the PBX was unreachable): back to waiting in
        its place, with no miss for the agent and nobody excluded from a later offer."""
        decisions = self.tick(now)
        offer = self.offers.get(contact_id)
        if offer is None or offer.agent_id != agent_id:
            return decisions
        return decisions + self._withdraw_offer(contact_id, now, missed=False)

    def pause(self, channel: Channel) -> None:
        """Offer no contact of `channel` until `resume` (waiting ones keep their place)."""
        self.paused.add(channel)

    def resume(self, channel: Channel, now: float) -> list[Decision]:
        """Offer contacts of `channel` again: those waiting are matched now, in order."""
        self.paused.discard(channel)
        decisions = self.tick(now)
        waiting = sorted(
            (c for c in self.contacts.values() if c.channel == channel and c.offered_to is None),
            key=lambda c: c.sort_key(),
        )
        for contact in waiting:
            if contact.offered_to is None and contact.id in self.contacts:
                decisions += self._match_contact(contact, now)
        return decisions

    def remove_contact(self, contact_id: str, now: float) -> list[Decision]:
        """The contact left before being answered (caller hung up, chat closed)."""
        decisions = self.tick(now)
        contact = self.contacts.get(contact_id)
        if contact is None:
            return decisions
        offer = self.offers.pop(contact_id, None)
        if offer is None:
            self._unwait(contact)
        self._forget_contact(contact_id)
        if offer is None:
            return decisions
        agent = self.agents[offer.agent_id]
        before = agent.activity(now)
        agent.offered.pop(contact_id, None)
        self._became_lighter(agent, before, now)
        return decisions + self._after_agent_change(agent, now)

    def end_contact(self, contact_id: str, agent_id: int, now: float) -> list[Decision]:
        """The agent finished a contact: wrap-up starts (if configured), then more work."""
        agent = self._agent(agent_id)
        if contact_id not in agent.active:
            raise RoutingError(
                "routing.no_such_contact", f"agent {agent_id} is not handling {contact_id}"
            )
        decisions = self.tick(now)
        before = agent.activity(now)
        del agent.active[contact_id]
        if self.policy.wrap_up_seconds > 0:
            # One wrap-up timer per agent: a later end restarts it, so the notes of the
            # last contact always get the full time.
            agent.wrap_up_until = now + self.policy.wrap_up_seconds
            self._push_deadline(agent.wrap_up_until, "wrap_up", agent.id, 0)
        self._became_lighter(agent, before, now)
        return decisions + self._after_agent_change(agent, now)

    def start_direct(self, contact_id: str, agent_id: int, channel: Channel, now: float) -> None:
        """The agent started a contact themselves (click-to-dial): it takes capacity."""
        agent = self._agent(agent_id)
        before = agent.activity(now)
        agent.active[contact_id] = channel
        self._activity_changed(agent, before, now)
        self._bump(agent, now)

    def finish_wrap_up(self, agent_id: int, now: float) -> list[Decision]:
        """The agent ended wrap-up early."""
        agent = self._agent(agent_id)
        decisions = self.tick(now)
        if agent.wrap_up_until is not None and agent.wrap_up_until > now:
            self._end_wrap_up(agent, now)
        agent.wrap_up_until = None
        return decisions + self._after_agent_change(agent, now)

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
                self._end_wrap_up(agent, deadline.at)
                decisions.append(WrapUpEnded(agent.id))
                decisions += self._after_agent_change(agent, now)
            elif deadline.kind == "relax":
                contact = self.contacts[str(deadline.ref)]
                if contact.offered_to is None:
                    self._restep(contact, now)
                    decisions += self._match_contact(contact, now)
            elif deadline.kind == "max_wait":
                decisions += self._max_wait(self.contacts[str(deadline.ref)], now)
        return decisions

    # --- reading -----------------------------------------------------------------

    def waiting(self, queue: str) -> list[Contact]:
        """Contacts waiting (not offered) in a queue, in routing order."""
        merged = heapq.merge(*self._bins[queue])
        return [self.contacts[cid] for _key, cid in merged]

    def queued(self, queue: str) -> list[Contact]:
        """Every contact in a queue, offered or not, in routing order."""
        members = [self.contacts[cid] for cid in self._members[queue]]
        return sorted(members, key=Contact.sort_key)

    def queues_for_agent(self, agent_id: int) -> list[str]:
        """The queues whose contacts the agent may take (at some relaxation step)."""
        return sorted(self._reach.get(agent_id, {}))

    def requirements(self, queue: str, step: int) -> tuple[dict[str, int], tuple[str, ...]]:
        """(minimum levels, widened queues) of `queue` at relaxation `step` (cached)."""
        return self._levels[queue, step], self._widened[queue, step]

    # --- matching ----------------------------------------------------------------

    def _match_contact(self, contact: Contact, now: float) -> list[Decision]:
        if contact.channel in self.paused:
            return []
        found = self._best_agent_for(contact, now)
        if found is None:
            return []
        agent, via = found
        return [self._offer(contact, agent, via, now)]

    def _best_agent_for(self, contact: Contact, now: float) -> tuple[Agent, str] | None:
        queue = self.queues[contact.queue]
        widened = self._widened[queue.name, contact.step]
        best: tuple[_HeapKey, Agent, str] | None = None
        for source, source_step in [(queue.name, contact.step), *((w, 0) for w in widened)]:
            agent = self._first_agent(source, source_step, contact, now)
            if agent is None:
                continue
            key = self._agent_key(queue, agent, contact.channel)
            if best is None or key < best[0]:
                best = (key, agent, source)
        if best is None:
            return None
        return best[1], best[2]

    def _first_agent(self, queue: str, step: int, contact: Contact, now: float) -> Agent | None:
        heap = self._heaps.get((queue, step, contact.channel))
        if not heap:
            return None
        skipped: list[_HeapEntry] = []
        found: Agent | None = None
        while heap:
            _key, version, agent_id = heap[0]
            agent = self.agents.get(agent_id)
            if (
                agent is None
                or self._agent_version.get(agent_id) != version
                or not agent.can_take(contact.channel, self.policy, now)
            ):
                # Stale: the agent changed since this entry. Any change that lets them
                # take work again bumps their version and pushes a fresh entry.
                heapq.heappop(heap)
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
        while agent.status == "ready":
            takes = {
                c
                for c in self.channels
                if c not in self.paused and agent.can_take(c, self.policy, now)
            }
            if not takes:
                break
            best: tuple[_ContactKey, Contact] | None = None
            for queue_name, min_step in self._reach.get(agent.id, {}).items():
                bins = self._bins[queue_name]
                for step in range(min_step, len(bins)):
                    for key, contact_id in bins[step]:
                        if best is not None and key >= best[0]:
                            break  # this bin's remaining contacts rank lower
                        contact = self.contacts[contact_id]
                        if (
                            contact.channel in takes
                            and agent.id not in contact.declined_by
                            and _meets(agent.skills, contact.extra_skills)
                        ):
                            best = (key, contact)
                            break
            if best is None:
                break
            contact = best[1]
            via = self._via(self.queues[contact.queue], contact.step, agent)
            decisions.append(self._offer(contact, agent, via, now))
        return decisions

    def _via(self, queue: QueueDef, step: int, agent: Agent) -> str:
        if _meets(agent.skills, self._levels[queue.name, step]):
            return queue.name
        for target in self._widened[queue.name, step]:
            if _meets(agent.skills, self._levels[target, 0]):
                return target
        return queue.name

    def _offer(self, contact: Contact, agent: Agent, via: str, now: float) -> Offer:
        queue = self.queues[contact.queue]
        step = contact.step
        levels = self._levels[queue.name, step] if via == queue.name else self._levels[via, 0]
        required = {**levels, **contact.extra_skills}
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
        before = agent.activity(now)
        self._unwait(contact)
        contact.offered_to = agent.id
        self.offers[contact.id] = offer
        agent.offered[contact.id] = contact.channel
        self._activity_changed(agent, before, now)
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
        before = agent.activity(now)
        agent.offered.pop(contact_id, None)
        contact.offered_to = None
        decisions: list[Decision] = []
        if missed:
            agent.missed_in_row += 1
            limit = self.policy.not_ready_after_missed
            went_not_ready = bool(
                limit and agent.missed_in_row >= limit and agent.status == "ready"
            )
            if went_not_ready:
                agent.status = "not_ready"
                agent.reason = self.policy.missed_reason
                agent.status_since = now
            contact.declined_by.add(agent.id)
            decisions.append(OfferExpired(contact_id, agent.id, went_not_ready))
            if went_not_ready:
                for other in sorted(agent.offered):
                    decisions += self._withdraw_offer(other, now, missed=False)
        # Back in the queue with its original place (same priority, age and arrival).
        self._wait(contact, now)
        self._schedule_contact(contact)
        self._became_lighter(agent, before, now)
        decisions += self._match_contact(contact, now)
        decisions += self._after_agent_change(agent, now)
        return decisions

    def _max_wait(self, contact: Contact, now: float) -> list[Decision]:
        if contact.offered_to is not None:
            # Being offered: let the offer run its course; a withdrawn offer reschedules
            # this deadline, already due, so it fires on the next tick.
            return []
        queue = self.queues[contact.queue]
        waited = now - contact.queue_entered_at
        decision = MaxWaitReached(
            contact.id, queue.name, queue.on_max_wait, queue.overflow_to, round(waited, 3)
        )
        self._unwait(contact)
        if queue.on_max_wait == "overflow" and queue.overflow_to in self.queues:
            target = self.queues[queue.overflow_to]
            self._members[queue.name].discard(contact.id)
            self._members[target.name].add(contact.id)
            contact.overflowed_from = queue.name
            contact.queue = target.name
            contact.queue_entered_at = now
            # The queue's own weight is swapped for the new queue's; tier and IVR weights stay.
            contact.priority += target.priority - queue.priority
            contact.declined_by.clear()
            self._wait(contact, now)
            self._schedule_contact(contact)
            return [decision, *self._match_contact(contact, now)]
        self._forget_contact(contact.id)
        return [decision]
