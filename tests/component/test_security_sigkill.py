"""Fault: the daemon is SIGKILLed under call traffic, then started again on the same store.

What a contact center needs from that bad day: every call the daemon acknowledged is
still on record, and an agent who was ready before the crash but has no desktop open
afterwards is not offered calls (their "ready" waits for a live desktop, then lapses).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.component.test_daemon_process import REPO, cli, free_port, wait_for_banner

GRACE_SECONDS = 3


def _start(env: dict[str, str], config: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        cli("run", "-c", str(config)),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_banner(proc)
    return proc


def _client() -> aiohttp.ClientSession:
    # The cookie of a numeric host (127.0.0.1) is only kept by an "unsafe" jar.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _login(session: aiohttp.ClientSession, base: str, user: str, password: str) -> str:
    async with session.post(
        f"{base}/api/v1/auth/login", json={"username": user, "password": password}
    ) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["csrf_token"])


async def _agent(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/api/v1/agents") as response:
        agents = (await response.json())["agents"]
    return next(a for a in agents if a["username"] == "agent")


async def _traffic_then_kill(base: str, proc: subprocess.Popen[str]) -> list[int]:
    """Agent ready, calls placed four at a time, SIGKILL once 12 are acknowledged."""
    acknowledged: list[int] = []
    async with _client() as agent, _client() as boss:
        await _login(agent, base, "agent", "agent-demo-pass")
        csrf = await _login(boss, base, "supervisor", "supervisor-demo-pass")
        async with agent.ws_connect(f"{base}/ws/agent", headers={"Origin": base}) as ws:
            await ws.receive_json(timeout=5)
            await ws.send_json({"type": "set_status", "id": 1, "status": "ready"})
            while (await ws.receive_json(timeout=5)).get("type") != "reply":
                pass
        assert (await _agent(boss, base))["status"] == "ready"

        async def call(n: int) -> None:
            try:
                async with boss.post(
                    f"{base}/api/v1/simulator/calls",
                    json={"caller": f"+4420794600{n:02d}", "queue": "support"},
                    headers={"X-CSRF-Token": csrf},
                ) as response:
                    if response.status == 201:
                        acknowledged.append(int((await response.json())["interaction_id"]))
            except aiohttp.ClientError:
                pass  # in flight when the daemon died: never acknowledged

        n = 0
        while len(acknowledged) < 12:
            await asyncio.gather(*(call(n + i) for i in range(4)))
            n += 4
        # Kill while the next batch is on its way.
        batch = asyncio.gather(*(call(n + i) for i in range(4)))
        await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        await batch
    return acknowledged


async def _after_restart(base: str, acknowledged: list[int]) -> None:
    async with _client() as boss:
        csrf = await _login(boss, base, "supervisor", "supervisor-demo-pass")
        for interaction_id in acknowledged:
            async with boss.get(f"{base}/api/v1/interactions/{interaction_id}") as response:
                assert response.status == 200, (interaction_id, await response.text())
        state = await _agent(boss, base)
        assert state["status"] == "ready" and state["awaiting_desktop"] is True, state
        # A new call waits: the agent is "ready" only on paper until a desktop connects.
        async with boss.post(
            f"{base}/api/v1/simulator/calls",
            json={"caller": "+442079460099", "queue": "support"},
            headers={"X-CSRF-Token": csrf},
        ) as response:
            assert response.status == 201, await response.text()
        await asyncio.sleep(1.0)
        assert (await _agent(boss, base))["activity"] == "idle"
        # Nobody came back within the grace period: the agent is offline.
        for _ in range(40):
            await asyncio.sleep(0.25)
            state = await _agent(boss, base)
            if state["status"] == "offline":
                break
        assert state["status"] == "offline" and state["activity"] == "idle", state


def test_a_sigkill_under_traffic_loses_no_acknowledged_call_and_offers_nothing_to_the_absent(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw.setdefault("routing", {})["restore_grace_seconds"] = GRACE_SECONDS
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = dict(os.environ)
    env.update(
        CC_WEB_PORT=str(port),
        CC_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/daemon.db",
        CC_PBX="simulated",
        PYTHONUNBUFFERED="1",
    )
    seeded = subprocess.run(
        cli("db", "seed-demo", "-c", str(config)),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seeded.returncode == 0, seeded.stderr

    first = _start(env, config)
    try:
        acknowledged = asyncio.run(_traffic_then_kill(base, first))
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 12

    second = _start(env, config)
    try:
        asyncio.run(_after_restart(base, acknowledged))
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.communicate(timeout=20)
        finally:
            if second.poll() is None:
                second.kill()
