"""Behind a TLS-terminating proxy (`web.public_url: https://...`): the session cookie is
Secure although the request reaching the daemon is plain HTTP, and the desktop's WebSocket
from the public origin is accepted while other origins are still refused."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import users
from tests.component.api_fixtures import config_for

PUBLIC = "https://cc.example.com"


@contextlib.asynccontextmanager
async def logged_in(tmp_path: Path, **sections: Any) -> AsyncIterator[tuple[Any, Any]]:
    """(client, login response) for an agent of a daemon configured with `sections`."""
    app = make_app(config_for(tmp_path, **sections))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with app[DAEMON].sessionmaker.begin() as db:  # type: ignore[union-attr]
            await users.create_user(db, username="ann", role="agent", password="agent-pass-1")
        response = await client.post(
            "/api/v1/auth/login", json={"username": "ann", "password": "agent-pass-1"}
        )
        assert response.status == 200
        yield client, response
    finally:
        await client.close()


async def test_an_https_public_url_makes_the_cookie_secure_and_its_origin_welcome(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with logged_in(tmp_path, web={"public_url": PUBLIC}) as (client, response):
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        # The proxy hands the browser's Secure cookie on over plain HTTP (a client here
        # rightly keeps a Secure cookie off http://, so it is sent by hand).
        token = response.cookies["cc_session"].value
        headers = {"Cookie": f"cc_session={token}"}
        async with client.ws_connect("/ws/agent", headers={**headers, "Origin": PUBLIC}) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(
                "/ws/agent", headers={**headers, "Origin": "https://evil.example"}
            )
        assert refused.value.status == 403


async def test_without_a_public_url_a_plain_http_login_cookie_is_not_secure(
    tmp_path: Path, fast_hasher: None
) -> None:
    async with logged_in(tmp_path) as (_client, response):
        assert "Secure" not in response.headers["Set-Cookie"]
