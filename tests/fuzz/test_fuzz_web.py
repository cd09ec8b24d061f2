"""Fuzz: HTTP JSON bodies of every route and every WebSocket message type.

The daemon app runs on loopback once for the module (its own event loop, so Hypothesis
can drive it from plain test functions). Each example sends one fuzzed request as a
logged-in admin (and, for the agent socket, an agent): the answer may be any 2xx-4xx,
never a 5xx, and a WebSocket reply is never the catch-all `internal` error nor a
dropped socket. Bodies are structured JSON built around each route's own field names,
or raw mutated bytes.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from contact_center.web.routes import RouteSpec
from contact_center.web.ws import WS_MESSAGES
from crm_store import users
from tests.component.api_fixtures import Api, Session, json_body_routes, start_api
from tests.component.conftest import FAST_HASHER
from tests.fuzz.support import FUZZ, mutated

_ints = st.one_of(st.integers(-5, 5), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 2**64]))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    _ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["agent", "admin", "ready", "not_ready", "billing", "gold", "", "\x00"]),
)


def _json(keys: list[str]) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(keys or ["x"]), st.text(max_size=10))
    return st.recursive(
        _scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=len(keys) + 2)
        ),
        max_leaves=20,
    )


@dataclass
class Rig:
    """The app on loopback, driven from synchronous tests through its own loop."""

    loop: asyncio.AbstractEventLoop
    api: Api
    admin: Session
    agent: Session

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    hasher, users.password_hasher = users.password_hasher, FAST_HASHER
    loop = asyncio.new_event_loop()
    clients: list[TestClient[Any, Any]] = []

    async def server_factory(app: Any) -> TestServer:
        server = TestServer(app)
        await server.start_server()
        return server

    async def client_factory(server: TestServer) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(server)
        await client.start_server()
        clients.append(client)
        return client

    api = loop.run_until_complete(
        start_api(tmp_path_factory.mktemp("fuzz-web"), server_factory, client_factory)
    )
    admin = loop.run_until_complete(api.login("admin"))
    agent = loop.run_until_complete(api.login("agent"))
    try:
        yield Rig(loop, api, admin, agent)
    finally:
        for client in clients:
            loop.run_until_complete(client.close())
        loop.run_until_complete(api.server.close())
        loop.close()
        users.password_hasher = hasher


def _concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", "1", path.replace("{username}", "supervisor"))


async def _post(rig: Rig, spec: RouteSpec, data: bytes) -> tuple[int, str]:
    response = await rig.admin.client.request(
        spec.method,
        _concrete(spec.path),
        data=data,
        headers={"X-CSRF-Token": rig.admin.csrf, "Content-Type": "application/json"},
    )
    return response.status, await response.text()


@pytest.fixture(scope="module")
def body_routes(rig: Rig) -> list[RouteSpec]:
    found = json_body_routes(rig.api.app)
    assert len(found) >= 8
    return found


@given(data=st.data())
@FUZZ
def test_no_json_body_makes_any_route_answer_5xx(
    rig: Rig, body_routes: list[RouteSpec], data: st.DataObject
) -> None:
    spec = data.draw(st.sampled_from(body_routes), label="route")
    assert spec.body is not None
    fields = list(spec.body.model_fields)
    body = data.draw(
        st.one_of(
            st.fixed_dictionaries({}, optional={f: _json(fields) for f in fields}),
            _json(fields),
        ),
        label="body",
    )
    status, text = rig.run(_post(rig, spec, json.dumps(body).encode()))
    assert status < 500, f"{spec.method} {spec.path} {body!r}: {status} {text}"


@given(data=st.data())
@FUZZ
def test_no_raw_body_makes_any_route_answer_5xx(
    rig: Rig, body_routes: list[RouteSpec], data: st.DataObject
) -> None:
    spec = data.draw(st.sampled_from(body_routes), label="route")
    raw = data.draw(
        mutated([b'{"username": "a", "password": "b"}', b'{"customer_id": 1, "title": "t"}']),
        label="raw",
    )
    status, text = rig.run(_post(rig, spec, raw))
    assert status < 500, f"{spec.method} {spec.path} {raw!r}: {status} {text}"


async def _ws_exchange(session: Session, kind: str, message: Any) -> dict[str, Any] | None:
    async with session.client.ws_connect(f"/ws/{kind}") as ws:
        await ws.receive_json(timeout=5)  # hello
        await ws.send_str(json.dumps(message))
        while True:
            received = await ws.receive(timeout=5)
            if received.type != aiohttp.WSMsgType.TEXT:
                return None  # the socket was closed on us
            reply: dict[str, Any] = json.loads(received.data)
            if reply.get("type") == "reply":
                return reply


@given(data=st.data())
@FUZZ
def test_no_websocket_message_gets_an_internal_error_or_a_dropped_socket(
    rig: Rig, data: st.DataObject
) -> None:
    types = sorted(rig.api.app[WS_MESSAGES])
    kind = data.draw(st.sampled_from(["agent", "supervisor"]), label="socket")
    fields = [
        "interaction_id",
        "offer_id",
        "agent_id",
        "customer_id",
        "status",
        "reason",
        "action",
        "target",
        "number",
        "mode",
        "notes",
        "disposition",
        "queue",
    ]
    message = data.draw(
        st.fixed_dictionaries(
            {
                "type": st.one_of(st.sampled_from(types), st.text(max_size=10)),
                "id": st.integers(0, 10**6),
            },
            optional={f: _json(fields) for f in fields},
        ),
        label="message",
    )
    session = rig.agent if kind == "agent" else rig.admin
    reply = rig.run(_ws_exchange(session, kind, message))
    assert reply is not None, f"socket closed on {message!r}"
    if not reply["ok"]:
        assert reply["error"]["id"] != "internal", (message, reply)
