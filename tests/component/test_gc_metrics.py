"""Garbage collection in the running daemon: the pause metric moves, survivors are frozen
while the app runs (and given back after), and a closed WebSocket leaves no cycle."""

from __future__ import annotations

import asyncio
import gc
import re
import weakref
from pathlib import Path

from aiohttp import web

from contact_center.app import make_app
from contact_center.heap import HeapKeeper
from contact_center.keys import DAEMON
from tests.component.api_fixtures import Api, config_for
from tests.component.test_web_system import ClientFactory


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} not in /metrics"
    return float(match.group(1))


async def test_gc_pause_metric_exists_and_moves(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(make_app(config_for(tmp_path)))
    first = await (await client.get("/metrics")).text()
    assert "# TYPE cc_gc_pause_seconds histogram" in first
    full = 'cc_gc_pause_seconds_count{generation="2"}'
    before = _value(first, full)
    gc.collect()
    second = await (await client.get("/metrics")).text()
    assert _value(second, full) >= before + 1
    assert _value(second, 'cc_gc_pause_last_seconds{generation="2"}') > 0
    assert _value(second, 'cc_gc_pause_seconds_bucket{generation="2",le="+Inf"}') == _value(
        second, full
    )
    assert _value(second, "cc_gc_frozen_objects") > 10_000  # start-up objects
    assert _value(second, "cc_gc_tracked_objects") > 0
    assert _value(second, 'cc_gc_threshold{generation="0"}') == gc.get_threshold()[0]


class Node:
    def __init__(self) -> None:
        self.me = self


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


async def test_survivors_are_frozen_while_the_daemon_runs(tmp_path: Path) -> None:
    runner = web.AppRunner(make_app(config_for(tmp_path)))
    await runner.setup()
    try:
        hooks = [cb for cb in gc.callbacks if isinstance(getattr(cb, "__self__", None), HeapKeeper)]
        assert len(hooks) == 1
        node = Node()
        gc.collect(1)
        assert not _tracked(node)
    finally:
        await runner.cleanup()
    assert gc.get_freeze_count() == 0
    assert not [cb for cb in gc.callbacks if isinstance(getattr(cb, "__self__", None), HeapKeeper)]


async def test_switched_off_in_config_survivors_stay_collectable(tmp_path: Path) -> None:
    runner = web.AppRunner(make_app(config_for(tmp_path, gc={"freeze_survivors": False})))
    await runner.setup()
    try:
        assert gc.get_freeze_count() > 0  # the start-up objects, once
        node = Node()
        gc.collect(1)
        assert _tracked(node)
    finally:
        await runner.cleanup()


async def test_a_closed_websocket_is_freed_without_a_collection(api: Api) -> None:
    hub = api.app[DAEMON].hub
    agent = await api.login("agent")
    ws = await agent.client.ws_connect("/ws/agent")
    await ws.receive_json(timeout=5)
    (server_ws,) = [c.ws for c in hub.clients(api.user_ids["agent"], "agent")]
    gone = weakref.ref(server_ws)
    del server_ws
    gc.disable()
    try:
        await ws.close()
        for _ in range(100):
            if gone() is None:
                break
            await asyncio.sleep(0.02)
        # Reference counting alone freed it: no cycle (heartbeat callback) kept it.
        assert gone() is None
    finally:
        gc.enable()
