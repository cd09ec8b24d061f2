"""Two daemons on one database, and restarts, with `web.sessions: store` (the default):
one cookie works on both, a logout or a disabled user on one is seen by the other, and a
restart keeps everyone logged in. With `web.sessions: memory` a restart logs everyone out.
Each test runs on SQLite and on PostgreSQL (`fresh_url`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
import yaml
from aiohttp import WSMsgType
from aiohttp.test_utils import TestServer
from sqlalchemy import text, update

from contact_center.app import make_app
from contact_center.auth.sessions import COOKIE_NAME
from contact_center.keys import DAEMON
from crm_store import users
from crm_store.models import LoginSession, utcnow
from tests.component.api_fixtures import (
    PASSWORDS,
    SHIPPED_CONFIG,
    Api,
    ClientFactory,
    ServerFactory,
    Session,
    config_for,
    start_api,
)

pytestmark = pytest.mark.integration

ENDS_WITHIN = 5.0


def _sections(url: str, sessions: str = "store") -> dict[str, Any]:
    web = {**yaml.safe_load(SHIPPED_CONFIG.read_text())["web"], "sessions": sessions}
    return {"database": {"url": url}, "web": web}


async def _first(
    tmp_path: Any, url: str, server: ServerFactory, client: ClientFactory, sessions: str = "store"
) -> Api:
    """The first daemon on a new database (it creates the schema and the users)."""
    return await start_api(tmp_path, server, client, **_sections(url, sessions))


async def _another(tmp_path: Any, url: str, server: ServerFactory, sessions: str = "store") -> Any:
    """Another daemon (or the same one restarted) on the same database."""
    return await server(make_app(config_for(tmp_path, **_sections(url, sessions))))


async def _login(api: Api, username: str) -> tuple[Session, str]:
    """A logged-in client and its cookie's token."""
    client = await api.anonymous()
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORDS[username]}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    return Session(client, body["csrf_token"], body["user"]), response.cookies[COOKIE_NAME].value


async def _carried(server: TestServer, new_client: ClientFactory, token: str, csrf: str) -> Session:
    """The same browser (cookie and CSRF token) talking to another daemon."""
    client = await new_client(server)
    client.session.cookie_jar.update_cookies({COOKIE_NAME: token})
    return Session(client, csrf, {})


async def _status(session: Session) -> int:
    return int((await session.get("/api/v1/auth/me")).status)


async def _refused_within(session: Session, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while await _status(session) != 401:
        assert time.monotonic() < deadline, f"still logged in {seconds} s later"
        await asyncio.sleep(0.1)


async def test_a_session_from_one_daemon_works_on_another_and_logout_reaches_both(
    fresh_url: str, tmp_path: Any, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    first = await _first(tmp_path, fresh_url, aiohttp_server, aiohttp_client)
    second = await _another(tmp_path, fresh_url, aiohttp_server)
    on_first, token = await _login(first, "agent")
    on_second = await _carried(second, aiohttp_client, token, on_first.csrf)
    me = await on_second.get("/api/v1/auth/me")
    assert me.status == 200
    assert (await me.json())["csrf_token"] == on_first.csrf
    # A change on the second daemon with the CSRF token the first one gave.
    made = await on_second.post("/api/v1/customers", json={"name": "Via the second"})
    assert made.status == 201, await made.text()
    forged = await on_second.client.post("/api/v1/customers", json={"name": "No token"})
    assert forged.status == 403
    assert (await forged.json())["error"]["id"] == "auth.csrf"
    assert (await on_second.post("/api/v1/auth/logout")).status == 200
    assert await _status(on_first) == 401  # at once: the row is gone
    assert await _status(on_second) == 401


async def test_a_user_disabled_in_the_store_is_refused_by_every_daemon(
    fresh_url: str, tmp_path: Any, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    first = await _first(tmp_path, fresh_url, aiohttp_server, aiohttp_client)
    second = await _another(tmp_path, fresh_url, aiohttp_server)
    on_first, token = await _login(first, "agent")
    on_second = await _carried(second, aiohttp_client, token, on_first.csrf)
    ws = await on_second.client.ws_connect("/ws/agent")
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    supervisor, _ = await _login(first, "supervisor")
    sessionmaker = first.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    # As `contact-center users disable` does it: only the store changes.
    async with sessionmaker.begin() as db:
        await users.set_user_active(db, "agent", False)
    await _refused_within(on_first, ENDS_WITHIN)
    await _refused_within(on_second, ENDS_WITHIN)
    # The second daemon's poll closes the socket it serves.
    deadline = time.monotonic() + ENDS_WITHIN
    while (message := await ws.receive(timeout=ENDS_WITHIN)).type == WSMsgType.TEXT:
        assert time.monotonic() < deadline, "the socket is still open"  # state pushed first
    assert (message.type, message.data) == (WSMsgType.CLOSE, 4001)
    assert await _status(supervisor) == 200


async def test_a_restart_keeps_the_session(
    fresh_url: str, tmp_path: Any, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    first = await _first(tmp_path, fresh_url, aiohttp_server, aiohttp_client)
    session, token = await _login(first, "admin")
    await first.server.close()
    restarted = await _another(tmp_path, fresh_url, aiohttp_server)
    again = await _carried(restarted, aiohttp_client, token, session.csrf)
    me = await again.get("/api/v1/auth/me")
    assert me.status == 200
    body = await me.json()
    assert body["user"]["username"] == "admin" and body["csrf_token"] == session.csrf
    assert (await again.get("/api/v1/users")).status == 200
    # The database holds a digest, not the cookie.
    sessionmaker = restarted.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker() as db:
        rows = (await db.execute(text("SELECT * FROM login_sessions"))).all()
    assert len(rows) == 1 and token not in " ".join(map(str, rows[0]))


async def test_in_memory_sessions_end_with_the_daemon(
    fresh_url: str, tmp_path: Any, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    first = await _first(tmp_path, fresh_url, aiohttp_server, aiohttp_client, "memory")
    session, token = await _login(first, "admin")
    other = await _another(tmp_path, fresh_url, aiohttp_server, "memory")
    assert await _status(await _carried(other, aiohttp_client, token, session.csrf)) == 401
    await first.server.close()
    restarted = await _another(tmp_path, fresh_url, aiohttp_server, "memory")
    assert await _status(await _carried(restarted, aiohttp_client, token, session.csrf)) == 401
    sessionmaker = restarted.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker() as db:
        assert (await db.execute(text("SELECT count(*) FROM login_sessions"))).scalar() == 0


async def test_an_expired_session_is_refused_by_every_daemon(
    fresh_url: str, tmp_path: Any, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    first = await _first(tmp_path, fresh_url, aiohttp_server, aiohttp_client)
    second = await _another(tmp_path, fresh_url, aiohttp_server)
    on_first, token = await _login(first, "agent")
    on_second = await _carried(second, aiohttp_client, token, on_first.csrf)
    assert await _status(on_second) == 200
    sessionmaker = first.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker.begin() as db:
        await db.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await _status(on_first) == 401
    assert await _status(on_second) == 401
