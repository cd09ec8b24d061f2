"""`GET /api/v1/screen-pop`: the same pop an offer carries, on demand (search, refresh)."""

from __future__ import annotations

from aiohttp import web

from contact_center.keys import DAEMON
from contact_center.web import access
from contact_center.web.errors import ApiError, query_int
from contact_center.web.routes import ANY_USER, RouteSpec


async def screen_pop(request: web.Request) -> web.Response:
    """The pop by `phone` (any format), `email` or `customer_id`."""
    reader = request.app[DAEMON].screen_pops
    if reader is None:
        raise ApiError(503, "database.unavailable", "the CRM store is not open")
    limit = query_int(request, "limit", 20, low=0, high=200)
    query = request.query
    if "phone" in query:
        pop = await reader.by_phone(query["phone"], limit=limit)
    elif "email" in query:
        pop = await reader.by_email(query["email"], limit=limit)
    elif "customer_id" in query:
        pop = await reader.by_customer_id(
            query_int(request, "customer_id", 0, high=2**62), limit=limit
        )
    else:
        raise ApiError(400, "request.query", "give one of phone, email or customer_id")
    # What an agent may read of it: contact_center/web/access.py.
    return web.json_response(await access.screen_pop_for(request, pop.to_json()))


ROUTES = [
    RouteSpec(
        "GET",
        "/api/v1/screen-pop",
        screen_pop,
        ANY_USER,
        "Screen pop by phone, email or customer id",
        query=("phone", "email", "customer_id", "limit"),
    )
]
