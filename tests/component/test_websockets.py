"""`/ws/agent` and `/ws/supervisor`: auth, origin, messages with roles, slow clients."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from contact_center.keys import DAEMON
from contact_center.web.hub import CLOSE_TOO_SLOW
from contact_center.web.ws import WS_MESSAGES
from tests.component.api_fixtures import Api


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of type `kind`, skipping the state snapshots sent on connect."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=5)
        if message["type"] == kind:
            return message


async def _hello(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message: dict[str, Any] = await ws.receive_json(timeout=5)
    assert message["type"] == "hello"
    return message


async def test_agent_socket_says_hello_and_answers_ping(api: Api) -> None:
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        hello = await _hello(ws)
        assert hello["user"]["username"] == "agent"
        assert hello["channel"] == "agent"
        await ws.send_json({"type": "ping", "id": 7})
        reply = await _until(ws, "reply")
        assert reply["type"] == "reply"
        assert reply["ref"] == 7
        assert reply["ok"] is True
        assert reply["result"]["pong"] > 0


async def test_bad_messages_get_error_replies_and_the_socket_stays(api: Api) -> None:
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        await _hello(ws)
        await ws.send_str("{not json")
        assert (await _until(ws, "reply"))["error"]["id"] == "request.json"
        await ws.send_json([1, 2])
        assert (await _until(ws, "reply"))["error"]["id"] == "request.invalid"
        await ws.send_json({"type": "launch_rockets", "id": "a"})
        reply = await _until(ws, "reply")
        assert (reply["ref"], reply["error"]["id"]) == ("a", "request.unknown_type")
        await ws.send_json({"type": "ping", "id": 2})
        assert (await _until(ws, "reply"))["ok"] is True


async def test_sockets_need_a_login_and_the_right_role(api: Api) -> None:
    anonymous = await api.anonymous()
    with pytest.raises(aiohttp.WSServerHandshakeError) as no_login:
        await anonymous.ws_connect("/ws/agent")
    assert no_login.value.status == 401
    agent = await api.login("agent")
    with pytest.raises(aiohttp.WSServerHandshakeError) as wrong_role:
        await agent.client.ws_connect("/ws/supervisor")
    assert wrong_role.value.status == 403
    supervisor = await api.login("supervisor")
    async with supervisor.client.ws_connect("/ws/supervisor") as ws:
        assert (await _hello(ws))["channel"] == "supervisor"


async def test_a_foreign_origin_is_refused(api: Api) -> None:
    agent = await api.login("agent")
    with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
        await agent.client.ws_connect("/ws/agent", headers={"Origin": "https://evil.example"})
    assert foreign.value.status == 403
    host = f"{api.server.host}:{api.server.port}"
    async with agent.client.ws_connect("/ws/agent", headers={"Origin": f"http://{host}"}) as ws:
        await _hello(ws)


async def test_every_ws_message_type_declares_roles(api: Api) -> None:
    specs = api.app[WS_MESSAGES]
    assert "ping" in specs
    assert all(spec.roles for spec in specs.values())


async def test_hub_delivers_to_the_right_agent_only(api: Api) -> None:
    hub = api.app[DAEMON].hub
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with (
        agent.client.ws_connect("/ws/agent") as agent_ws,
        supervisor.client.ws_connect("/ws/supervisor") as board,
    ):
        await _hello(agent_ws)
        await _hello(board)
        assert hub.to_agent(api.user_ids["agent"], {"type": "offer", "n": 1}) == 1
        assert hub.to_agent(api.user_ids["admin"], {"type": "offer", "n": 2}) == 0
        assert hub.to_supervisors({"type": "queues", "n": 3}) == 1
        assert (await _until(agent_ws, "offer")) == {"type": "offer", "n": 1}
        while (message := await _until(board, "queues")).get("n") != 3:
            pass  # the live feed also sends "queues" snapshots
        assert message == {"type": "queues", "n": 3}


async def test_a_slow_client_is_dropped_without_slowing_the_others(api: Api) -> None:
    daemon = api.app[DAEMON]
    daemon.hub.queue_size = 5
    fast = await api.login("agent")
    slow = await api.login("agent")
    async with (
        fast.client.ws_connect("/ws/agent") as fast_ws,
        slow.client.ws_connect("/ws/agent") as slow_ws,
    ):
        await _hello(fast_ws)
        await _hello(slow_ws)
        slow_client = next(
            c
            for c in daemon.hub._agents[api.user_ids["agent"]]
            if c.id == max(c.id for c in daemon.hub._agents[api.user_ids["agent"]])
        )
        # Simulate a stuck browser: its writer cannot send (a full TCP window would do
        # the same), so its queue fills while the fast client keeps reading.
        gate = asyncio.Event()
        original_send = slow_client.ws.send_str

        async def stuck_send(data: str, compress: int | None = None) -> None:
            await gate.wait()
            await original_send(data)

        slow_client.ws.send_str = stuck_send  # type: ignore[method-assign]
        received = 0
        for i in range(40):
            daemon.hub.to_agent(api.user_ids["agent"], {"type": "tick", "n": i})
            await asyncio.sleep(0)
            message = await _until(fast_ws, "tick")
            assert message["n"] == i
            received += 1
        assert received == 40
        assert slow_client.dropped
        assert daemon.hub.dropped_clients == 1
        gate.set()
        closing = await slow_ws.receive(timeout=5)
        while closing.type == aiohttp.WSMsgType.TEXT:
            closing = await slow_ws.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == CLOSE_TOO_SLOW


async def test_disabling_a_user_closes_their_sockets(api: Api) -> None:
    agent = await api.login("agent")
    admin = await api.login("admin")
    async with agent.client.ws_connect("/ws/agent") as ws:
        await _hello(ws)
        assert (await admin.post("/api/v1/users/agent/disable")).status == 200
        closing = await ws.receive(timeout=5)
        while closing.type == aiohttp.WSMsgType.TEXT:  # state pushed before the close
            closing = await ws.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == 4001
