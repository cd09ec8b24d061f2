"""HTTP and WebSocket answer the same exception with the same id, status and message:
the status the error catalogue gives the id.

A test route and a test WebSocket message type, registered on the real app like any
other, raise each kind of exception; a real client calls both on loopback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contact_center.app import make_app
from contact_center.errors import ConfigError
from contact_center.keys import DAEMON
from contact_center.web.errors import ApiError
from contact_center.web.routes import ANY_USER, RouteSpec, add_routes
from contact_center.web.ws import WsContext, WsMessageSpec, add_ws_messages
from crm_store import users
from crm_store.customer_csv import CsvHeaderError
from crm_store.error_ids import status_of
from crm_store.errors import Conflict, NotFound, PermissionDenied
from routing.intake import StoreUnavailable
from routing.router import RoutingError
from routing.telephony import TelephonyError
from tests.component.api_fixtures import PASSWORDS, ClientFactory, ServerFactory, config_for


def _sqlite_locked(tmp_path: Path) -> BaseException:
    """A real "database is locked" from the driver: another connection holds the file."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        sqlite3.connect(path, timeout=0).execute("SELECT 1 FROM sqlite_master")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        holder.close()
    raise AssertionError("the second connection was not refused")


# kind -> (factory of the exception, the id and status both channels must answer)
KINDS: dict[str, tuple[Callable[[Path], BaseException], str, int]] = {
    "routing": (
        lambda _: RoutingError("routing.no_pbx", "no PBX is connected"),
        "routing.no_pbx",
        409,
    ),
    "routing_uncatalogued": (
        lambda _: RoutingError("routing.brand_new", "a new refusal"),
        "routing.brand_new",
        409,
    ),
    "telephony": (
        lambda _: TelephonyError("no call 7", "telephony.no_call"),
        "telephony.no_call",
        409,
    ),
    "telephony_default": (lambda _: TelephonyError("the PBX said no"), "telephony.failed", 409),
    "store_not_found": (lambda _: NotFound("no customer 7"), "store.not_found", 404),
    "store_permission": (
        lambda _: PermissionDenied("agents may not"),
        "store.permission_denied",
        403,
    ),
    "store_conflict": (lambda _: Conflict("taken"), "store.conflict", 409),
    "store_csv_header": (lambda _: CsvHeaderError("no name column"), "store.csv_header", 400),
    "store_unavailable": (lambda _: StoreUnavailable("outbox full"), "database.unavailable", 503),
    "outage": (_sqlite_locked, "database.unavailable", 503),
    "api": (lambda _: ApiError(429, "auth.rate_limited", "slow down"), "auth.rate_limited", 429),
    "not_for_clients": (lambda _: ConfigError(["routing.x: bad"]), "internal", 500),
    "bug": (lambda _: RuntimeError("a bug"), "internal", 500),
}


@pytest.fixture
async def sessions(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
) -> Any:
    """A logged-in agent client on an app with the raising route and message type."""

    def raise_kind(kind: str) -> None:
        raise KINDS[kind][0](tmp_path)

    async def http_raise(request: Any) -> Any:
        raise_kind(request.match_info["kind"])

    async def ws_raise(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
        raise_kind(message["kind"])
        return {}

    app = make_app(config_for(tmp_path))
    add_routes(app, [RouteSpec("GET", "/api/v1/test-raise/{kind}", http_raise, ANY_USER, "raises")])
    add_ws_messages(app, [WsMessageSpec("test_raise", ANY_USER, ws_raise, "raises")])
    server = await aiohttp_server(app)
    sessionmaker = app[DAEMON].sessionmaker
    async with sessionmaker.begin() as db:
        await users.create_user(db, username="agent", role="agent", password=PASSWORDS["agent"])
    client = await aiohttp_client(server)
    login = {"username": "agent", "password": PASSWORDS["agent"]}
    assert (await client.post("/api/v1/auth/login", json=login)).status == 200
    return client


async def test_http_and_websocket_translate_every_kind_alike(sessions: Any) -> None:
    client = sessions
    async with client.ws_connect("/ws/agent") as ws:
        for n, (kind, (_, error_id, status)) in enumerate(KINDS.items()):
            response = await client.get(f"/api/v1/test-raise/{kind}")
            http_error = (await response.json())["error"]
            await ws.send_json({"type": "test_raise", "id": n, "kind": kind})
            while True:
                reply = await ws.receive_json(timeout=10)
                if reply.get("type") == "reply" and reply.get("ref") == n:
                    break
            assert reply["ok"] is False, kind
            ws_error = reply["error"]
            assert (response.status, http_error["id"]) == (status, error_id), kind
            assert (ws_error["status"], ws_error["id"]) == (status, error_id), kind
            assert ws_error["message"] == http_error["message"], kind
            if error_id != "routing.brand_new":
                assert status_of(error_id) == status, kind
            if status == 503:
                assert response.headers.get("Retry-After"), kind
