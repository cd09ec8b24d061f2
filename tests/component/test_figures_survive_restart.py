"""Today's queue and agent figures come from the contact-event log: a daemon restart on
the same store changes none of them (issue 9, "the life cycle recorded")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store.models import ContactEvent
from tests.component.api_fixtures import Api, config_for, start_api
from tests.component.test_routing_flow import _call, request, until


async def _figures(api_or_client: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    queues = (await (await api_or_client.get("/api/v1/queues")).json())["queues"]
    agents = (await (await api_or_client.get("/api/v1/agents")).json())["agents"]
    return (
        {q["name"]: q for q in queues},
        {a["username"]: a for a in agents},
    )


async def _a_morning(api: Api) -> int:
    """A call answered, held, hung up and wrapped up; a second one declined, then
    abandoned. Returns the agent's user id."""
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with agent.client.ws_connect("/ws/agent") as ws:
        assert (await request(ws, "set_status", status="ready"))["ok"]
        answered = await _call(supervisor, "020 7946 0018")
        await until(ws, "offer", interaction_id=answered)
        assert (await request(ws, "accept_offer", offer_id=answered))["ok"]
        await until(ws, "contact", state="talking")
        for action in ("hold", "unhold", "hangup"):
            done = await request(ws, "call_action", interaction_id=answered, action=action)
            assert done["ok"], done
            if action == "hold":
                await asyncio.sleep(0.02)  # a hold of some length: its seconds are counted
        await until(ws, "contact", state="wrap_up")
        assert (await request(ws, "finish_wrap_up"))["ok"]
        declined = await _call(supervisor, "+447700900555")
        await until(ws, "offer", interaction_id=declined)
        assert (await request(ws, "reject_offer", offer_id=declined))["ok"]
        await until(ws, "offer_ended", offer_id=declined)
        hung = await supervisor.post(f"/api/v1/simulator/calls/{declined}/hangup")
        assert hung.status == 200
    return api.user_ids["agent"]


def _without_status_times(agent: dict[str, Any]) -> dict[str, Any]:
    # Time in the current status grows with the clock, restart or not: compared apart.
    return {k: v for k, v in agent["today"].items() if k != "time_in_status_seconds"}


async def test_a_restart_changes_no_figure_of_today(
    tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, fast_hasher: None
) -> None:
    first = await start_api(tmp_path, aiohttp_server, aiohttp_client)
    await _a_morning(first)
    daemon = first.app[DAEMON]
    assert daemon.routing is not None and daemon.sessionmaker is not None
    await daemon.routing.writer.flush()
    queues, agents = await _figures(await first.login("supervisor"))
    support = queues["support"]["windows"]["today"]
    assert (support["offered"], support["answered"], support["short_abandoned"]) == (2, 1, 1)
    assert support["aht_seconds"] is not None and support["service_level"] == 1.0
    assert agents["agent"]["today"]["handled"] == {"voice": 1}
    assert agents["agent"]["today"]["hold_seconds"] > 0
    async with daemon.sessionmaker() as session:
        kinds = (await session.scalars(select(ContactEvent.kind).order_by(ContactEvent.id))).all()
    # The life cycle as written, in order (the declined call ends the list).
    assert kinds[:1] == ["status"] and kinds[-4:] == [
        "queued",
        "offered",
        "offer_declined",
        "abandoned",
    ]
    assert {"answered", "held", "unheld", "ended", "wrap_up_ended"} <= set(kinds)
    await first.server.close()

    app = make_app(config_for(tmp_path))
    server = await aiohttp_server(app)
    try:
        again = Api(app, server, aiohttp_client, first.user_ids)
        queues_after, agents_after = await _figures(await again.login("supervisor"))
        for name, queue in queues.items():
            assert queues_after[name]["windows"] == queue["windows"], name
            for key in ("service_level", "asa_seconds", "abandoned", "waiting"):
                assert queues_after[name][key] == queue[key], (name, key)
        for username, agent in agents.items():
            after = agents_after[username]
            assert _without_status_times(after) == _without_status_times(agent), username
            before_times = agent["today"]["time_in_status_seconds"]
            after_times = after["today"]["time_in_status_seconds"]
            assert set(after_times) == set(before_times), username
            for status, seconds in before_times.items():
                assert after_times[status] >= seconds, (username, status)
    finally:
        await server.close()
