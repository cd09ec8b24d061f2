"""The router's rules, one by one, with `now` as a plain number."""

from __future__ import annotations

import pytest

from adapters.channels import CHANNEL_SPECS
from contact_center.config import load_config
from routing.definitions import policy_from_config, queues_from_config
from routing.model import (
    Decision,
    MaxWaitReached,
    Offer,
    OfferExpired,
    QueueDef,
    RelaxStep,
    WrapUpEnded,
)
from routing.router import Router, RoutingError
from tests.unit.router_support import POLICY, SUPPORT, agent, contact, offers, ready_router


def test_contact_goes_to_the_longest_idle_qualified_agent() -> None:
    router = ready_router(agent(1, support=5), agent(2, support=2), agent(3, support=9))
    decisions = router.enqueue(contact("c1", at=10), now=10)
    assert offers(decisions) == [("c1", 1)]
    offer = decisions[0]
    assert isinstance(offer, Offer)
    assert offer.expires_at == 30
    assert offer.explanation == {
        "queue": "support",
        "step": 0,
        "strategy": "longest_idle",
        "required": {"support": 3},
        "skills_matched": {"support": 5},
        "wait_seconds": 0.0,
        "agent_idle_seconds": 10.0,
        "priority": 0,
    }


def test_most_skilled_strategy_and_deterministic_ties() -> None:
    queue = QueueDef("expert", ("voice",), {"support": 1}, strategy="most_skilled")
    router = ready_router(agent(1, support=5), agent(2, support=9), queues=(queue,))
    assert offers(router.enqueue(contact("c1", queue="expert", at=5), now=5)) == [("c1", 2)]
    # Equal skill and idle time: the lower id wins, every time.
    tie = Router((queue,), POLICY)
    for i in (7, 4):
        tie.add_agent(agent(i, support=5), now=0)
        tie.set_status(i, "ready", now=0)
    assert offers(tie.enqueue(contact("c2", queue="expert"), now=1)) == [("c2", 4)]


def test_higher_priority_first_then_oldest() -> None:
    router = ready_router()
    router.add_agent(agent(1, support=5), now=0)
    router.enqueue(contact("old", at=1), now=1)
    router.enqueue(contact("new", at=2), now=2)
    router.enqueue(contact("vip", at=3, priority=3), now=3)
    assert [c.id for c in router.waiting("support")] == ["vip", "old", "new"]
    assert offers(router.set_status(1, "ready", now=4)) == [("vip", 1)]


def test_no_double_offer_and_capacity_is_reserved() -> None:
    router = ready_router(agent(1, support=5))
    assert offers(router.enqueue(contact("c1"), now=1)) == [("c1", 1)]
    # The only agent is reserved by the offer: the second call waits.
    assert offers(router.enqueue(contact("c2", at=2), now=2)) == []
    assert router.contacts["c1"].offered_to == 1
    with pytest.raises(RoutingError):
        router.accept("c1", 2, now=3)


def test_timeout_requeues_in_place_next_agent_tried_and_missed_agent_not_ready() -> None:
    router = ready_router(agent(1, support=5), agent(2, support=5))
    router.enqueue(contact("c1", at=0), now=0)  # offered to 1
    router.enqueue(contact("c2", at=1), now=1)  # offered to 2
    decisions = router.tick(now=20.5)  # c1's offer expires (20 s ring)
    assert decisions[0] == OfferExpired("c1", 1, agent_set_not_ready=False)
    assert offers(decisions) == []  # agent 2 is busy with c2; agent 1 missed c1
    assert [c.id for c in router.waiting("support")] == ["c1"]
    # Agent 1 is free again (c1 is not re-offered to the agent who missed it): c3.
    assert offers(router.enqueue(contact("c3", at=20.8), now=20.8)) == [("c3", 1)]
    at_21 = router.tick(now=21)  # c2's offer expires; agent 2 takes c1, older than c2
    assert at_21[0] == OfferExpired("c2", 2, agent_set_not_ready=False)
    assert offers(at_21) == [("c1", 2)]
    # Both agents miss a second time: not ready with the configured reason.
    assert router.tick(now=41) == [
        OfferExpired("c3", 1, agent_set_not_ready=True),
        OfferExpired("c1", 2, agent_set_not_ready=True),
    ]
    assert router.agents[1].status == "not_ready"
    assert router.agents[1].reason == "missed-offer"
    assert router.agents[1].status_since == 41
    assert [c.id for c in router.waiting("support")] == ["c1", "c2", "c3"]


