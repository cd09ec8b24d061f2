"""Shared pieces of the router's unit tests: a floor policy, queues, agents, contacts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routing.model import Agent, Contact, Offer, Policy, QueueDef
from routing.router import Router

POLICY = Policy(
    capacity={"voice": 1, "chat": 3, "email": 5, "sms": 3},
    blocks={"voice": ("chat", "email", "sms")},
    wrap_up_seconds=30,
    not_ready_after_missed=2,
)
SUPPORT = QueueDef("support", ("voice",), {"support": 3}, offer_timeout_seconds=20)
CHAT = QueueDef("chat", ("chat",), {"support": 1}, offer_timeout_seconds=10)


def agent(agent_id: int, **skills: int) -> Agent:
    """An agent with the policy's capacities."""
    return Agent(agent_id, f"agent{agent_id}", dict(skills), dict(POLICY.capacity))


def contact(cid: str, queue: str = "support", channel: str = "voice", **kw: Any) -> Contact:
    """A contact; `at` is its enqueue time."""
    return Contact(cid, channel, queue, enqueued_at=kw.pop("at", 0.0), **kw)  # type: ignore[arg-type]


def offers(decisions: Sequence[object]) -> list[tuple[str, int]]:
    """(contact, agent) of each offer among `decisions`."""
    return [(d.contact_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


def ready_router(
    *agents: Agent, queues: tuple[QueueDef, ...] = (SUPPORT,), policy: Policy = POLICY
) -> Router:
    """A router with the agents ready, the first one idle the longest."""
    router = Router(queues, policy)
    for i, a in enumerate(agents):
        router.add_agent(a, now=0)
        router.set_status(a.id, "ready", now=float(i))
    return router
