"""`contact-center users set` changes a user's skills, device, name or role, and a running
daemon on the same store follows within a couple of seconds (contact_center/roster_sync.py):
before, only the API could change them, and the CLI had no way at all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from contact_center.keys import DAEMON
from tests.component.api_fixtures import Api
from tests.component.test_security_session_revocation import _cli, cli_result

FOLLOWS_WITHIN = 5.0


async def _until(check: object, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + FOLLOWS_WITHIN
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the running daemon did not follow: {what}")


async def test_skills_device_and_name_set_from_the_cli_reach_the_running_router(
    api: Api, tmp_path: Path
) -> None:
    routing = api.app[DAEMON].routing
    assert routing is not None
    agent_id = api.user_ids["agent"]
    out = await _cli(
        tmp_path,
        "users",
        "set",
        "agent",
        "--skills",
        "billing=9,spanish=4",
        "--device",
        "PJSIP/1042",
        "--display-name",
        "Alex Agent-Ng",
    )
    assert out.strip() == "user agent changed: device, display_name, skills"
    await _until(lambda: routing.agents[agent_id].device == "PJSIP/1042", "device")
    assert routing.agents[agent_id].display_name == "Alex Agent-Ng"
    assert routing.router.agents[agent_id].skills == {"billing": 9, "spanish": 4}

    await _cli(tmp_path, "users", "set", "agent", "--no-device")
    await _until(lambda: routing.agents[agent_id].device is None, "device removed")
    # No phone, no voice calls (issue 11, item 13): the router's capacity says so.
    assert routing.router.agents[agent_id].capacity.get("voice", 0) == 0


async def test_a_role_set_from_the_cli_ends_the_users_sessions(api: Api, tmp_path: Path) -> None:
    agent = await api.login("agent")
    await _cli(tmp_path, "users", "set", "agent", "--role", "supervisor")
    deadline = time.monotonic() + FOLLOWS_WITHIN
    while (await agent.get("/api/v1/auth/me")).status != 401:
        assert time.monotonic() < deadline, "the old session still works"
        await asyncio.sleep(0.1)
    routing = api.app[DAEMON].routing
    assert routing is not None
    await _until(
        lambda: routing.agents[api.user_ids["agent"]].role == "supervisor", "role in the router"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to change"),
        (("--device", "PJSIP/1001,B"), "not a phone device"),
        (("--skills", "billing=11"), "1..10"),
        (("--skills", "billing"), "expected name=level"),
    ],
)
async def test_bad_changes_are_refused_and_change_nothing(
    api: Api, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, _out, err = await cli_result(tmp_path, "users", "set", "agent", *args)
    assert code == 1
    assert message in err
    routing = api.app[DAEMON].routing
    assert routing is not None
    assert routing.agents[api.user_ids["agent"]].device == "PJSIP/1001"
