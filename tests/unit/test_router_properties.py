"""Properties of the router under random sequences of operations (hypothesis).

After every step: no agent is over capacity or breaks a cross-channel block, no contact
is offered twice at once, the indexes agree with the plain data, and the router is work
conserving: no waiting contact could be given to an agent able to take it right now.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.model import CHANNELS, Agent, Contact, Policy, QueueDef, RelaxStep
from routing.router import Router, RoutingError, _meets

POLICY = Policy(
    capacity={"voice": 1, "chat": 2, "email": 3, "sms": 2},
    blocks={"voice": ("chat", "email", "sms")},
    wrap_up_seconds=5,
    not_ready_after_missed=2,
)
QUEUES = (
    QueueDef(
        "v",
        ("voice",),
        {"a": 3},
        offer_timeout_seconds=4,
        max_wait_seconds=40,
        relaxation=(RelaxStep(6, {"a": 1}), RelaxStep(12, widen_to=("c",))),
    ),
    QueueDef("c", ("chat", "sms"), {"b": 2}, offer_timeout_seconds=3, strategy="most_skilled"),
    QueueDef(
        "e",
        ("email",),
        {},
        offer_timeout_seconds=10,
        max_wait_seconds=30,
        on_max_wait="overflow",
        overflow_to="c2",
    ),
    QueueDef("c2", ("email", "chat"), {"b": 1}),
)

op = st.one_of(
    st.tuples(
        st.just("enqueue"),
        st.sampled_from(QUEUES),
        st.integers(0, 3),
        st.sampled_from(["", "a", "b"]),
    ),
    st.tuples(
        st.just("status"), st.integers(1, 5), st.sampled_from(["ready", "not_ready", "offline"])
    ),
    st.tuples(st.just("accept"), st.integers(0, 30)),
    st.tuples(st.just("reject"), st.integers(0, 30)),
    st.tuples(st.just("end"), st.integers(1, 5)),
    st.tuples(st.just("abandon"), st.integers(0, 30)),
    st.tuples(st.just("wrap"), st.integers(1, 5)),
    st.tuples(st.just("advance"), st.floats(0.1, 8)),
)


def holdings(router: Router) -> dict[int, dict[str, str]]:
    """Contact -> channel held (active or offered) by each agent."""
    return {a.id: {**a.active, **a.offered} for a in router.agents.values()}


def check(router: Router, now: float, before: dict[int, dict[str, str]]) -> None:
    offered_ids = set(router.offers)
    seen: set[str] = set()
    for agent in router.agents.values():
        for channel in CHANNELS:
            assert agent.load(channel) <= POLICY.capacity[channel], (agent, channel)
        # A new offer never lands on a channel blocked by work the agent held before and
        # still holds (work released by the same operation no longer blocks).
        now_held = {**agent.active, **agent.offered}
        held_before = {
            channel for cid, channel in before.get(agent.id, {}).items() if cid in now_held
        }
        for cid, channel in agent.offered.items():
            if cid not in before.get(agent.id, {}):
                for key in held_before:
                    if key != channel:
                        assert channel not in POLICY.blocks.get(key, ()), (agent.id, cid)
        for cid in agent.offered:
            assert cid not in seen, f"{cid} offered twice"
            seen.add(cid)
            assert router.offers[cid].agent_id == agent.id
        if agent.status != "ready":
            assert not agent.offered
    assert seen == offered_ids
    for queue in router.queues.values():
        waiting = router.waiting(queue.name)
        assert [c.sort_key() for c in waiting] == sorted(c.sort_key() for c in waiting)
        for contact in waiting:
            assert contact.offered_to is None and contact.id not in router.offers
            step = queue.step_at(now - contact.queue_entered_at)
            levels, widened = queue.requirements(step)
            for agent in router.agents.values():
                if agent.id in contact.declined_by:
                    continue
                if not agent.can_take(contact.channel, POLICY, now):
                    continue
                qualified = _meets(agent.skills, levels) or any(
                    _meets(agent.skills, router.queues[w].skills) for w in widened
                )
                if qualified and _meets(agent.skills, contact.extra_skills):
                    raise AssertionError(f"{contact.id} waits while agent {agent.id} could take it")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    skills=st.lists(
        st.fixed_dictionaries({"a": st.integers(0, 5), "b": st.integers(0, 5)}),
        min_size=5,
        max_size=5,
    ),
    ops=st.lists(op, max_size=60),
)
def test_invariants_hold_under_any_sequence(skills: list[dict[str, int]], ops: list[tuple]) -> None:  # type: ignore[type-arg]
    router = Router(QUEUES, POLICY)
    now = 0.0
    for i, s in enumerate(skills, start=1):
        router.add_agent(Agent(i, f"a{i}", s, dict(POLICY.capacity)), now)
    serial = 0
    for operation in ops:
        kind = operation[0]
        before = holdings(router)
        try:
            if kind == "enqueue":
                _, queue, priority, extra = operation
                serial += 1
                router.enqueue(
                    Contact(
                        f"k{serial}",
                        queue.channels[serial % len(queue.channels)],
                        queue.name,
                        enqueued_at=now,
                        priority=priority,
                        extra_skills={extra: 1} if extra else {},
                    ),
                    now,
                )
            elif kind == "status":
                _, agent_id, status = operation
                router.set_status(agent_id, status, now, reason="break")
            elif kind in ("accept", "reject", "abandon"):
                ids = sorted(router.offers) if kind != "abandon" else sorted(router.contacts)
                if ids:
                    cid = ids[operation[1] % len(ids)]
                    if kind == "abandon":
                        router.remove_contact(cid, now)
                    else:
                        agent_id = router.offers[cid].agent_id
                        if kind == "accept":
                            router.accept(cid, agent_id, now)
                        else:
                            router.reject(cid, agent_id, now)
            elif kind == "end":
                agent = router.agents[operation[1]]
                if agent.active:
                    router.end_contact(sorted(agent.active)[0], agent.id, now)
            elif kind == "wrap":
                router.finish_wrap_up(operation[1], now)
            elif kind == "advance":
                now += operation[1]
                router.tick(now)
        except RoutingError:
            pass
        check(router, now, before)
