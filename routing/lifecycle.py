"""The contact life cycle, pure: queued -> offered -> answered / held / transferred ->
wrap-up -> closed; or abandoned, or out of the queue at its maximum wait (callback,
voicemail, disconnect, overflow to another queue).

`ContactLifeCycle` owns the router and what is known of each contact beyond it. Its
inputs are contact events (`routing.events`), agents' requests and the clock (`now`, a
parameter: nothing here reads a clock or awaits); its outputs are *effects*, in the order
they must be carried out: a life-cycle event to count and store, an interaction field to
write, an offer to deliver (screen pop, then the channel), a desktop to update, a channel
command. The live routing service carries them out (`routing.service`); `contact-center
replay` feeds the same core the events of a recorded AMI session and prints them, so both
take the same decisions from the same events.

A channel is never named here: what a contact's channel can do comes from its declared
spec (`routing.channels`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from crm_store.phones import bounded_caller_id, clean_name
from routing import contact_request
from routing.channels import Capability
from routing.contact_state import ContactBook, ContactInfo
from routing.effects import (
    AgentChanged,
    ContactChanged,
    Decided,
    Deliver,
    Effect,
    LeaveQueue,
    OfferClosed,
    Persist,
    Record,
    Requeue,
    StatusSaved,
)
from routing.events import ContactQueued
from routing.model import (
    Contact,
    Decision,
    MaxWaitReached,
    Offer,
    OfferExpired,
    WrapUpEnded,
)
from routing.router import RoutingError
from routing.stats import LifeCycleEvent
from routing.writer import as_stored

# The life-cycle states an agent is working in.
HANDLING = ("talking", "held")


def stored_time(epoch: float) -> datetime:
    """An epoch as the store keeps it (an aware UTC datetime)."""
    return datetime.fromtimestamp(epoch, UTC)


class ContactLifeCycle(ContactBook):
    """Every contact's life, from queued to closed, around one router."""

    # --- contact events ---------------------------------------------------------------

    def queued(self, event: ContactQueued, tier_bonus: int, now: float) -> list[Effect]:
        """A contact waits for an agent (`now`: when the router takes it)."""
        if event.queue not in self.router.queues:
            raise RoutingError(
                "routing.unknown_queue", f"contact {event.interaction_id}: no queue {event.queue!r}"
            )
        spec = self.channels.spec(event.channel)
        # A caller id is whatever the network sent: bounded before it is shown or looked up.
        address = (
            bounded_caller_id(event.address) if spec.address_kind == "phone" else event.address
        )
        enqueued_at = event.enqueued_at if event.enqueued_at is not None else event.at
        info = ContactInfo(
            interaction_id=event.interaction_id,
            channel=event.channel,
            queue=event.queue,
            address=address,
            address_name=clean_name(event.address_name),
            customer_id=event.customer_id,
            enqueued_at=enqueued_at,
            queue_entered_at=event.at,
            ivr_path=list(event.ivr_path),
            ivr_inputs=dict(event.ivr_inputs),
            priority=event.priority,
            skills=dict(event.skills),
        )
        queue = self.router.queues[event.queue]
        contact = Contact(
            id=str(event.interaction_id),
            channel=info.channel,
            queue=event.queue,
            enqueued_at=enqueued_at,
            priority=queue.priority + tier_bonus + event.priority,
            extra_skills=dict(event.skills),
            queue_entered_at=event.at,
        )
        decisions = self.router.enqueue(contact, now)
        self.contacts[event.interaction_id] = info
        return [self._record("queued", info, event.at), *self.decide(decisions, now)]

    def answered(
        self,
        interaction_id: int,
        agent_id: int | None,
        at: float,
        *,
        device: str = "",
        leg: str = "",
    ) -> list[Effect]:
        """The contact was answered: by the agent it was offered to, or (`agent_id` None)
        by whoever has the device `device` (leg `leg`) — maybe nobody routing knows."""
        info = self.contacts.get(interaction_id)
        if info is None or info.state in ("wrap_up", "closed"):
            return []
        taker = agent_id if agent_id is not None else self._owner(device, leg)
        if info.state in HANDLING or info.state == "dialing":
            if info.state == "dialing" and taker in (None, info.agent_id):
                return self._talking(info, info.agent_id, at)
            if taker is None or taker == info.agent_id:
                return []  # the same agent's leg bridged again (after a hold)
            # Someone else took over the call (a pickup, a transfer Asterisk did itself).
            handed = self._end_handling(info, at, f"taken over by {device or taker}")
            # A record of its own: the first agent's wrap-up closes theirs, not this one.
            fresh = replace(info, hold_total=0.0, held_since=None, ended_at=None)
            return handed + self._taken_directly(fresh, taker, at)
        if info.state == "offered" and taker is not None and taker == info.agent_id:
            try:
                self.router.accept(str(interaction_id), taker, at)
            except RoutingError:
                return []
            return self._talking(info, taker, at)
        # Answered by someone routing did not choose: the contact leaves the router.
        effects: list[Effect] = []
        offered_to = info.agent_id if info.state == "offered" else None
        decisions = self.router.remove_contact(str(interaction_id), at)
        if offered_to is not None:
            effects += self._offer_closed(
                info, offered_to, "answered_elsewhere", reason=f"answered by {device}"
            )
        info.state, info.agent_id = "waiting", None
        if taker is not None:
            effects += self._taken_directly(info, taker, at)
        else:
            effects += self._talking(info, None, at)
        return effects + self.decide(decisions, at)

    def ring_failed(self, interaction_id: int, agent_id: int, at: float) -> list[Effect]:
        """The agent's device did not take the offer: the next agent is tried now (a
        missed offer, as at the offer's timeout)."""
        info = self.contacts.get(interaction_id)
        if info is None or info.state != "offered" or info.agent_id != agent_id:
            return []
        return self.decide(self.router.ring_failed(str(interaction_id), agent_id, at), at)

    def held(self, interaction_id: int, at: float) -> list[Effect]:
        """Hold starts: its time counts into the handle time."""
        info = self.contacts.get(interaction_id)
        if info is None or info.state != "talking":
            return []
        info.state, info.held_since = "held", at
        return [self._record("held", info, at), ContactChanged(info)]

    def unheld(self, interaction_id: int, at: float) -> list[Effect]:
        """Hold ends."""
        info = self.contacts.get(interaction_id)
        if info is None or info.state != "held" or info.held_since is None:
            return []
        info.hold_total += at - info.held_since
        info.state, info.held_since = "talking", None
        return [self._record("unheld", info, at), ContactChanged(info)]

    def transferred(self, interaction_id: int, target: str, at: float) -> list[Effect]:
        """Recorded on the interaction; the end of the agent's part follows."""
        effects: list[Effect] = [Persist(interaction_id, {"end_cause": f"transferred to {target}"})]
        info = self.contacts.get(interaction_id)
        if info is not None:
            effects.append(self._record("transferred", info, at, target=target))
        return effects

    def ended(self, interaction_id: int, at: float, cause: str) -> list[Effect]:
        """The contact is over, or the customer left before an agent answered."""
        info = self.contacts.get(interaction_id)
        if info is None:
            return []
        if info.state in ("waiting", "offered"):
            offered_to = info.agent_id if info.state == "offered" else None
            decisions = self.router.remove_contact(str(interaction_id), at)
            effects: list[Effect] = [self._record("abandoned", info, at, cause=cause)]
            info.state, info.ended_at = "closed", at
            self.contacts.pop(interaction_id, None)
            effects.append(
                Persist(interaction_id, {"ended_at": stored_time(at), "end_cause": cause})
            )
            if offered_to is not None:
                effects += self._offer_closed(
                    info, offered_to, "abandoned", reason="the call ended"
                )
            return effects + self.decide(decisions, at)
        if info.state in (*HANDLING, "dialing") and info.agent_id is None:
            # Taken by someone routing does not know: over, with no wrap-up to run.
            info.state, info.ended_at = "closed", at
            self.contacts.pop(interaction_id, None)
            return [
                self._record("ended", info, at, cause=cause),
                Persist(interaction_id, {"ended_at": stored_time(at), "end_cause": cause}),
            ]
        if info.state in (*HANDLING, "dialing"):
            # "dialing": a click-to-dial that ended before anyone answered; the agent
            # was busy with it all the same.
            return self._end_handling(info, at, cause)
        return []

    # --- what agents ask ----------------------------------------------------------------

    def accepted(self, agent_id: int, interaction_id: int, now: float) -> list[Effect]:
        """The agent took a contact at the desktop, on a channel the desktop answers."""
        info = self.offered_to(agent_id, interaction_id)
        return self.answered(info.interaction_id, agent_id, now)

    def awaiting_pickup(self, agent_id: int, interaction_id: int, now: float) -> list[Effect]:
        """The agent accepted, and the device must be picked up by hand: a state the
        desktop shows ("pick up your phone"), until the answer comes."""
        info = self.offered_to(agent_id, interaction_id)
        info.accepted_at = now
        return [ContactChanged(info), AgentChanged(agent_id)]

    def rejected(self, agent_id: int, interaction_id: int, now: float) -> list[Effect]:
        """The agent declined an offer: it goes to someone else."""
        info = self.offered_to(agent_id, interaction_id)
        decisions = self.router.reject(str(interaction_id), agent_id, now)
        effects: list[Effect] = [self._record("offer_declined", info, now)]
        info.state, info.agent_id, info.accepted_at = "waiting", None, None
        effects += self._offer_closed(info, agent_id, "rejected")
        return effects + self.decide(decisions, now)

    def unsent(self, agent_id: int, interaction_id: int, now: float) -> list[Effect]:
        """The offer could not reach the channel (its side is unreachable): withdrawn, no
        miss and nobody excluded; the channel's offers stop until `resume`."""
        info = self.contacts.get(interaction_id)
        effects: list[Effect] = []
        if info is not None:
            self.router.pause(info.channel)
            info.state, info.agent_id, info.accepted_at = "waiting", None, None
        effects.append(OfferClosed(agent_id, interaction_id, "withdrawn"))
        decisions = self.router.withdraw(str(interaction_id), agent_id, now)
        return effects + self.decide(decisions, now) + [AgentChanged(agent_id)]

    def resume(self, channel: str, now: float) -> list[Effect]:
        """The channel can take offers again: those waiting are matched now, in order."""
        return self.decide(self.router.resume(channel, now), now)

    def dialing(
        self,
        interaction_id: int,
        agent_id: int,
        channel: str,
        number: str,
        customer_id: int | None,
        now: float,
    ) -> list[Effect]:
        """The agent starts a contact themselves (click-to-dial): it takes capacity."""
        info = ContactInfo(
            interaction_id, channel, None, number, customer_id, now, now, state="dialing"
        )
        info.agent_id = agent_id
        self.contacts[interaction_id] = info
        self.router.start_direct(str(interaction_id), agent_id, channel, now)
        return [
            self._record("dialing", info, now),
            Persist(interaction_id, {"agent_id": agent_id}),
        ]

    def dial_failed(self, interaction_id: int, agent_id: int, now: float) -> list[Effect]:
        """The click-to-dial could not even start: the agent is free again at once."""
        info = self.contacts.pop(interaction_id, None)
        effects: list[Effect] = []
        if info is not None:
            effects.append(self._record("dial_failed", info, now))
        self.router.end_contact(str(interaction_id), agent_id, now)
        self.router.finish_wrap_up(agent_id, now)
        effects.append(
            Persist(interaction_id, {"ended_at": stored_time(now), "end_cause": "dial failed"})
        )
        return effects

    def to_queue(self, info: ContactInfo, queue: str, now: float) -> list[Effect]:
        """The agent sends the contact to a queue: their part ends, and it waits again."""
        effects = self.ended(info.interaction_id, now, f"transferred to queue {queue}")
        effects.append(Persist(info.interaction_id, {"ended_at": None, "queue": queue}))
        effects.append(
            Requeue(
                ContactQueued(
                    interaction_id=info.interaction_id,
                    channel=info.channel,
                    queue=queue,
                    at=now,
                    address=info.address,
                    address_name=info.address_name,
                    customer_id=info.customer_id,
                    ivr_path=info.ivr_path,
                    ivr_inputs=info.ivr_inputs,
                    priority=info.priority,
                    skills=dict(info.skills),
                )
            )
        )
        return effects

    def finish_wrap_up(self, agent_id: int, now: float) -> list[Effect]:
        """The agent is done with wrap-up before the timer."""
        effects = self._close_wrap_up(agent_id, now)
        return effects + self.decide(self.router.finish_wrap_up(agent_id, now), now)

    def tick(self, now: float) -> list[Effect]:
        """The router's deadlines due by `now`."""
        return self.decide(self.router.tick(now), now)

    # --- the router's decisions ----------------------------------------------------------

    def decide(self, decisions: list[Decision], now: float) -> list[Effect]:
        """What follows from each of the router's decisions."""
        effects: list[Effect] = []
        for decision in decisions:
            if isinstance(decision, Offer):
                effects += self._offered(decision, now)
            elif isinstance(decision, OfferExpired):
                effects += self._expired(decision, now)
            elif isinstance(decision, MaxWaitReached):
                effects += self._max_wait(decision, now)
            elif isinstance(decision, WrapUpEnded):
                last = self.last_ended.get(decision.agent_id)
                effects.append(Decided(decision, last))
                effects += self._close_wrap_up(decision.agent_id, now)
                effects.append(AgentChanged(decision.agent_id))
        return effects

    def _offered(self, offer: Offer, now: float) -> list[Effect]:
        interaction_id = int(offer.contact_id)
        info = self.contacts[interaction_id]
        info.state, info.agent_id, info.accepted_at = "offered", offer.agent_id, None
        info.offer_expires_at = offer.expires_at
        info.explanation = dict(offer.explanation)
        # The request is kept beside the explanation: a re-queue after a restart reads it.
        routing = {**offer.explanation, **contact_request.as_routing(info.priority, info.skills)}
        return [
            Decided(offer, interaction_id),
            # Why this agent (skills matched, step, wait, idle time), kept for every offer.
            self._record("offered", info, now, explanation=dict(offer.explanation)),
            Deliver(offer, info, ring=self.channels.can(info.channel, Capability.RING)),
            Persist(interaction_id, {"offered_at": stored_time(now), "routing": routing}),
        ]

    def _expired(self, expired: OfferExpired, now: float) -> list[Effect]:
        interaction_id = int(expired.contact_id)
        info = self.contacts.get(interaction_id)
        effects: list[Effect] = [Decided(expired, interaction_id)]
        take_back = None
        if info is not None:
            info.state, info.agent_id, info.accepted_at = "waiting", None, None
            if self.channels.can(info.channel, Capability.RING):
                take_back = info.channel
        effects.append(
            Record(
                LifeCycleEvent(
                    "offer_timeout",
                    as_stored(now),
                    interaction_id,
                    info.channel if info is not None else None,
                    info.queue if info is not None else None,
                    expired.agent_id,
                    {"agent_set_not_ready": expired.agent_set_not_ready},
                )
            )
        )
        effects.append(OfferClosed(expired.agent_id, interaction_id, "timeout", take_back))
        if expired.agent_set_not_ready:
            agent = self.router.agents[expired.agent_id]
            effects.append(
                Record(
                    LifeCycleEvent(
                        "status",
                        as_stored(now),
                        agent_id=agent.id,
                        details={"status": agent.status, "reason": agent.reason},
                    )
                )
            )
            effects.append(StatusSaved(agent.id, agent.status, agent.reason, now))
        effects.append(AgentChanged(expired.agent_id))
        return effects

    def _max_wait(self, reached: MaxWaitReached, now: float) -> list[Effect]:
        interaction_id = int(reached.contact_id)
        effects: list[Effect] = [Decided(reached, interaction_id)]
        info = self.contacts.get(interaction_id)
        if info is None:
            return effects
        if reached.target:
            effects.append(self._record(reached.action, info, now, target=reached.target))
        else:
            effects.append(self._record(reached.action, info, now))
        if reached.action == "overflow" and reached.target:
            info.queue, info.queue_entered_at = reached.target, now
            effects.append(Persist(interaction_id, {"queue": reached.target}))
            return effects
        self.contacts.pop(interaction_id, None)
        if self.channels.port(info.channel) is not None:
            effects.append(LeaveQueue(interaction_id, info.channel, reached.action))
        effects.append(
            Persist(
                interaction_id,
                {"ended_at": stored_time(now), "end_cause": f"max wait: {reached.action}"},
            )
        )
        return effects

    # --- steps ------------------------------------------------------------------------

    def _talking(self, info: ContactInfo, agent_id: int | None, at: float) -> list[Effect]:
        info.state, info.agent_id, info.answered_at = "talking", agent_id, at
        info.accepted_at = None
        effects: list[Effect] = [
            self._record("answered", info, at),
            Persist(info.interaction_id, {"answered_at": stored_time(at), "agent_id": agent_id}),
            ContactChanged(info),
        ]
        if agent_id is not None:
            effects.append(AgentChanged(agent_id))
        return effects

    def _taken_directly(self, info: ContactInfo, taker: int, at: float) -> list[Effect]:
        """A known agent answered without an offer: busy with it, as with their own call."""
        if taker not in self.router.agents:
            return self._talking(info, None, at)
        self.router.start_direct(str(info.interaction_id), taker, info.channel, at)
        self.contacts[info.interaction_id] = info
        return self._talking(info, taker, at)

    def _end_handling(self, info: ContactInfo, at: float, cause: str) -> list[Effect]:
        """The agent's part of a contact is over: wrap-up starts (if configured)."""
        assert info.agent_id is not None
        if info.held_since is not None:
            info.hold_total += at - info.held_since
            info.held_since = None
        info.ended_at = at
        info.state = "wrap_up"
        agent_id = info.agent_id
        effects: list[Effect] = [self._record("ended", info, at, cause=cause)]
        try:
            decisions = self.router.end_contact(str(info.interaction_id), agent_id, at)
        except RoutingError:
            decisions = []
        self.last_ended[agent_id] = info.interaction_id
        self.wrapping.setdefault(agent_id, []).append(info)
        effects.append(
            Persist(info.interaction_id, {"ended_at": stored_time(at), "end_cause": cause})
        )
        effects += [ContactChanged(info), AgentChanged(agent_id)]
        if self.router.agents[agent_id].wrap_up_until is None:
            effects += self._close_wrap_up(agent_id, at)
        return effects + self.decide(decisions, at)

    def _close_wrap_up(self, agent_id: int, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for info in self.wrapping.pop(agent_id, []):
            effects.append(self._record("wrap_up_ended", info, now, agent_id=agent_id))
            info.state = "closed"
            if self.contacts.get(info.interaction_id) is info:
                # Not when the same interaction is waiting again (transferred to a queue).
                del self.contacts[info.interaction_id]
            effects.append(ContactChanged(info))
        return effects

    def _offer_closed(
        self, info: ContactInfo, agent_id: int, outcome: str, *, reason: str = ""
    ) -> list[Effect]:
        rings = self.channels.can(info.channel, Capability.RING)
        take_back = info.channel if outcome == "rejected" and rings else None
        return [
            OfferClosed(agent_id, info.interaction_id, outcome, take_back, reason),
            AgentChanged(agent_id),
        ]

    def _record(
        self, kind: str, info: ContactInfo, at: float, *, agent_id: int | None = None, **why: Any
    ) -> Record:
        return Record(
            LifeCycleEvent(
                kind,
                as_stored(at),
                info.interaction_id,
                info.channel,
                info.queue,
                info.agent_id if agent_id is None else agent_id,
                why,
            )
        )
