"""The pure contact life cycle: contact events and agents' requests in, effects out."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.asterisk.channel import VOICE
from adapters.desk_channels import DESK_CHANNELS
from routing.channels import Capability, Channels, ChannelSpec
from routing.effects import (
    AgentChanged,
    Decided,
    Deliver,
    Effect,
    LeaveQueue,
    OfferClosed,
    Persist,
    Record,
    Requeue,
)
from routing.events import ContactQueued
from routing.lifecycle import ContactLifeCycle
from routing.model import Agent, MaxWaitReached, Offer, Policy, QueueDef, WrapUpEnded
from routing.router import Router, RoutingError

POLICY = Policy(
    capacity={"voice": 1, "chat": 3, "email": 5, "sms": 3}, blocks={}, wrap_up_seconds=5
)
SUPPORT = QueueDef("support", ("voice", "chat"), {"support": 1}, offer_timeout_seconds=20)
SHORT = QueueDef(
    "short", ("voice", "chat"), {"support": 1}, max_wait_seconds=30, on_max_wait="voicemail"
)


class Port:
    """Stands for a channel's own side: the life cycle never calls it, only names it."""


def life(*, ports: bool = True, agents: int = 2) -> ContactLifeCycle:
    router = Router([SUPPORT, SHORT], POLICY)
    channels = Channels([VOICE, *DESK_CHANNELS], {"voice": Port()} if ports else {})  # type: ignore[dict-item]
    cycle = ContactLifeCycle(router, channels)
    for agent_id in range(1, agents + 1):
        router.add_agent(
            Agent(agent_id, f"a{agent_id}", {"support": 3}, {"voice": 1, "chat": 3}), 0.0
        )
        router.set_status(agent_id, "ready", 0.0)
        cycle.devices[agent_id] = f"PJSIP/10{agent_id:02d}"
    return cycle


def kinds(effects: list[Effect]) -> list[str]:
    return [e.event.kind for e in effects if isinstance(e, Record)]


