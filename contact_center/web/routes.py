"""The route table: every HTTP route declares which roles may call it.

`PUBLIC` routes need no login (liveness, metrics scrapes). A test walks the table
and fails on any route registered without a declaration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

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


ROLES_KEY = "cc_roles"


def add_routes(app: web.Application, specs: Iterable[RouteSpec]) -> None:
    """Register `specs` on `app`, keeping each route's roles on the route itself."""
    for spec in specs:
        if not spec.roles:
            raise ValueError(f"{spec.method} {spec.path}: no roles declared")
        resource_route = app.router.add_route(spec.method, spec.path, spec.handler)
        setattr(resource_route.handler, ROLES_KEY, spec.roles)


def declared_roles(route: web.AbstractRoute) -> frozenset[str] | None:
    """The roles declared for a registered route, or None when it has none."""
    return getattr(route.handler, ROLES_KEY, None)
