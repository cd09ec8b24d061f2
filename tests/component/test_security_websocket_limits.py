"""WebSocket memory is bounded: per-client queue bytes, echoed ids, message size, sockets.

"A client that never reads" is a real TCP socket that does the upgrade and then never
calls recv(), with a small receive buffer: the kernel stops taking data, the server's
writer blocks, and the hub's queue for that client grows until its byte bound drops it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from contact_center.keys import DAEMON
from contact_center.web.hub import (
    CLOSE_REPLACED,
    CLOSE_TOO_SLOW,
    DEFAULT_QUEUE_BYTES,
    DEFAULT_SOCKETS_PER_USER,
    Client,
    Hub,
)
from contact_center.web.ws import MAX_ID_CHARS, MAX_MESSAGE_BYTES
from tests.component.api_fixtures import Api, Session


@contextlib.asynccontextmanager
async def never_reading_socket(
    api: Api, session: Session, path: str = "/ws/agent"
) -> AsyncIterator[socket.socket]:
    """A WebSocket upgraded by hand that never reads a byte after the 101 answer."""
    jar = session.client.session.cookie_jar.filter_cookies(api.server.make_url("/"))
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, (api.server.host, api.server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {api.server.host}:{api.server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:  # one byte at a time: not one byte of frames
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 5)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        yield sock
    finally:
        sock.close()


async def _socket_closed(sock: socket.socket, seconds: float) -> bool:
    """Read (now that the test allows it) until the server closes; True if it did."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(seconds):
            while await loop.sock_recv(sock, 65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def _newest(hub: Hub, user_id: int, kind: str = "agent") -> Client:
    return max(hub.clients(user_id, kind), key=lambda c: c.id)


async def _reply(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=5)
        if message["type"] == "reply":
            return message


async def test_a_client_that_never_reads_is_bounded_by_bytes_and_dropped(api: Api) -> None:
    hub = api.app[DAEMON].hub
    assert (
        hub.queue_bytes == DEFAULT_QUEUE_BYTES == api.app[DAEMON].config.web.websocket_queue_bytes
    )
    hub.send_timeout = 1.0
    agent = await api.login("agent")
    user_id = api.user_ids["agent"]
    blob = "x" * 32_000
    async with never_reading_socket(api, agent) as sock:
        for _ in range(100):  # the on-connect messages go out first
            if (client := _newest(hub, user_id)).queued_bytes == 0:
                break
            await asyncio.sleep(0.01)
        most = 0
        sent = 0
        while not client.dropped and sent < 4000:
            hub.to_agent(user_id, {"type": "tick", "n": sent, "blob": blob})
            sent += 1
            most = max(most, client.queued_bytes)
            assert client.queued_bytes <= hub.queue_bytes
            await asyncio.sleep(0.002)  # the writer gets to push all the kernel will take
        assert client.dropped, f"still connected after {sent} messages of 32 kB"
        assert client.close_code == CLOSE_TOO_SLOW
        # The bound was what stopped it: the queue was near-full by bytes, far from 256 items.
        assert most > hub.queue_bytes - 2 * len(blob)
        assert client.queue.qsize() <= 1  # emptied at once; at most the wake-up sentinel
        assert client not in hub.clients(user_id, "agent")
        assert hub.dropped_clients == 1
        assert await _socket_closed(sock, 10), "the server did not close the socket"


async def test_a_client_that_never_reads_does_not_block_others_or_the_bus(api: Api) -> None:
    daemon = api.app[DAEMON]
    hub, bus = daemon.hub, daemon.bus
    hub.send_timeout = 1.0
    user_id = api.user_ids["agent"]

    @dataclass(frozen=True)
    class Tick:
        n: int

    blob = "y" * 20_000

    def on_tick(event: Tick) -> None:
        hub.to_agent(user_id, {"type": "tick", "n": event.n, "b": blob})

    bus.subscribe(Tick, on_tick)
    stuck = await api.login("agent")
    reader = await api.login("agent")
    async with (
        never_reading_socket(api, stuck) as _sock,
        reader.client.ws_connect("/ws/agent") as ws,
    ):
        seen: list[int] = []

        async def read_all() -> None:
            while len(seen) < 500:
                message = await ws.receive_json(timeout=10)
                if message["type"] == "tick":
                    seen.append(message["n"])

        reading = asyncio.create_task(read_all())
        errors = bus.handler_errors
        for n in range(500):
            bus.publish(Tick(n))
            if n % 10 == 0:
                await asyncio.sleep(0.001)
        await asyncio.wait_for(bus.drain(), 2)  # the bus never waited on the stuck socket
        await asyncio.wait_for(reading, 20)
        assert seen == list(range(500))  # the reading tab got everything, in order
        assert bus.handler_errors == errors
        assert hub.dropped_clients == 1
        assert len(hub.clients(user_id, "agent")) == 1


async def test_the_echoed_id_and_type_are_capped(api: Api) -> None:
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        longest = "i" * MAX_ID_CHARS
        await ws.send_json({"type": "ping", "id": longest})
        reply = await _reply(ws)
        assert (reply["ref"], reply["ok"]) == (longest, True)
        for bad in ("i" * (MAX_ID_CHARS + 1), {"nested": 1}, [1, 2], 2**64):
            await ws.send_json({"type": "ping", "id": bad})
            reply = await _reply(ws)
            assert reply["ok"] is False, bad
            assert reply["ref"] is None
            assert reply["error"]["id"] == "request.invalid"
            assert "id" in reply["error"]["message"]
        await ws.send_json({"type": "t" * 10_000, "id": 3})
        reply = await _reply(ws)
        assert reply["error"]["id"] == "request.unknown_type"
        assert len(json.dumps(reply)) < 400


async def test_an_oversized_message_closes_the_socket(api: Api) -> None:
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        await ws.send_json({"type": "ping", "id": 1, "pad": "p" * MAX_MESSAGE_BYTES})
        while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            assert json.loads(message.data)["type"] != "reply"
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_a_user_keeps_at_most_n_sockets_per_kind_and_the_oldest_closes(api: Api) -> None:
    hub = api.app[DAEMON].hub
    assert hub.sockets_per_user == DEFAULT_SOCKETS_PER_USER == 5
    supervisor = await api.login("supervisor")
    user_id = api.user_ids["supervisor"]
    async with contextlib.AsyncExitStack() as stack:
        board = await stack.enter_async_context(supervisor.client.ws_connect("/ws/supervisor"))
        sockets = [
            await stack.enter_async_context(supervisor.client.ws_connect("/ws/agent"))
            for _ in range(DEFAULT_SOCKETS_PER_USER)
        ]
        for ws in sockets:
            await ws.send_json({"type": "ping", "id": 1})
            assert (await _reply(ws))["ok"] is True
        newest = await stack.enter_async_context(supervisor.client.ws_connect("/ws/agent"))
        await newest.send_json({"type": "ping", "id": "new tab"})
        assert (await _reply(newest))["ref"] == "new tab"  # a new tab always works
        oldest = sockets[0]
        while (message := await oldest.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.data == CLOSE_REPLACED
        assert "newer" in message.extra
        assert len(hub.clients(user_id, "agent")) == DEFAULT_SOCKETS_PER_USER
        # The wallboard is counted on its own and stays open.
        assert len(hub.clients(user_id, "supervisor")) == 1
        await board.send_json({"type": "ping", "id": 2})
        assert (await _reply(board))["ok"] is True
        for ws in sockets[1:]:
            await ws.send_json({"type": "ping", "id": 3})
            assert (await _reply(ws))["ok"] is True


@pytest.mark.parametrize("limit", [0, -1])
def test_hub_limits_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError):
        Hub(queue_bytes=limit)
    with pytest.raises(ValueError):
        Hub(sockets_per_user=limit)
