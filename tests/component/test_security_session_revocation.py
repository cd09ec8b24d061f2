"""Disabling a user (or a new password or role) from another process ends their sessions.

The CLI is a separate process and a second daemon may share the database: neither can
reach this daemon's memory, so the daemon must notice the change in the store itself.
Every test runs with the sessions in the store and in memory (`web.sessions`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import WSMsgType

from contact_center.app import make_app
from contact_center.auth.sessions import MemorySessionStore
from contact_center.keys import DAEMON
from tests.component.api_fixtures import (
    SHIPPED_CONFIG,
    Api,
    ClientFactory,
    ServerFactory,
    Session,
    config_for,
    start_api,
)

REPO = Path(__file__).resolve().parents[2]
ENDS_WITHIN = 5.0


def _web(sessions: str) -> dict[str, Any]:
    """The shipped `web` section with `sessions` set."""
    return {**yaml.safe_load(SHIPPED_CONFIG.read_text())["web"], "sessions": sessions}


@pytest.fixture(params=["store", "memory"])
async def api(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
) -> Api:
    """The daemon app (as in conftest), once per `web.sessions` backend."""
    return await start_api(tmp_path, aiohttp_server, aiohttp_client, web=_web(request.param))


async def cli_result(tmp_path: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """`contact-center ...` against the test app's SQLite file, without blocking the loop:
    (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env["CC_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/cc.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "contact_center.cli",
        *args,
        "-c",
        str(SHIPPED_CONFIG),
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        proc.communicate(stdin.encode() if stdin is not None else None), timeout=120
    )
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _cli(tmp_path: Path, *args: str, stdin: str | None = None) -> str:
    """`contact-center ...` that must succeed; its standard output."""
    code, out, err = await cli_result(tmp_path, *args, stdin=stdin)
    assert code == 0, err
    return out


async def _ended_within(session: Session, seconds: float) -> float:
    """Seconds until the session is refused (401); fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        response = await session.get("/api/v1/auth/me")
        if response.status == 401:
            assert (await response.json())["error"]["id"] == "auth.required"
            return time.monotonic() - started
        assert response.status == 200
        await asyncio.sleep(0.1)
    raise AssertionError(f"the session still works {seconds} s after the change")


async def _socket(session: Session) -> Any:
    ws = await session.client.ws_connect("/ws/agent")
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws


async def _closed_code(ws: Any, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if message.type == WSMsgType.CLOSE:
            return int(message.data)
        assert message.type == WSMsgType.TEXT, message  # state pushed before the close
    raise AssertionError("the socket is still open")


async def test_cli_disable_ends_sessions_and_sockets_in_the_running_daemon(
    api: Api, tmp_path: Path
) -> None:
    agent = await api.login("agent")
    other = await api.login("supervisor")
    ws = await _socket(agent)
    assert (await _cli(tmp_path, "users", "disable", "agent")).strip() == "user agent disabled"
    await _ended_within(agent, ENDS_WITHIN)
    assert await _closed_code(ws, ENDS_WITHIN) == 4001
    # Nobody else was logged out, and the agent cannot log back in.
    assert (await other.get("/api/v1/auth/me")).status == 200
    again = await (await api.anonymous()).post(
        "/api/v1/auth/login", json={"username": "agent", "password": "agent-pass-1"}
    )
    assert again.status == 401
    # Enabled again: a new login works and stays.
    assert (await _cli(tmp_path, "users", "enable", "agent")).strip() == "user agent enabled"
    fresh = await api.login("agent")
    await asyncio.sleep(1.5)  # a poll or more
    assert (await fresh.get("/api/v1/auth/me")).status == 200


async def test_cli_password_change_ends_sessions(api: Api, tmp_path: Path) -> None:
    agent = await api.login("agent")
    ws = await _socket(agent)
    out = await _cli(
        tmp_path, "users", "password", "agent", "--password-stdin", stdin="new-pass-12\n"
    )
    assert out.strip() == "password of agent set"
    await _ended_within(agent, ENDS_WITHIN)
    assert await _closed_code(ws, ENDS_WITHIN) == 4001
    client = await api.anonymous()
    login = await client.post(
        "/api/v1/auth/login", json={"username": "agent", "password": "new-pass-12"}
    )
    assert login.status == 200


async def test_a_second_daemon_on_the_same_database_ends_them_too(
    api: Api,
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
) -> None:
    kind = api.app[DAEMON].config.web.sessions
    second = await aiohttp_server(make_app(config_for(tmp_path, web=_web(kind))))
    on_second = Api(api.app, second, aiohttp_client, api.user_ids)
    agent = await on_second.login("agent")
    supervisor = await on_second.login("supervisor")
    ws = await _socket(agent)
    admin = await api.login("admin")
    # A role change and a disable through the first daemon's API.
    changed = await admin.patch("/api/v1/users/supervisor", json={"role": "agent"})
    assert changed.status == 200
    assert (await admin.post("/api/v1/users/agent/disable")).status == 200
    await _ended_within(agent, ENDS_WITHIN)
    await _ended_within(supervisor, ENDS_WITHIN)
    assert await _closed_code(ws, ENDS_WITHIN) == 4001
    assert (await admin.get("/api/v1/auth/me")).status == 200


async def test_revoke_stale_ends_only_sessions_made_under_an_older_stamp() -> None:
    store = MemorySessionStore(3600)
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    t1 = t0 + timedelta(seconds=5)
    never = await store.create(user_id=1, username="a", display_name="A", role="agent", now=0)
    old = await store.create(
        user_id=2, username="b", display_name="B", role="agent", now=0, valid_after=t0
    )
    new = await store.create(
        user_id=2, username="b", display_name="B", role="agent", now=0, valid_after=t1
    )
    kept = await store.create(user_id=3, username="c", display_name="C", role="agent", now=0)
    assert await store.revoke_stale({}) == set()
    assert await store.revoke_stale({1: (True, t0), 2: (True, t1)}) == {1, 2}
    assert await store.get(never.token, 1) is None
    assert await store.get(old.token, 1) is None
    assert await store.get(new.token, 1) is not None  # made under the current stamp
    assert await store.get(kept.token, 1) is not None  # user 3 is not in the answer
    assert await store.revoke_stale({2: (False, t1)}) == {2}  # disabled: every session ends
    assert await store.get(new.token, 1) is None
