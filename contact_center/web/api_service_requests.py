"""`/api/v1/service-requests`: create -> assign -> in progress -> feedback -> archived.

The store enforces the workflow and who may move a request; handlers only translate.
Who reads which request: `contact_center/web/access.py`. A request the user may not read
answers 404, for reads and moves alike, as one that does not exist.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contact_center.web import access
from contact_center.web.context import actor_of, transaction
from contact_center.web.errors import ApiError, path_int, query_int, read_body
from contact_center.web.routes import ANY_USER, SUPERVISORS, RouteSpec
from contact_center.web.serialize import service_request_json
from crm_store import service_requests as srs
from crm_store import users
from crm_store.models import ServiceRequest


class RequestCreate(BaseModel):
    """A new service request for a customer."""

    model_config = ConfigDict(extra="forbid")
    customer_id: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    interaction_id: int | None = Field(default=None, ge=1)


class Assign(BaseModel):
    """Give the request to an agent (a supervisor's move)."""

    model_config = ConfigDict(extra="forbid")
    assignee: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=2_000)


class Note(BaseModel):
    """An optional note on a transition."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2_000)


class Feedback(BaseModel):
    """The customer's satisfaction: 3 stars or more archives the request."""

    model_config = ConfigDict(extra="forbid")
    csat: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2_000)


def _full(sr: ServiceRequest) -> dict[str, object]:
    return service_request_json(sr, transitions=list(sr.transitions))


async def list_requests(request: web.Request) -> web.Response:
    """Requests by status/customer/`mine` (assigned to me), of those the user may read.

    An agent lists the requests assigned to or created by them, and with `customer_id`
    of a customer they are serving, all of that customer's.
    """
    actor = actor_of(request)
    limit = query_int(request, "limit", 100, high=500)
    statuses = [s for s in request.query.get("status", "").split(",") if s] or None
    customer = request.query.get("customer_id")
    customer_id = query_int(request, "customer_id", 0, high=2**62) if customer else None
    mine = request.query.get("mine") in ("1", "true")
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        served = customer_id is not None and await access.serves_customer(scope, db, customer_id)
        found = await srs.list_service_requests(
            db,
            customer_id=customer_id,
            assigned_to_id=actor.user_id if mine else None,
            involving_id=None if scope.everything or served else scope.user_id,
            statuses=statuses,
            limit=limit,
        )
        payload = [_full(sr) for sr in found]
    return web.json_response({"service_requests": payload})


async def create(request: web.Request) -> web.Response:
    """Open a request (status new)."""
    body = await read_body(request, RequestCreate)
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        if body.interaction_id is not None:
            # Linking names the interaction's customer in errors: only one the user reads.
            await access.readable_interaction(scope, db, body.interaction_id)
        sr = await srs.create_service_request(db, **body.model_dump(), actor=actor_of(request))
        sr = await srs.get_service_request(db, sr.id)
        payload = _full(sr)
    return web.json_response(payload, status=201)


async def read(request: web.Request) -> web.Response:
    """One request with its transitions, if the user may read it."""
    sr_id = path_int(request, "sr_id")
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        payload = _full(await access.readable_service_request(scope, db, sr_id))
    return web.json_response(payload)


async def assign(request: web.Request) -> web.Response:
    """Assign (or reassign) to an agent."""
    sr_id = path_int(request, "sr_id")
    body = await read_body(request, Assign)
    async with transaction(request) as db:
        assignee = await users.get_user_by_username(db, body.assignee)
        if assignee is None or not assignee.is_active:
            raise ApiError(404, "store.not_found", f"no active user {body.assignee!r}")
        sr = await srs.assign(db, sr_id, assignee.id, actor=actor_of(request), note=body.note)
        payload = _full(await srs.get_service_request(db, sr.id))
    return web.json_response(payload)


async def start(request: web.Request) -> web.Response:
    """The assignee starts working on it."""
    sr_id = path_int(request, "sr_id")
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        await access.readable_service_request(scope, db, sr_id)
        sr = await srs.start(db, sr_id, actor=actor_of(request))
        payload = _full(await srs.get_service_request(db, sr.id))
    return web.json_response(payload)


async def request_feedback(request: web.Request) -> web.Response:
    """Work done: ask the customer for feedback."""
    sr_id = path_int(request, "sr_id")
    body = await read_body(request, Note)
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        await access.readable_service_request(scope, db, sr_id)
        sr = await srs.request_feedback(db, sr_id, actor=actor_of(request), note=body.note)
        payload = _full(await srs.get_service_request(db, sr.id))
    return web.json_response(payload)


async def feedback(request: web.Request) -> web.Response:
    """Record the customer's CSAT: archived at 3+, back to a supervisor below."""
    sr_id = path_int(request, "sr_id")
    body = await read_body(request, Feedback)
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        await access.readable_service_request(scope, db, sr_id)
        sr = await srs.record_feedback(
            db, sr_id, body.csat, actor=actor_of(request), comment=body.comment
        )
        payload = _full(await srs.get_service_request(db, sr.id))
    return web.json_response(payload)


BASE = "/api/v1/service-requests"
ONE = BASE + "/{sr_id}"
ROUTES = [
    RouteSpec(
        "GET",
        BASE,
        list_requests,
        ANY_USER,
        "List service requests",
        query=("status", "customer_id", "mine", "limit"),
    ),
    RouteSpec(
        "POST", BASE, create, ANY_USER, "Create a service request", body=RequestCreate, status=201
    ),
    RouteSpec("GET", ONE, read, ANY_USER, "Read a service request"),
    RouteSpec("POST", ONE + "/assign", assign, SUPERVISORS, "Assign to an agent", body=Assign),
    RouteSpec("POST", ONE + "/start", start, ANY_USER, "Start work"),
    RouteSpec(
        "POST", ONE + "/request-feedback", request_feedback, ANY_USER, "Ask for feedback", body=Note
    ),
    RouteSpec("POST", ONE + "/feedback", feedback, ANY_USER, "Record CSAT", body=Feedback),
]