def test_requeued_contact_keeps_its_place() -> None:
    router = ready_router(agent(1, support=5), agent(2, support=5))
    router.set_status(2, "not_ready", now=1, reason="break")
    router.enqueue(contact("c1", at=2), now=2)  # offered to 1
    router.enqueue(contact("c2", at=3), now=3)
    router.enqueue(contact("c3", at=4), now=4)
    # Agent 1 declines c1: it waits again ahead of c2 and c3; agent 1 takes c2.
    assert offers(router.reject("c1", 1, now=5)) == [("c2", 1)]
    assert [c.id for c in router.waiting("support")] == ["c1", "c3"]
    assert offers(router.set_status(2, "ready", now=6)) == [("c1", 2)]


def test_reject_reroutes_to_someone_else() -> None:
    router = ready_router(agent(1, support=5), agent(2, support=5))
    router.enqueue(contact("c1"), now=5)
    assert offers(router.reject("c1", 1, now=6)) == [("c1", 2)]
    assert router.agents[1].missed_in_row == 0


def test_a_phone_that_rang_out_is_a_missed_offer_before_the_timeout() -> None:
    router = ready_router(agent(1, support=5), agent(2, support=5))
    router.enqueue(contact("c1"), now=5)
    decisions = router.ring_failed("c1", 1, now=9)  # the offer would expire at 25
    assert decisions[0] == OfferExpired("c1", 1, agent_set_not_ready=False)
    assert offers(decisions) == [("c1", 2)]
    assert router.agents[1].missed_in_row == 1  # the policy's second miss: not ready
    # A late report for an offer that is no longer this agent's changes nothing.
    assert router.ring_failed("c1", 1, now=10) == []
    assert router.offers["c1"].agent_id == 2


def test_accept_end_wrap_up_then_next_contact() -> None:
    router = ready_router(agent(1, support=5))
    router.enqueue(contact("c1"), now=1)
    router.accept("c1", 1, now=3)
    assert router.agents[1].activity(3) == "on_contact"
    assert offers(router.enqueue(contact("c2", at=4), now=4)) == []
    assert offers(router.end_contact("c1", 1, now=60)) == []  # wrap-up: 30 s
    assert router.agents[1].activity(61) == "wrap_up"
    assert router.next_deadline() == 90
    decisions = router.tick(now=90)
    assert decisions[0] == WrapUpEnded(1)
    assert offers(decisions) == [("c2", 1)]


def test_finishing_wrap_up_early_takes_the_next_contact() -> None:
    router = ready_router(agent(1, support=5))
    router.enqueue(contact("c1"), now=1)
    router.accept("c1", 1, now=2)
    router.end_contact("c1", 1, now=10)
    router.enqueue(contact("c2", at=11), now=11)
    assert offers(router.finish_wrap_up(1, now=12)) == [("c2", 1)]


def test_channel_capacity_and_cross_channel_blocks() -> None:
    chat = QueueDef("chat", ("chat",), {"support": 1})
    router = ready_router(agent(1, support=5), queues=(SUPPORT, chat))
    for i in range(4):
        router.enqueue(contact(f"chat{i}", queue="chat", channel="chat", at=i), now=i)
    assert len(router.agents[1].offered) == 3  # capacity 3 chats
    assert [c.id for c in router.waiting("chat")] == ["chat3"]
    for i in range(3):
        router.accept(f"chat{i}", 1, now=5)
    # Chats do not block voice in this policy; a voice call blocks new chats.
    assert offers(router.enqueue(contact("v1", at=6), now=6)) == [("v1", 1)]
    router.accept("v1", 1, now=7)
    for i in range(3):
        router.end_contact(f"chat{i}", 1, now=8)
    router.finish_wrap_up(1, now=9)
    assert router.agents[1].offered == {}
    assert [c.id for c in router.waiting("chat")] == ["chat3"]


def test_relaxation_lowers_levels_then_widens() -> None:
    billing = QueueDef(
        "billing",
        ("voice",),
        {"billing": 5},
        relaxation=(
            RelaxStep(after_seconds=90, lower_levels={"billing": 2}),
            RelaxStep(after_seconds=180, widen_to=("support",)),
        ),
    )
    router = ready_router(agent(1, billing=3), agent(2, support=4), queues=(billing, SUPPORT))
    assert offers(router.enqueue(contact("b1", queue="billing"), now=0)) == []
    assert router.next_deadline() == 90
    at_90 = router.tick(now=90)
    assert offers(at_90) == [("b1", 1)]
    assert at_90[0].explanation["step"] == 1  # type: ignore[union-attr]
    router.accept("b1", 1, now=91)
    router.enqueue(contact("b2", queue="billing", at=100), now=100)
    assert offers(router.tick(now=279)) == []
    widened = router.tick(now=280)
    assert offers(widened) == [("b2", 2)]
    assert widened[0].explanation["widened_to"] == "support"  # type: ignore[union-attr]


