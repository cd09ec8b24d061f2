"""More of the router's rules: relaxation kinds, wrap-up and idle time, time in state,
late ticks, capacity spreading, offers and max-wait actions, the configuration builder."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.channels import CHANNEL_SPECS
from contact_center.config import load_config
from routing.definitions import policy_from_config, queues_from_config
from routing.model import (
    Agent,
    Contact,
    MaxWaitReached,
    Offer,
    OfferExpired,
    Policy,
    QueueDef,
    RelaxStep,
    WrapUpEnded,
)
from routing.router import Router
from tests.unit.router_support import CHAT, POLICY, SUPPORT, agent, contact, offers


def the_offer(decisions: list[Any]) -> Offer:
    """The one offer among `decisions`."""
    found = [d for d in decisions if isinstance(d, Offer)]
    assert len(found) == 1, decisions
    return found[0]


def make(
    *agents: Agent, queues: tuple[QueueDef, ...] = (SUPPORT,), policy: Policy = POLICY
) -> Router:
    router = Router(queues, policy)
    for i, a in enumerate(agents):
        router.add_agent(a, now=0)
        router.set_status(a.id, "ready", now=float(i))  # the first agent is longest idle
    return router


def test_relaxation_drops_a_skill() -> None:
    queue = QueueDef(
        "vip",
        ("voice",),
        {"support": 3, "french": 5},
        relaxation=(RelaxStep(after_seconds=30, drop_skills=("french",)),),
    )
    router = make(agent(1, support=4), queues=(queue,))
    assert offers(router.enqueue(contact("c1", queue="vip"), now=0)) == []
    at_30 = router.tick(now=30)
    assert offers(at_30) == [("c1", 1)]
    assert the_offer(at_30).explanation["required"] == {"support": 3}
    assert the_offer(at_30).explanation["step"] == 1


def test_a_freed_agent_takes_a_contact_through_a_widened_queue() -> None:
    billing = QueueDef(
        "billing", ("voice",), {"billing": 5}, relaxation=(RelaxStep(60, widen_to=("support",)),)
    )
    router = Router((billing, SUPPORT), POLICY)
    router.add_agent(agent(1, support=4), now=0)
    router.enqueue(contact("b1", queue="billing"), now=0)
    router.tick(now=60)  # widened, but nobody is ready
    decisions = router.set_status(1, "ready", now=70)
    assert offers(decisions) == [("b1", 1)]
    assert the_offer(decisions).explanation["widened_to"] == "support"
    assert the_offer(decisions).explanation["skills_matched"] == {"support": 4}
    # Before the step, the support agent is not a candidate.
    router2 = Router((billing, SUPPORT), POLICY)
    router2.add_agent(agent(1, support=4), now=0)
    router2.enqueue(contact("b1", queue="billing"), now=0)
    assert offers(router2.set_status(1, "ready", now=59)) == []


def test_relaxation_never_makes_an_agent_wait_for_a_contact_they_already_qualify_for() -> None:
    queue = QueueDef("q", ("voice",), {"support": 5}, relaxation=(RelaxStep(60, {"support": 1}),))
    router = make(agent(1, support=2), agent(2, support=7), queues=(queue,))
    # Agent 2 qualifies at step 0, agent 1 only at step 1: agent 2 gets it although
    # agent 1 has been idle longer.
    assert offers(router.enqueue(contact("c1", queue="q"), now=5)) == [("c1", 2)]


def test_wrap_up_timer_blocks_work_and_idle_time_counts_from_its_end() -> None:
    router = make(agent(1, support=5), agent(2, support=5))
    router.enqueue(contact("c1"), now=100)  # to agent 1, longest idle
    router.accept("c1", 1, now=101)
    router.end_contact("c1", 1, now=110)  # wrap-up until 140
    a1 = router.agents[1]
    assert a1.activity(120) == "wrap_up"
    assert a1.can_take("voice", POLICY, 139.9) is False
    assert router.tick(now=140)[0] == WrapUpEnded(1)
    assert (a1.idle_since, a1.activity_since) == (140, 140)
    # Agent 2 has been idle since 1: still longer than agent 1 (idle since 140).
    assert offers(router.enqueue(contact("c2", at=150), now=150)) == [("c2", 2)]


def test_a_late_tick_is_caught_up_by_the_next_call() -> None:
    router = make(agent(1, support=5))
    router.enqueue(contact("c1"), now=1)
    router.accept("c1", 1, now=2)
    router.end_contact("c1", 1, now=10)  # wrap-up until 40, nobody ticks
    decisions = router.enqueue(contact("c2", at=50), now=50)
    assert decisions[0] == WrapUpEnded(1)
    assert offers(decisions) == [("c2", 1)]


def test_time_in_status_and_activity_are_kept_apart() -> None:
    router = make(agent(1, support=5))
    a1 = router.agents[1]
    assert (a1.status, a1.activity(0)) == ("ready", "idle")
    router.enqueue(contact("c1"), now=10)
    assert (a1.activity(10), a1.time_in_activity(15), a1.time_in_status(15)) == (
        "offered",
        5,
        15,
    )
    router.accept("c1", 1, now=12)
    router.set_status(1, "not_ready", now=20, reason="meeting")  # on a call, not ready
    assert (a1.status, a1.reason, a1.activity(21)) == ("not_ready", "meeting", "on_contact")
    assert (a1.time_in_status(25), a1.time_in_activity(25)) == (5, 13)
    router.end_contact("c1", 1, now=30)
    assert a1.activity(31) == "wrap_up" and a1.time_in_activity(31) == 1
    # The timer ran out without a tick: idle from the moment it ran out.
    assert a1.activity(70) == "idle" and a1.time_in_activity(70) == 10


def test_chats_spread_over_agents_and_capacity_is_per_channel() -> None:
    router = make(agent(1, support=5), agent(2, support=5), queues=(SUPPORT, CHAT))
    got = []
    for i in range(6):
        got += offers(router.enqueue(contact(f"t{i}", "chat", "chat", at=i), now=10 + i))
    # Fewest chats first, then longest idle: 1, 2, 1, 2, 1, 2.
    assert [a for _c, a in got] == [1, 2, 1, 2, 1, 2]
    assert offers(router.enqueue(contact("t6", "chat", "chat", at=6), now=16)) == []
    # Chat does not block voice in this policy: the voice call is offered on top.
    assert offers(router.enqueue(contact("v1", at=17), now=17)) == [("v1", 1)]


def test_a_chat_blocking_rule_both_ways() -> None:
    policy = Policy(
        capacity={"voice": 1, "chat": 3, "email": 5, "sms": 3},
        blocks={"voice": ("chat",), "chat": ("voice",)},
        wrap_up_seconds=0,
    )
    router = make(agent(1, support=5), queues=(SUPPORT, CHAT), policy=policy)
    router.enqueue(contact("t1", "chat", "chat"), now=1)
    assert offers(router.enqueue(contact("v1", at=2), now=2)) == []  # blocked by the chat
    router.accept("t1", 1, now=3)
    # The chat ends (no wrap-up in this policy): the waiting call is offered at once.
    assert offers(router.end_contact("t1", 1, now=4)) == [("v1", 1)]


def test_exactly_one_offer_per_contact_while_others_become_free() -> None:
    router = make(agent(1, support=5))
    router.enqueue(contact("c1"), now=1)
    router.add_agent(agent(2, support=9), now=2)
    assert offers(router.set_status(2, "ready", now=2)) == []  # c1 is already offered
    assert router.offers["c1"].agent_id == 1
    decisions = router.tick(now=21)  # agent 1 did not answer: agent 2 gets it
    assert decisions[0] == OfferExpired("c1", 1, agent_set_not_ready=False)
    assert offers(decisions) == [("c1", 2)]
    assert router.agents[1].offered == {}


def test_missed_offers_count_in_a_row_and_answering_resets_them() -> None:
    router = make(agent(1, support=5))
    router.enqueue(contact("c1"), now=0)
    router.tick(now=20)  # miss 1
    router.set_status(1, "ready", now=21)  # already ready: no change, c1 not re-offered
    assert router.agents[1].missed_in_row == 1
    router.enqueue(contact("c2", at=22), now=22)
    router.accept("c2", 1, now=23)  # answering resets the count
    assert router.agents[1].missed_in_row == 0


def test_never_not_ready_when_the_limit_is_zero() -> None:
    policy = Policy(capacity={"voice": 1}, blocks={}, wrap_up_seconds=0, not_ready_after_missed=0)
    router = make(agent(1, support=5), policy=policy)
    for i in range(3):
        router.enqueue(contact(f"c{i}", at=i * 30), now=i * 30)
        router.tick(now=i * 30 + 20)
    assert router.agents[1].status == "ready"


def test_max_wait_callback_and_disconnect_are_decisions() -> None:
    cb = QueueDef("cb", ("voice",), {"x": 1}, max_wait_seconds=100, on_max_wait="callback")
    dc = QueueDef("dc", ("voice",), {"x": 1}, max_wait_seconds=50, on_max_wait="disconnect")
    router = Router((cb, dc), POLICY)
    router.enqueue(contact("a", queue="cb"), now=0)
    router.enqueue(contact("b", queue="dc"), now=0)
    assert router.next_deadline() == 50
    assert router.tick(now=100) == [
        MaxWaitReached("b", "dc", "disconnect", None, 100.0),
        MaxWaitReached("a", "cb", "callback", None, 100.0),
    ]
    assert router.contacts == {} and router.waiting("cb") == []


def test_max_wait_during_an_offer_waits_for_the_offer_to_end() -> None:
    q = QueueDef("q", ("voice",), {"x": 1}, offer_timeout_seconds=20, max_wait_seconds=30)
    router = make(agent(1, x=1), queues=(q,))
    router.enqueue(contact("c", queue="q"), now=15)  # offered, expires at 35
    assert router.tick(now=40) == [OfferExpired("c", 1, False)]
    assert router.next_deadline() == 45
    assert router.tick(now=45) == [MaxWaitReached("c", "q", "voicemail", None, 30.0)]


def test_queued_counts_offered_contacts_and_removal_of_a_waiting_one() -> None:
    router = make(agent(1, support=5))
    router.enqueue(contact("c1"), now=1)
    router.enqueue(contact("c2", at=2), now=2)
    assert [c.id for c in router.queued("support")] == ["c1", "c2"]
    assert [c.id for c in router.waiting("support")] == ["c2"]
    assert router.remove_contact("c2", now=3) == []
    assert [c.id for c in router.queued("support")] == ["c1"]


def test_new_skills_bring_a_waiting_contact() -> None:
    router = make(agent(1, sales=5))
    router.enqueue(contact("c1"), now=1)
    assert router.queues_for_agent(1) == []
    assert offers(router.update_skills(1, {"support": 4}, now=2)) == [("c1", 1)]
    assert router.queues_for_agent(1) == ["support"]


def test_going_offline_keeps_contacts_in_hand() -> None:
    router = make(agent(1, support=5))
    router.enqueue(contact("c1"), now=1)
    router.accept("c1", 1, now=2)
    router.set_status(1, "offline", now=3)
    assert router.agents[1].active == {"c1": "voice"}
    assert router.end_contact("c1", 1, now=4) == []


def test_shipped_config_builds_every_queue_and_the_policy() -> None:
    config = load_config("config.yaml", {})
    queues = {q.name: q for q in queues_from_config(config)}
    policy = policy_from_config(config, CHANNEL_SPECS)
    assert set(queues) == {q.name for q in config.queues}
    support, billing, spanish = queues["support"], queues["billing"], queues["spanish"]
    assert (support.skills, support.sla_seconds, support.offer_timeout_seconds) == (
        {"support": 3},
        20,
        20,
    )
    assert (support.max_wait_seconds, support.on_max_wait, support.strategy) == (
        600,
        "voicemail",
        "longest_idle",
    )
    assert support.relaxation == (RelaxStep(60, {"support": 1}),)
    assert billing.on_max_wait == "callback"
    assert billing.relaxation == (
        RelaxStep(90, {"billing": 2}),
        RelaxStep(180, widen_to=("support",)),
    )
    assert billing.requirements(2) == ({"billing": 2}, ("support",))
    assert (spanish.channels, spanish.on_max_wait, spanish.overflow_to) == (
        ("voice", "chat"),
        "overflow",
        "support",
    )
    assert dict(policy.capacity) == {"voice": 1, "chat": 3, "email": 5, "sms": 3}
    assert dict(policy.blocks) == {"voice": ("chat", "email", "sms")}
    assert (policy.wrap_up_seconds, policy.not_ready_after_missed) == (30, 1)
    assert policy.missed_reason in config.routing.reason_codes
    assert dict(policy.tier_priority) == {"bronze": 0, "silver": 1, "gold": 2, "platinum": 3}
    # And the router built from it routes.
    router = Router(queues.values(), policy)
    router.add_agent(Agent(1, "ann", {"spanish": 5}, dict(policy.capacity)), now=0)
    router.set_status(1, "ready", now=0)
    got = router.enqueue(Contact("s1", "chat", "spanish", enqueued_at=1), now=1)
    assert offers(got) == [("s1", 1)]


@pytest.mark.parametrize("strategy", ["longest_idle", "most_skilled"])
def test_ties_fall_to_the_lowest_agent_id(strategy: str) -> None:
    queue = QueueDef("q", ("voice",), {"support": 1}, strategy=strategy)  # type: ignore[arg-type]
    for order in ((3, 1, 2), (2, 3, 1)):
        router = Router((queue,), POLICY)
        for agent_id in order:
            router.add_agent(agent(agent_id, support=5), now=0)
            router.set_status(agent_id, "ready", now=0)
        assert offers(router.enqueue(contact("c", queue="q"), now=1)) == [("c", 1)]
