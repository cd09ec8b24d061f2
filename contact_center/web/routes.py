"""The route table: every HTTP route declares which roles may call it.

`PUBLIC` routes need no login (liveness, metrics scrapes, the login itself). A test
walks the table and fails on any route registered without a declaration; the same
specs produce the OpenAPI document, so the document cannot drift from the routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC: frozenset[str] = frozenset({"public"})
ANY_USER: frozenset[str] = frozenset({"agent", "supervisor", "admin"})
SUPERVISORS: frozenset[str] = frozenset({"supervisor", "admin"})
ADMINS: frozenset[str] = frozenset({"admin"})


@dataclass(frozen=True)
class RouteSpec:
    """One HTTP route with the roles allowed to call it."""

    method: str
    path: str
    handler: Handler
    roles: frozenset[str]
    summary: str
    body: type[BaseModel] | None = None
    query: tuple[str, ...] = ()
    status: int = 200
    page: bool = False  # an HTML page: not logged in means "go to the login page", not 401


ROLES_KEY = "cc_roles"
SPEC_KEY = "cc_spec"
ROUTE_SPECS: web.AppKey[list[RouteSpec]] = web.AppKey("route_specs", list)


def add_routes(app: web.Application, specs: Iterable[RouteSpec]) -> None:
    """Register `specs` on `app`, keeping each route's roles on the route itself."""
    if ROUTE_SPECS not in app:
        app[ROUTE_SPECS] = []
    registry = app[ROUTE_SPECS]
    for spec in specs:
        if not spec.roles:
            raise ValueError(f"{spec.method} {spec.path}: no roles declared")
        resource_route = app.router.add_route(spec.method, spec.path, spec.handler)
        setattr(resource_route.handler, ROLES_KEY, spec.roles)
        setattr(resource_route.handler, SPEC_KEY, spec)
        registry.append(spec)


def declared_roles(route: web.AbstractRoute) -> frozenset[str] | None:
    """The roles declared for a registered route, or None when it has none."""
    return getattr(route.handler, ROLES_KEY, None)


def route_spec(route: web.AbstractRoute) -> RouteSpec | None:
    """The spec a registered route was made from, or None."""
    return getattr(route.handler, SPEC_KEY, None)
