"""What a handler needs from the request: the session, the acting user, the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.auth.sessions import WebSession
from contact_center.keys import DAEMON
from contact_center.web.errors import ApiError
from crm_store.actors import Actor

SESSION_KEY: web.RequestKey[WebSession] = web.RequestKey("cc_session", WebSession)


def current_session(request: web.Request) -> WebSession:
    """The logged-in session (the auth middleware put it there)."""
    if SESSION_KEY not in request:
        raise ApiError(401, "auth.required", "log in first")
    return request[SESSION_KEY]


def actor_of(request: web.Request) -> Actor:
    """The acting user, as the store's audit log records it."""
    session = current_session(request)
    return Actor(session.user_id, session.username, session.role)


@asynccontextmanager
async def transaction(request: web.Request) -> AsyncIterator[AsyncSession]:
    """A store session in a transaction: committed on success, rolled back on error."""
    daemon = request.app[DAEMON]
    if daemon.sessionmaker is None:
        raise ApiError(503, "database.unavailable", "the CRM store is not open")
    async with daemon.sessionmaker.begin() as session:
        yield session
