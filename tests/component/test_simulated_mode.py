"""`pbx.mode: simulated`, the demo's PBX: the simulated Asterisk on loopback behind the
daemon's real Asterisk adapter, worked through the same API and WebSocket as the desktop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.pytest_plugin import AiohttpClient, AiohttpServer
from sqlalchemy import select

from contact_center.keys import DAEMON
from crm_store import customers
from crm_store.models import Interaction
from tests.component.api_fixtures import FLOW, Api, start_api
from tests.component.test_routing_flow import request, until


async def eventually(check: Callable[[], Any], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def simulated(tmp_path: Path, server: Any, client: Any, **simulator: Any) -> Api:
    # A flow without the bundled one's opening hours: the tests run at any time of day.
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    api = await start_api(
        tmp_path,
        server,
        client,
        pbx={"mode": "simulated", "simulator": simulator},
        ivr={"flows_dir": str(flows), "default_flow": "main"},
    )
    sessionmaker = api.app[DAEMON].sessionmaker
    async with sessionmaker.begin() as db:
        await customers.create_customer(
            db, name="Zoë Martin", tier="gold", phones=["+44 20 7946 0018"], region="GB"
        )
    return api


async def test_a_call_through_the_ivr_rings_the_agent_accept_answers_it_over_ami(
    tmp_path: Path, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, fast_hasher: None
) -> None:
    api = await simulated(tmp_path, aiohttp_server, aiohttp_client)
    daemon = api.app[DAEMON]
    status = await (await api.anonymous()).get("/status")
    components = (await status.json())["components"]
    assert components["pbx"]["detail"].startswith("simulated Asterisk on loopback")
    assert components["pbx.ami"]["state"] == "up" and components["pbx.agi"]["state"] == "up"

    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with agent.client.ws_connect("/ws/agent") as ws:
        assert (await request(ws, "set_status", status="ready"))["ok"]
        placed = await supervisor.post(
            "/api/v1/simulator/calls",
            json={"caller": "020 7946 0018", "flow": "main", "keys": ["2"]},
        )
        assert placed.status == 201, await placed.text()
        body = await placed.json()
        interaction_id = body["interaction_id"]
        offer = await until(ws, "offer")
        assert offer["interaction_id"] == interaction_id
        assert offer["pop"]["customer"]["name"] == "Zoë Martin"
        # The timeline is the customer's past, not the call being offered.
        assert interaction_id not in [i["id"] for i in offer["pop"]["interactions"]]
        # The call reached the daemon as a real one would: a Uniqueid from the PBX.
        call = daemon.telephony.calls[interaction_id]
        assert call.channel.startswith("PJSIP/trunk-")
        # Accept is the phone's answer button here: the answer comes back over AMI.
        accepted = await request(ws, "accept_offer", offer_id=interaction_id)
        assert accepted["ok"], accepted
        await until(ws, "contact", interaction_id=interaction_id, state="talking")
        reply = await request(ws, "call_action", interaction_id=interaction_id, action="hold")
        assert reply["ok"], reply
        await until(ws, "contact", interaction_id=interaction_id, state="held")
        assert (await request(ws, "call_action", interaction_id=interaction_id, action="unhold"))[
            "ok"
        ]
        await until(ws, "contact", interaction_id=interaction_id, state="talking")
        assert (await request(ws, "call_action", interaction_id=interaction_id, action="hangup"))[
            "ok"
        ]
        await until(ws, "contact", interaction_id=interaction_id, state="wrap_up")
    await daemon.routing.writer.flush()
    async with daemon.sessionmaker() as db:
        stored = await db.get(Interaction, interaction_id)
    assert stored is not None
    assert stored.external_id == call.uniqueid
    assert stored.ivr_path and stored.ivr_path[0] == "welcome"
    assert stored.answered_at is not None and stored.ended_at is not None


async def test_straight_into_a_queue_and_the_caller_hangs_up_while_waiting(
    tmp_path: Path, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, fast_hasher: None
) -> None:
    api = await simulated(tmp_path, aiohttp_server, aiohttp_client)
    daemon = api.app[DAEMON]
    supervisor = await api.login("supervisor")
    placed = await supervisor.post(
        "/api/v1/simulator/calls",
        json={"caller": "+447700900123", "queue": "billing", "ivr_inputs": {"account": "1"}},
    )
    assert placed.status == 201, await placed.text()
    interaction_id = (await placed.json())["interaction_id"]
    await eventually(lambda: interaction_id in daemon.routing.contacts)
    info = daemon.routing.contacts[interaction_id]
    assert (info.queue, info.state, info.ivr_inputs["account"]) == ("billing", "waiting", "1")
    hung = await supervisor.post(f"/api/v1/simulator/calls/{interaction_id}/hangup")
    assert hung.status == 200, await hung.text()
    await eventually(lambda: interaction_id not in daemon.routing.contacts)
    await daemon.routing.writer.flush()
    async with daemon.sessionmaker() as db:
        stored = await db.get(Interaction, interaction_id)
    assert stored is not None and stored.ended_at is not None and stored.answered_at is None
    # A hang-up for a call that is gone is a clear error, not a crash.
    again = await supervisor.post(f"/api/v1/simulator/calls/{interaction_id}/hangup")
    assert again.status == 409, await again.text()
    assert (await again.json())["error"]["id"] == "telephony.no_call"


async def test_the_simulator_places_calls_by_itself_when_configured(
    tmp_path: Path, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, fast_hasher: None
) -> None:
    api = await simulated(
        tmp_path,
        aiohttp_server,
        aiohttp_client,
        calls_per_hour=36_000,  # ten a second
        unknown_share=0.5,
        patience_seconds=0.3,
    )
    daemon = api.app[DAEMON]

    async def stored() -> list[Interaction]:
        async with daemon.sessionmaker() as db:
            return list(await db.scalars(select(Interaction)))

    for _ in range(100):
        if len(await stored()) >= 5:
            break
        await asyncio.sleep(0.05)
    rows = await stored()
    assert len(rows) >= 5
    assert {r.channel for r in rows} == {"voice"}
    assert all(r.external_id for r in rows)
    # Known customers and unknown numbers both call.
    assert any(r.customer_id for r in rows) or any(r.customer_id is None for r in rows)
    # Nobody is ready: impatient callers give up, and their interactions are closed.
    await asyncio.sleep(1.0)
    await daemon.routing.writer.flush()
    assert any(r.ended_at is not None for r in await stored())
