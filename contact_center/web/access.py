"""Who may read which interactions and service requests (issue 13): one place, every route.

Supervisors and admins read everything. An agent reads:

- an interaction they handled, or one offered to them right now;
- a service request assigned to them or created by them;
- everything of a customer they are serving: a contact of that customer offered to or
  handled by them right now, or one they handled that ended less than
  `crm_store.interactions.SERVING_WINDOW` (12 hours) ago. That is the history the screen
  pop already shows when the phone rings, kept for the follow-up work after the call.

A single read of something the agent may not read answers 404 `store.not_found`, exactly
as for an id that does not exist, so ids cannot be probed; a list leaves out what the
agent may not read. Customer records themselves (search, name, contact points) stay
readable by every user: agents find and identify callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.keys import DAEMON
from contact_center.web.context import actor_of, transaction
from crm_store import interactions
from crm_store import service_requests as srs
from crm_store.actors import Actor
from crm_store.errors import NotFound
from crm_store.models import Interaction, ServiceRequest

MANAGERS = frozenset(srs.MANAGER_ROLES)


@dataclass(frozen=True)
class ReadScope:
    """The acting user and what routing knows they hold right now."""

    actor: Actor
    live_interactions: frozenset[int]
    live_customers: frozenset[int]

    @property
    def everything(self) -> bool:
        """Supervisors and admins read all."""
        return self.actor.role in MANAGERS

    @property
    def user_id(self) -> int:
        """The acting user's id (-1 for none: matches no row)."""
        return -1 if self.actor.user_id is None else self.actor.user_id


async def read_scope(request: web.Request) -> ReadScope:
    """The scope of the request's user; routing's pending writes are stored first."""
    actor = actor_of(request)
    routing = request.app[DAEMON].routing
    if actor.role in MANAGERS or routing is None:
        return ReadScope(actor, frozenset(), frozenset())
    # Who answered is written behind by routing: store it before the checks read it.
    await routing.writer.flush()
    held = [
        info
        for info in routing.contacts.values()
        if info.agent_id == actor.user_id and info.state != "closed"
    ]
    return ReadScope(
        actor,
        frozenset(info.interaction_id for info in held),
        frozenset(info.customer_id for info in held if info.customer_id is not None),
    )


async def serves_customer(scope: ReadScope, db: AsyncSession, customer_id: int | None) -> bool:
    """Whether the user reads everything of this customer (their history, all requests)."""
    if scope.everything:
        return True
    if customer_id is None:
        return False
    if customer_id in scope.live_customers:
        return True
    return await interactions.agent_serves_customer(db, scope.user_id, customer_id)


async def may_read_interaction(scope: ReadScope, db: AsyncSession, ix: Interaction) -> bool:
    """The rule for one interaction."""
    if scope.everything or ix.agent_id == scope.user_id or ix.id in scope.live_interactions:
        return True
    return await serves_customer(scope, db, ix.customer_id)


async def may_read_service_request(scope: ReadScope, db: AsyncSession, sr: ServiceRequest) -> bool:
    """The rule for one service request."""
    return srs.may_read(scope.actor, sr) or await serves_customer(scope, db, sr.customer_id)


async def readable_interaction(
    scope: ReadScope, db: AsyncSession, interaction_id: int
) -> Interaction:
    """The interaction if the user may read it; NotFound (404) otherwise, as if absent."""
    ix = await interactions.get_interaction(db, interaction_id)
    if not await may_read_interaction(scope, db, ix):
        raise NotFound(f"no interaction with id {interaction_id}")
    return ix


async def readable_service_request(
    scope: ReadScope, db: AsyncSession, sr_id: int
) -> ServiceRequest:
    """The request if the user may read it; NotFound (404) otherwise, as if absent."""
    sr = await srs.get_service_request(db, sr_id)
    if not await may_read_service_request(scope, db, sr):
        raise NotFound(f"no service request with id {sr_id}")
    return sr


async def screen_pop_for(request: web.Request, pop: dict[str, Any]) -> dict[str, Any]:
    """A screen pop (as JSON) cut down to what the user may read.

    Any user may pop any customer (search, then open: the customer card); for an agent not
    serving that customer the timeline keeps only the contacts they handled, and the open
    requests only theirs (assigned to or created by them).
    """
    customer = pop.get("customer")
    scope = await read_scope(request)
    if scope.everything or customer is None:
        return pop
    customer_id = int(customer["id"])
    async with transaction(request) as db:
        if await serves_customer(scope, db, customer_id):
            return pop
        created = await srs.created_by(db, customer_id, scope.user_id)
    return {
        **pop,
        "interactions": [i for i in pop["interactions"] if i.get("agent_id") == scope.user_id],
        "open_requests": [
            r
            for r in pop["open_requests"]
            if r.get("assigned_to_id") == scope.user_id or r.get("id") in created
        ],
    }
