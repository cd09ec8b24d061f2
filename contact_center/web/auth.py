"""Login, logout and the middleware that enforces every route's declared roles.

A request to a route passes only when its role is declared for the route: no login
is 401 (a page redirects to the login page instead), a role not declared is 403,
and a state-changing request must carry the session's CSRF token in a header, which
a cross-site form cannot set.

A login holds a database connection only to read the user: the password hash is checked
afterwards on the login gate's own threads (`contact_center/auth/passwords.py`), so a
flood of logins can neither starve the connection pool nor the loop's executor.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contact_center.auth.passwords import RETRY_AFTER_SECONDS
from contact_center.auth.sessions import COOKIE_NAME, CSRF_HEADER
from contact_center.keys import DAEMON
from contact_center.web.context import SESSION_KEY, current_session, transaction
from contact_center.web.errors import ApiError, read_body
from contact_center.web.routes import ANY_USER, PUBLIC, RouteSpec, declared_roles, route_spec
from crm_store import users
from crm_store.errors import StoreError

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where a login may send the browser: one leading "/" then printable ASCII with no "\\".
# Browsers read "\\" as "/" and drop tabs and newlines, so "/\\evil" and "/<TAB>/evil" are
# "//evil", another site; a second "/" or "\\" first is refused for the same reason.
_SAFE_NEXT = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")
MAX_NEXT_LENGTH = 2000
HOME_PAGES = {"agent": "/desktop"}
DEFAULT_HOME = "/wallboard"


def safe_next(target: object) -> str | None:
    """`target` if it is a path on this site (no scheme, host, backslash or control
    character), else None."""
    if not isinstance(target, str) or len(target) > MAX_NEXT_LENGTH:
        return None
    return target if _SAFE_NEXT.fullmatch(target) else None


def home_page(role: str) -> str:
    """The page a user of `role` starts on."""
    return HOME_PAGES.get(role, DEFAULT_HOME)


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
    # A store outage here is a 503 (error_middleware), like any other read.
    session = await daemon.sessions.get(request.cookies.get(COOKIE_NAME), time.time())
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
    # The page the login form was sent to (`/login?next=...`); the answer's `next` is it
    # when it is a path on this site, else the user's home page.
    next: str | None = Field(default=None, max_length=MAX_NEXT_LENGTH)


async def _check(request: web.Request, body: LoginBody) -> users.LoginRecord | None:
    """The user when the password is theirs (and they are active), else None."""
    daemon = request.app[DAEMON]
    gate = daemon.login_gate
    # A short read, then the connection goes back to the pool before the slow hash.
    async with transaction(request) as db:
        record = await users.find_login(db, body.username)
    stored = record.password_hash if record is not None else None
    if not await gate.run(users.verify_password, stored, body.password):
        return None
    if record is None or not record.is_active:
        return None
    if users.needs_rehash(record.password_hash):
        fresh = await gate.run(users.new_hash, body.password)
        try:
            async with transaction(request) as db:
                await users.store_rehash(db, record.id, record.password_hash, fresh)
        except StoreError as exc:
            # The login stands; the old hash still works and is upgraded next time.
            log.warning("could not upgrade the password hash of %s: %s", record.username, exc)
    return record


async def login(request: web.Request) -> web.Response:
    """Check the password, open a session, set the cookie; rate-limited on failures.

    The attempt is counted against the limits before its hash is checked (refunded when
    good), and only a bounded number of logins are checked at once: past that, 503.
    """
    daemon = request.app[DAEMON]
    body = await read_body(request, LoginBody)
    address = request.remote or "unknown"
    now = time.time()
    limiter = daemon.login_limiter
    wait = limiter.reserve(body.username, address, now)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "auth.rate_limited",
            f"too many failed logins; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    gate = daemon.login_gate
    if not gate.try_enter():
        limiter.refund(body.username, address, now)
        if gate.refused % 100 == 1:  # a flood would otherwise flood the log too
            log.warning(
                "login refused: %d logins in flight (%d refused so far)",
                gate.in_flight,
                gate.refused,
            )
        raise ApiError(
            503,
            "auth.busy",
            "too many logins at once; try again in a moment",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    try:
        record = await _check(request, body)
    except Exception:
        # Not checked to the end (database down): not a failed password. A cancelled
        # login is not refunded: its hash may still run.
        limiter.refund(body.username, address, now)
        raise
    finally:
        gate.leave()
    if record is None:
        log.info("failed login for %r from %s", body.username[:64], address)
        raise ApiError(401, "auth.invalid_credentials", "wrong username or password")
    limiter.succeeded(body.username, address, now)
    session = await daemon.sessions.create(
        user_id=record.id,
        username=record.username,
        display_name=record.display_name,
        role=record.role,
        now=now,
        valid_after=record.sessions_valid_after,
    )
    log.info("%s logged in from %s", record.username, address)
    response = web.json_response(
        {**session.public(), "next": safe_next(body.next) or home_page(record.role)}
    )
    response.set_cookie(
        COOKIE_NAME,
        session.token,
        httponly=True,
        samesite="Lax",
        # Behind a TLS proxy the request reaching us is plain HTTP: an https public URL
        # still makes the cookie Secure, so the browser never sends it in clear.
        secure=request.secure or _public_https(daemon.config.web.public_url),
        path="/",
        max_age=int(daemon.sessions.lifetime_seconds),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """End this browser's session."""
    session = current_session(request)
    daemon = request.app[DAEMON]
    await daemon.sessions.revoke(session.token)
    if not await daemon.sessions.has_sessions(session.user_id, time.time()):
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


def _public_https(public_url: str | None) -> bool:
    return public_url is not None and public_url.lower().startswith("https://")
