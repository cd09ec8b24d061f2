"""Database outage and recovery: the documented 503 `database.unavailable`, an honest
`/status`, and everything back once the database is.

SQLite: another connection holds a real `BEGIN EXCLUSIVE` on the daemon's file. In WAL
mode readers are not blocked by a writer, so reads (and the screen pop) keep answering
while every write fails after the busy time-out. PostgreSQL: the daemon reaches the
server through a TCP proxy the test stops and starts again, which is an outage for
reads and writes alike.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from contact_center.keys import DAEMON
from contact_center.web.errors import RETRY_AFTER_SECONDS
from contact_center.web.routes import ANY_USER
from contact_center.web.ws import WS_MESSAGES, WsContext, WsMessageSpec
from routing.telephony import TelephonyError
from tests.component.api_fixtures import (
    Api,
    ClientFactory,
    ServerFactory,
    Session,
    start_api,
)
from tests.conftest import POSTGRES_URL, postgres_available, require_server


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json()


async def _assert_unavailable(response: aiohttp.ClientResponse, what: str) -> None:
    body = await response.text()
    assert response.status == 503, f"{what}: {response.status} {body}"
    assert (await response.json())["error"]["id"] == "database.unavailable", what
    assert response.headers.get("Retry-After") == str(RETRY_AFTER_SECONDS), what


async def _ws_reply(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> Any:
    await ws.send_json(message)
    while True:
        reply = await ws.receive_json(timeout=30)
        if reply["type"] == "reply" and reply["ref"] == message["id"]:
            return reply


async def _status(client: Any) -> tuple[int, str, float]:
    started = time.monotonic()
    response = await client.get("/status")
    body = await response.json()
    return response.status, body["components"]["database"]["state"], time.monotonic() - started


async def _make_customer(admin: Session, name: str) -> aiohttp.ClientResponse:
    return await admin.post(
        "/api/v1/customers",
        json={"name": name, "phones": ["+442079460018"]},
    )


async def test_sqlite_write_lock_is_a_503_and_status_down_then_recovers(api: Api) -> None:
    admin = await api.login("admin")
    agent = await api.login("agent")
    anonymous = await api.anonymous()
    assert (await _make_customer(admin, "Before")).status == 201
    assert (await _status(anonymous))[1] == "up"
    database = make_url(api.app[DAEMON].config.database.url).database
    assert database is not None
    locker = sqlite3.connect(Path(database), isolation_level=None, timeout=0)
    async with agent.client.ws_connect("/ws/agent") as ws:
        locker.execute("BEGIN EXCLUSIVE")
        try:
            status, create, pop, reply = await asyncio.gather(
                _status(anonymous),
                admin.post("/api/v1/customers", json={"name": "Locked out"}),
                agent.get("/api/v1/screen-pop", params={"phone": "+442079460018"}),
                _ws_reply(ws, {"type": "set_status", "id": "s", "status": "ready"}),
            )
            code, state, seconds = status
            assert (code, state) == (503, "down")
            assert seconds < 3, "the status check must not wait out the 5 s busy time-out"
            await _assert_unavailable(create, "POST /api/v1/customers")
            # WAL: a write lock does not stop readers, so the pop still answers.
            assert pop.status == 200, await pop.text()
            assert (await pop.json())["customer"]["name"] == "Before"
            assert reply["ok"] is False
            assert reply["error"]["id"] == "database.unavailable"
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        # Recovery: nothing to restart.
        assert (await _status(anonymous))[:2] == (200, "up")
        created = await admin.post("/api/v1/customers", json={"name": "After"})
        assert created.status == 201, await created.text()
        reply = await _ws_reply(ws, {"type": "set_status", "id": "t", "status": "ready"})
        assert reply["ok"] is True, reply
    names = [c["name"] for c in (await _json(await admin.get("/api/v1/customers")))["customers"]]
    assert "Locked out" not in names and {"Before", "After"} <= set(names)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; `stop` is an outage, `start` the recovery."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (on the same port as before, after a stop)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


def _admin_dsn(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture
async def pg_through_proxy() -> AsyncIterator[tuple[str, TcpProxy]]:
    """A throwaway PostgreSQL database reached through a proxy; its URL and the proxy."""
    if not postgres_available():
        require_server(f"PostgreSQL not reachable at {make_url(POSTGRES_URL).render_as_string()}")
    name = f"cc_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(POSTGRES_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        via = url.set(database=name, host="127.0.0.1", port=proxy.port)
        yield via.render_as_string(hide_password=False), proxy
    finally:
        if proxy._server is not None:
            await proxy.stop()
        conn = await asyncpg.connect(_admin_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_postgresql_outage_is_a_503_everywhere_then_recovers(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
    pg_through_proxy: tuple[str, TcpProxy],
) -> None:
    url, proxy = pg_through_proxy
    api = await start_api(tmp_path, aiohttp_server, aiohttp_client, database={"url": url})
    admin = await api.login("admin")
    agent = await api.login("agent")
    anonymous = await api.anonymous()
    assert (await _make_customer(admin, "Before")).status == 201
    async with agent.client.ws_connect("/ws/agent") as ws:
        await proxy.stop()
        try:
            code, state, _ = await _status(anonymous)
            assert (code, state) == (503, "down")
            await _assert_unavailable(
                await admin.post("/api/v1/customers", json={"name": "Cut off"}), "POST customers"
            )
            await _assert_unavailable(await admin.get("/api/v1/customers"), "GET customers")
            pop = await agent.get("/api/v1/screen-pop", params={"phone": "+442079460018"})
            await _assert_unavailable(pop, "screen pop")
            reply = await _ws_reply(ws, {"type": "set_status", "id": "s", "status": "ready"})
            assert reply["error"]["id"] == "database.unavailable"
        finally:
            await proxy.start()
        assert (await _status(anonymous))[:2] == (200, "up")
        pop = await agent.get("/api/v1/screen-pop", params={"phone": "+442079460018"})
        assert pop.status == 200
        assert (await pop.json())["customer"]["name"] == "Before"
        assert (await admin.post("/api/v1/customers", json={"name": "After"})).status == 201
        reply = await _ws_reply(ws, {"type": "set_status", "id": "t", "status": "ready"})
        assert reply["ok"] is True, reply


async def test_websocket_replies_translate_errors_as_http_does(api: Api) -> None:
    async def pbx_refuses(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
        raise TelephonyError("the PBX refused the transfer", "telephony.refused")

    # Registered like any message type (the registry is read on each message).
    api.app[WS_MESSAGES]["test_pbx_refuses"] = WsMessageSpec(
        "test_pbx_refuses", ANY_USER, pbx_refuses, "raises TelephonyError"
    )
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        reply = await _ws_reply(ws, {"type": "test_pbx_refuses", "id": 1})
        assert reply["ok"] is False
        assert reply["error"] == {
            "id": "telephony.refused",
            "message": "the PBX refused the transfer",
            "status": 409,
        }
