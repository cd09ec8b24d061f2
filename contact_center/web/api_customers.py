"""`/api/v1/customers`: search, read, create, update, contact points, timeline."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contact_center.keys import DAEMON
from contact_center.web import access
from contact_center.web.context import actor_of, transaction
from contact_center.web.errors import ApiError, path_int, query_int, read_body
from contact_center.web.routes import ANY_USER, RouteSpec
from contact_center.web.serialize import (
    contact_point_json,
    customer_json,
    interaction_json,
    service_request_json,
)
from crm_store import customers, opt_outs, service_requests

Tier = Literal["bronze", "silver", "gold", "platinum"]


class CustomerCreate(BaseModel):
    """A new customer and the ways to reach them."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    tier: Tier = "bronze"
    language: str | None = Field(default=None, max_length=16)
    segment: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=10_000)
    phones: list[str] = Field(default=[], max_length=20)
    emails: list[str] = Field(default=[], max_length=20)
    chat_handles: list[str] = Field(default=[], max_length=20)


class CustomerUpdate(BaseModel):
    """Fields to change; absent fields are left alone."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    tier: Tier | None = None
    language: str | None = Field(default=None, max_length=16)
    segment: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=10_000)


class ContactPointCreate(BaseModel):
    """A phone number, email address or chat handle to add to a customer."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["phone", "email", "chat"]
    value: str = Field(min_length=1, max_length=320)
    label: str | None = Field(default=None, max_length=64)


def _region(request: web.Request) -> str:
    return request.app[DAEMON].config.database.default_region


async def search(request: web.Request) -> web.Response:
    """Customers matching `q` in name, company or any contact point (any phone format)."""
    limit = query_int(request, "limit", 20, high=200)
    async with transaction(request) as db:
        found = await customers.search_customers(
            db, request.query.get("q", ""), limit=limit, region=_region(request)
        )
        return web.json_response({"customers": [customer_json(c) for c in found]})


async def create(request: web.Request) -> web.Response:
    """Create a customer (from the screen pop of an unknown caller, for example)."""
    body = await read_body(request, CustomerCreate)
    async with transaction(request) as db:
        customer = await customers.create_customer(
            db, **body.model_dump(), region=_region(request), actor=actor_of(request)
        )
        customer = await customers.get_customer(db, customer.id)
        payload = customer_json(customer)
    return web.json_response(payload, status=201)


async def read(request: web.Request) -> web.Response:
    """One customer with contact points and the open service requests the user may read."""
    customer_id = path_int(request, "customer_id")
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        customer = await customers.get_customer(db, customer_id)
        open_requests = await service_requests.open_service_requests(db, customer_id)
        if not await access.serves_customer(scope, db, customer_id):
            open_requests = [
                sr for sr in open_requests if service_requests.may_read(scope.actor, sr)
            ]
        payload = customer_json(customer)
        payload["open_service_requests"] = [service_request_json(sr) for sr in open_requests]
        # Who asked not to be texted (SMS STOP): shown on the customer, honoured by senders.
        phones = [cp.value for cp in customer.contact_points if cp.kind == "phone"]
        stopped = await opt_outs.opted_out_among(db, "sms", phones)
        payload["opted_out"] = {"sms": sorted(stopped)}
    return web.json_response(payload)


async def update(request: web.Request) -> web.Response:
    """Change a customer's fields; only supervisors and admins change the loyalty tier."""
    customer_id = path_int(request, "customer_id")
    body = await read_body(request, CustomerUpdate)
    fields = body.model_dump(exclude_unset=True)
    actor = actor_of(request)
    if "tier" in fields and actor.role == "agent":
        raise ApiError(403, "auth.forbidden", "only a supervisor or an admin changes a tier")
    if fields.get("name", "") is None or fields.get("tier", "") is None:
        raise ApiError(400, "request.invalid", "name and tier cannot be emptied")
    async with transaction(request) as db:
        await customers.update_customer(db, customer_id, actor=actor, **fields)
        customer = await customers.get_customer(db, customer_id)
        payload = customer_json(customer)
    return web.json_response(payload)


async def add_contact(request: web.Request) -> web.Response:
    """Add a contact point; refused when it already belongs to someone."""
    customer_id = path_int(request, "customer_id")
    body = await read_body(request, ContactPointCreate)
    async with transaction(request) as db:
        cp = await customers.add_contact_point(
            db,
            customer_id,
            body.kind,
            body.value,
            region=_region(request),
            label=body.label,
            actor=actor_of(request),
        )
        payload = contact_point_json(cp)
    return web.json_response(payload, status=201)


async def remove_contact(request: web.Request) -> web.Response:
    """Remove a contact point from a customer."""
    customer_id = path_int(request, "customer_id")
    contact_id = path_int(request, "contact_id")
    async with transaction(request) as db:
        await customers.remove_contact_point(db, customer_id, contact_id, actor=actor_of(request))
    return web.json_response({"removed": contact_id})


async def timeline(request: web.Request) -> web.Response:
    """Interactions on every channel, newest first; page with `before=<last id>`.

    An agent not serving the customer (contact_center/web/access.py) gets only the
    interactions they handled.
    """
    customer_id = path_int(request, "customer_id")
    limit = query_int(request, "limit", 20, high=200)
    before = request.query.get("before")
    before_id = query_int(request, "before", 0, low=1, high=2**62) if before else None
    routing = request.app[DAEMON].routing
    if routing is not None:
        await routing.writer.flush()  # routing's latest times and outcomes are shown
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        served = await access.serves_customer(scope, db, customer_id)
        items = await customers.customer_timeline(
            db,
            customer_id,
            limit=limit,
            before_id=before_id,
            agent_id=None if served else scope.user_id,
        )
        payload = [interaction_json(ix) for ix in items]
    next_before = payload[-1]["id"] if len(payload) == limit else None
    return web.json_response({"interactions": payload, "next_before": next_before})


BASE = "/api/v1/customers"
ROUTES = [
    RouteSpec("GET", BASE, search, ANY_USER, "Search customers", query=("q", "limit")),
    RouteSpec("POST", BASE, create, ANY_USER, "Create a customer", body=CustomerCreate, status=201),
    RouteSpec("GET", BASE + "/{customer_id}", read, ANY_USER, "Read a customer"),
    RouteSpec(
        "PATCH", BASE + "/{customer_id}", update, ANY_USER, "Update a customer", body=CustomerUpdate
    ),
    RouteSpec(
        "POST",
        BASE + "/{customer_id}/contact-points",
        add_contact,
        ANY_USER,
        "Add a contact point",
        body=ContactPointCreate,
        status=201,
    ),
    RouteSpec(
        "DELETE",
        BASE + "/{customer_id}/contact-points/{contact_id}",
        remove_contact,
        ANY_USER,
        "Remove a contact point",
    ),
    RouteSpec(
        "GET",
        BASE + "/{customer_id}/timeline",
        timeline,
        ANY_USER,
        "A customer's interactions, newest first",
        query=("limit", "before"),
    ),
]
