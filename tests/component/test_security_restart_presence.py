"""After a restart, an agent the store says was ready is not offered anything until a
desktop of theirs connects, and goes offline (stored, audited) if none does within
`routing.restore_grace_seconds` (issue 13, item 12: after a SIGKILL, agents who were no
longer there came back ready and got offers)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import agent_states, audit
from crm_store.actors import Actor
from tests.component.api_fixtures import Api, config_for, start_api
from tests.component.test_routing_flow import until


async def _ready_then_restart(
    tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, grace: float
) -> Api:
    first = await start_api(tmp_path, aiohttp_server, aiohttp_client)
    agent_id = first.user_ids["agent"]
    routing = first.app[DAEMON].routing
    assert routing is not None
    await routing.set_status(agent_id, "ready", None, actor=Actor(agent_id, "agent", "agent"))
    await first.server.close()  # the agent's desktop is gone with it
    config = config_for(tmp_path)
    config = config.model_copy(
        update={"routing": config.routing.model_copy(update={"restore_grace_seconds": grace})}
    )
    app = make_app(config)
    return Api(app, await aiohttp_server(app), aiohttp_client, first.user_ids)


async def _call(api: Api) -> int:
    supervisor = await api.login("supervisor")
    response = await supervisor.post(
        "/api/v1/simulator/calls", json={"caller": "+447700900555", "queue": "support"}
    )
    assert response.status == 201, await response.text()
    return int((await response.json())["interaction_id"])


async def test_a_restored_ready_agent_is_offered_nothing_until_their_desktop_connects(
    tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, fast_hasher: None
) -> None:
    api = await _ready_then_restart(tmp_path, aiohttp_server, aiohttp_client, grace=60)
    routing: Any = api.app[DAEMON].routing
    agent_id = api.user_ids["agent"]
    restored = routing.router.agents[agent_id]
    assert restored.status == "ready"
    assert routing.agent_state(agent_id)["awaiting_desktop"] is True
    interaction_id = await _call(api)
    await asyncio.sleep(0.3)
    assert routing.contacts[interaction_id].state == "waiting"
    assert not restored.offered
    # The agent's desktop reconnects: the ready is theirs, the waiting call comes.
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        offer = await until(ws, "offer")
        assert offer["interaction_id"] == interaction_id
        state = await until(ws, "agent_state", activity="offered")
        assert state["awaiting_desktop"] is False
    await api.server.close()


async def test_without_a_desktop_within_the_grace_the_agent_goes_offline_audited(
    tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, fast_hasher: None
) -> None:
    api = await _ready_then_restart(tmp_path, aiohttp_server, aiohttp_client, grace=0.5)
    daemon = api.app[DAEMON]
    routing: Any = daemon.routing
    agent_id = api.user_ids["agent"]
    interaction_id = await _call(api)
    for _ in range(60):
        if routing.router.agents[agent_id].status == "offline":
            break
        await asyncio.sleep(0.05)
    assert routing.router.agents[agent_id].status == "offline"
    assert routing.contacts[interaction_id].state == "waiting"  # never offered to them
    assert daemon.sessionmaker is not None
    # The router knows first; the store has it once set_status's transaction commits.
    for _ in range(60):
        async with daemon.sessionmaker() as db:
            stored = (await agent_states.load_agent_states(db))[agent_id]
            entries = await audit.list_entries(db, entity="user", entity_id=agent_id)
        if stored.status == "offline" and entries:
            break
        await asyncio.sleep(0.05)
    assert stored.status == "offline"
    entry = entries[0]
    assert (entry.action, entry.actor, entry.details["status"]) == (
        "agent.status_set",
        "system",
        "offline",
    )
    assert "desktop" in entry.details["why"]
    # Back at the desk later: ready as usual, and the call comes.
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        await ws.send_json({"type": "set_status", "id": "r", "status": "ready"})
        offer = await until(ws, "offer")
        assert offer["interaction_id"] == interaction_id
    await api.server.close()