def test_agent_becoming_free_takes_a_relaxed_contact() -> None:
    billing = QueueDef(
        "billing", ("voice",), {"billing": 5}, relaxation=(RelaxStep(60, {"billing": 2}),)
    )
    router = Router((billing,), POLICY)
    router.add_agent(agent(1, billing=3), now=0)
    router.enqueue(contact("b1", queue="billing"), now=0)
    assert offers(router.set_status(1, "ready", now=30)) == []  # step 0 needs 5
    assert offers(router.tick(now=60)) == [("b1", 1)]


def test_extra_skills_from_the_ivr_are_required() -> None:
    router = ready_router(agent(1, support=5), agent(2, support=5, spanish=6))
    decisions = router.enqueue(contact("c1", extra_skills={"spanish": 4}), now=3)
    assert offers(decisions) == [("c1", 2)]
    assert decisions[0].explanation["skills_matched"] == {"spanish": 6, "support": 5}  # type: ignore[union-attr]


def test_max_wait_actions_and_overflow_keeps_the_age() -> None:
    spanish = QueueDef(
        "spanish",
        ("voice",),
        {"spanish": 4},
        max_wait_seconds=600,
        on_max_wait="overflow",
        overflow_to="support",
    )
    vm = QueueDef("vm", ("voice",), {"sales": 1}, max_wait_seconds=60, on_max_wait="voicemail")
    router = Router((spanish, SUPPORT, vm), POLICY)
    router.add_agent(agent(1, support=5), now=0)
    router.enqueue(contact("s1", queue="spanish", at=0), now=0)
    router.enqueue(contact("v1", queue="vm", at=0), now=0)
    at_60 = router.tick(now=60)
    assert at_60 == [MaxWaitReached("v1", "vm", "voicemail", None, 60.0)]
    assert "v1" not in router.contacts
    at_600 = router.tick(now=600)
    assert at_600 == [MaxWaitReached("s1", "spanish", "overflow", "support", 600.0)]
    moved = router.contacts["s1"]
    assert (moved.queue, moved.enqueued_at, moved.overflowed_from) == ("support", 0, "spanish")
    offered = router.set_status(1, "ready", now=601)
    assert offers(offered) == [("s1", 1)]
    assert offered[0].explanation["overflowed_from"] == "spanish"  # type: ignore[union-attr]
    assert offered[0].explanation["wait_seconds"] == 601  # type: ignore[union-attr]


def test_abandon_while_offered_frees_the_agent_for_the_next() -> None:
    router = ready_router(agent(1, support=5))
    router.enqueue(contact("c1"), now=1)
    router.enqueue(contact("c2", at=2), now=2)
    assert offers(router.remove_contact("c1", now=5)) == [("c2", 1)]
    assert router.remove_contact("unknown", now=6) == []


def test_going_not_ready_withdraws_pending_offers() -> None:
    router = ready_router(agent(1, support=5), agent(2, support=5))
    router.enqueue(contact("c1"), now=5)
    decisions = router.set_status(1, "not_ready", now=6, reason="break")
    assert offers(decisions) == [("c1", 2)]
    assert router.agents[1].activity(6) == "idle"
    with pytest.raises(RoutingError, match="reason"):
        router.set_status(1, "not_ready", now=7)


def test_errors_name_what_is_wrong() -> None:
    router = ready_router(agent(1, support=5))
    with pytest.raises(RoutingError, match="no queue named 'nope'"):
        router.enqueue(contact("x", queue="nope"), now=1)
    with pytest.raises(RoutingError, match="takes voice, not chat"):
        router.enqueue(contact("x", channel="chat"), now=1)
    with pytest.raises(RoutingError, match="no agent 9"):
        router.set_status(9, "ready", now=1)
    router.enqueue(contact("x"), now=1)
    with pytest.raises(RoutingError, match=r"is queued"):
        router.enqueue(contact("x"), now=2)


def test_same_inputs_same_decisions() -> None:
    def run() -> list[Decision]:
        router = ready_router(agent(1, support=5), agent(2, support=7), agent(3, support=4))
        out: list[Decision] = []
        for i in range(6):
            out += router.enqueue(contact(f"c{i}", at=i), now=i)
        out += router.tick(now=25)
        return out

    assert run() == run()


def test_shipped_config_builds_a_router() -> None:
    config = load_config("config.yaml", {})
    router = Router(queues_from_config(config), policy_from_config(config, CHANNEL_SPECS))
    assert {"support", "billing", "chat"} <= set(router.queues)
    billing = router.queues["billing"]
    assert billing.relaxation[1].widen_to == ("support",)
    assert router.policy.capacity["chat"] == 3
    assert router.policy.blocks["voice"] == ("chat", "email", "sms")