def of(effects: list[Effect], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def queue(
    cycle: ContactLifeCycle, iid: int, channel: str = "voice", q: str = "support"
) -> list[Effect]:
    return cycle.queued(ContactQueued(iid, channel, q, 10.0, address="+44 20 7946 0018"), 0, 10.0)


def test_a_call_offered_answered_ended_and_wrapped_up() -> None:
    cycle = life()
    effects = queue(cycle, 7)
    assert kinds(effects) == ["queued", "offered"]
    (deliver,) = of(effects, Deliver)
    assert deliver.ring and deliver.offer.agent_id == 1
    assert isinstance(of(effects, Decided)[0].decision, Offer)
    assert "offered_at" in of(effects, Persist)[0].fields
    answered = cycle.answered(7, 1, 12.0)
    assert kinds(answered) == ["answered"]
    assert cycle.contacts[7].state == "talking"
    ended = cycle.ended(7, 40.0, "hangup")
    assert kinds(ended) == ["ended"] and cycle.contacts[7].state == "wrap_up"
    wrap = cycle.tick(45.0)
    assert kinds(wrap) == ["wrap_up_ended"]
    decided = of(wrap, Decided)[0]
    assert decided.decision == WrapUpEnded(1) and decided.interaction_id == 7
    assert 7 not in cycle.contacts


def test_an_answer_on_another_agents_device_is_theirs_and_withdraws_the_offer() -> None:
    cycle = life()
    queue(cycle, 7)
    effects = cycle.answered(7, None, 11.0, device="PJSIP/1002", leg="PJSIP/1002-0000001")
    (closed,) = of(effects, OfferClosed)
    assert (closed.agent_id, closed.outcome, closed.take_back) == (1, "answered_elsewhere", None)
    assert closed.reason == "answered by PJSIP/1002"
    assert cycle.contacts[7].agent_id == 2 and cycle.contacts[7].state == "talking"
    assert cycle.router.agents[2].active == {"7": "voice"}
    assert not cycle.router.agents[1].offered


def test_an_answer_by_nobody_routing_knows_ends_without_a_wrap_up() -> None:
    cycle = life()
    queue(cycle, 7)
    cycle.answered(7, None, 11.0, device="PJSIP/9999")
    assert cycle.contacts[7].agent_id is None
    ended = cycle.ended(7, 20.0, "hangup")
    assert kinds(ended) == ["ended"] and 7 not in cycle.contacts


def test_a_takeover_ends_the_first_agents_part_and_starts_the_seconds() -> None:
    cycle = life()
    queue(cycle, 7)
    cycle.answered(7, 1, 11.0)
    effects = cycle.answered(7, None, 15.0, device="PJSIP/1002")
    assert kinds(effects) == ["ended", "answered"]
    assert cycle.contacts[7].agent_id == 2
    # The first agent's wrap-up closes their record, not the second agent's contact.
    cycle.tick(20.5)
    assert cycle.contacts[7].state == "talking"


def test_the_same_agents_leg_bridged_again_changes_nothing() -> None:
    cycle = life()
    queue(cycle, 7)
    cycle.answered(7, 1, 11.0)
    assert cycle.answered(7, None, 13.0, device="PJSIP/1001") == []


def test_accepting_a_phone_that_must_be_picked_up_is_a_state() -> None:
    cycle = life()
    queue(cycle, 7)
    effects = cycle.awaiting_pickup(1, 7, 11.0)
    assert cycle.contacts[7].accepted_at == 11.0 and cycle.contacts[7].state == "offered"
    assert AgentChanged(1) in effects
    cycle.answered(7, 1, 12.0)
    assert cycle.contacts[7].accepted_at is None
    with pytest.raises(RoutingError, match="not offered to you"):
        cycle.awaiting_pickup(2, 7, 13.0)


def test_a_desk_channel_is_accepted_at_the_desk_and_never_rings() -> None:
    cycle = life()
    effects = queue(cycle, 8, channel="chat")
    assert not of(effects, Deliver)[0].ring
    assert kinds(cycle.accepted(1, 8, 11.0)) == ["answered"]


def test_a_declined_call_is_taken_back_from_the_phone() -> None:
    cycle = life()
    queue(cycle, 7)
    effects = cycle.rejected(1, 7, 11.0)
    closed = of(effects, OfferClosed)[0]
    assert (closed.outcome, closed.take_back) == ("rejected", "voice")
    # It goes to the other agent at once.
    assert of(effects, Deliver)[0].offer.agent_id == 2


def test_an_offer_that_could_not_be_sent_pauses_its_channel_without_a_miss() -> None:
    cycle = life()
    queue(cycle, 7)
    effects = cycle.unsent(1, 7, 11.0)
    assert of(effects, OfferClosed)[0].outcome == "withdrawn"
    assert not of(effects, Deliver)  # paused: not offered to the other agent either
    assert cycle.router.agents[1].missed_in_row == 0
    assert not cycle.router.contacts["7"].declined_by  # nobody excluded
    resumed = cycle.resume("voice", 13.0)
    assert of(resumed, Deliver)[0].offer.contact_id == "7"


def test_maximum_wait_lets_the_caller_go_through_the_channel_that_has_a_port() -> None:
    for ports, leaves in ((True, 1), (False, 0)):
        cycle = life(ports=ports, agents=0)
        queue(cycle, 7, q="short")
        effects = cycle.tick(41.0)
        assert isinstance(of(effects, Decided)[0].decision, MaxWaitReached)
        assert kinds(effects) == ["voicemail"]
        assert len(of(effects, LeaveQueue)) == leaves
        assert 7 not in cycle.contacts


def test_a_transfer_to_a_queue_ends_the_agents_part_and_queues_it_again() -> None:
    cycle = life()
    queue(cycle, 7)
    cycle.answered(7, 1, 11.0)
    effects = cycle.to_queue(cycle.contacts[7], "short", 20.0)
    assert kinds(effects)[0] == "ended"
    (requeue,) = of(effects, Requeue)
    assert (requeue.event.queue, requeue.event.interaction_id) == ("short", 7)


def test_a_click_to_dial_is_talking_when_answered_and_free_again_when_it_fails() -> None:
    cycle = life()
    cycle.dialing(9, 1, "voice", "02079460018", None, 10.0)
    assert cycle.router.agents[1].active == {"9": "voice"}
    assert kinds(cycle.answered(9, 1, 12.0)) == ["answered"]
    cycle.dialing(10, 2, "voice", "02079460019", None, 10.0)
    failed = cycle.dial_failed(10, 2, 11.0)
    assert kinds(failed) == ["dial_failed"] and not cycle.router.agents[2].active


def test_an_unknown_queue_or_channel_is_refused_and_changes_nothing() -> None:
    cycle = life()
    with pytest.raises(RoutingError, match="no queue"):
        cycle.queued(ContactQueued(7, "voice", "nowhere", 1.0), 0, 1.0)
    with pytest.raises(RoutingError, match="no channel 'fax'"):
        cycle.queued(ContactQueued(7, "fax", "support", 1.0), 0, 1.0)
    assert not cycle.contacts and not cycle.router.contacts


def test_channels_say_what_they_can_do() -> None:
    channels = Channels([VOICE, *DESK_CHANNELS])
    assert channels.can("voice", Capability.HOLD) and not channels.can("chat", Capability.HOLD)
    assert channels.with_capability(Capability.DIAL) == ["voice"]
    assert channels.restored_from_store() == ("chat", "email", "sms")
    assert VOICE.actions() == sorted(c.value for c in VOICE.capabilities)
    with pytest.raises(ValueError, match="undeclared"):
        Channels([ChannelSpec("chat", frozenset(), "chat")], {"voice": Port()})  # type: ignore[dict-item]
