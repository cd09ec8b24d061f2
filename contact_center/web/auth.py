"""Login, logout and the middleware that enforces every route's declared roles.

A request to a route passes only when its role is declared for the route: no login
is 401 (a page redirects to the login page instead), a role not declared is 403,
and a state-changing request must carry the session's CSRF token in a header, which
a cross-site form cannot set.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contact_center.auth.sessions import COOKIE_NAME, CSRF_HEADER
from contact_center.keys import DAEMON
from contact_center.web.context import SESSION_KEY, current_session, transaction
from contact_center.web.errors import ApiError, read_body
from contact_center.web.routes import ANY_USER, PUBLIC, RouteSpec, declared_roles, route_spec
from crm_store import users

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Enforce the route's roles and, on state changes, the CSRF token."""
    route = request.match_info.route
    roles = declared_roles(route)
    if roles is None or roles == PUBLIC:
        # Unmatched paths (404/405) and public routes.
        return await handler(request)
    daemon = request.app[DAEMON]
    session = daemon.sessions.get(request.cookies.get(COOKIE_NAME), time.time())
    spec = route_spec(route)
    if session is None:
        if spec is not None and spec.page:
            raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
        raise ApiError(401, "auth.required", "log in first")
    if session.role not in roles:
        where = route.resource.canonical if route.resource is not None else request.path
        raise ApiError(403, "auth.forbidden", f"a {session.role} may not {request.method} {where}")
    if request.method not in SAFE_METHODS and not session.csrf_matches(
        request.headers.get(CSRF_HEADER)
    ):
        raise ApiError(403, "auth.csrf", f"missing or wrong {CSRF_HEADER} header")
    request[SESSION_KEY] = session
    return await handler(request)


class LoginBody(BaseModel):
    """Credentials for `POST /api/v1/auth/login`."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


async def login(request: web.Request) -> web.Response:
    """Check the password, open a session, set the cookie; rate-limited on failures."""
    daemon = request.app[DAEMON]
    body = await read_body(request, LoginBody)
    address = request.remote or "unknown"
    now = time.time()
    wait = daemon.login_limiter.retry_after(body.username, address, now)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "auth.rate_limited",
            f"too many failed logins; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    async with transaction(request) as db:
        user = await users.authenticate(db, body.username, body.password)
        if user is not None:
            user_id, username, display, role = (
                user.id,
                user.username,
                user.display_name,
                user.role,
            )
    if user is None:
        daemon.login_limiter.failed(body.username, address, now)
        log.info("failed login for %r from %s", body.username[:64], address)
        raise ApiError(401, "auth.invalid_credentials", "wrong username or password")
    daemon.login_limiter.succeeded(body.username)
    session = daemon.sessions.create(
        user_id=user_id, username=username, display_name=display, role=role, now=now
    )
    log.info("%s logged in from %s", username, address)
    response = web.json_response(session.public())
    response.set_cookie(
        COOKIE_NAME,
        session.token,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
        max_age=int(daemon.sessions.lifetime_seconds),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """End this browser's session."""
    session = current_session(request)
    daemon = request.app[DAEMON]
    daemon.sessions.revoke(session.token)
    if not any(s.user_id == session.user_id for s in daemon.sessions.live(time.time())):
        daemon.hub.end_user(session.user_id)
    response = web.json_response({"logged_out": True})
    response.del_cookie(COOKIE_NAME, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    """Who is logged in, with the CSRF token the page must send on changes."""
    return web.json_response(current_session(request).public())


ROUTES = [
    RouteSpec("POST", "/api/v1/auth/login", login, PUBLIC, "Log in", body=LoginBody),
    RouteSpec("POST", "/api/v1/auth/logout", logout, ANY_USER, "Log out"),
    RouteSpec("GET", "/api/v1/auth/me", me, ANY_USER, "The logged-in user and CSRF token"),
]
