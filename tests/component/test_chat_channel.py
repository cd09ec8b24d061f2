"""Web chat end to end through the daemon: a visitor's chat (the widget's socket) is
routed to a skilled agent with the pop, the visitor is told the agent joined, both see
each other type, the agent's answer reaches the visitor, the visitor's stars end the
contact and feed the service-request loop; a visitor who comes back gets the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from contact_center.keys import DAEMON
from crm_store import customers, service_requests
from crm_store.actors import SYSTEM
from crm_store.models import Interaction
from tests.component.api_fixtures import Api, ClientFactory, ServerFactory, start_api
from tests.component.test_routing_flow import request, until


@pytest.fixture
async def chat_api(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory, fast_hasher: None
) -> Api:
    channels = {
        "chat": {
            "enabled": True,
            "queue": "chat",
            "topics": {"billing": {"billing": 3}, "support": {"support": 2}},
        }
    }
    return await start_api(tmp_path, aiohttp_server, aiohttp_client, channels=channels)


async def frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        message = await ws.receive_json(timeout=10)
        if message["type"] == kind:
            return message


async def test_a_chat_from_visitor_to_agent_and_back(chat_api: Api) -> None:
    api = chat_api
    daemon = api.app[DAEMON]
    assert daemon.sessionmaker is not None
    async with daemon.sessionmaker.begin() as db:
        ann = await customers.create_customer(
            db, name="Ann Lee", emails=["ann@example.com"], region="GB"
        )
        sr = await service_requests.create_service_request(
            db, customer_id=ann.id, title="Refund", actor=SYSTEM
        )
        await service_requests.assign(db, sr.id, api.user_ids["agent"], actor=SYSTEM)
        await service_requests.start(db, sr.id, actor=SYSTEM)
        await service_requests.request_feedback(db, sr.id, actor=SYSTEM)
    status = await (await (await api.login("supervisor")).get("/status")).json()
    assert "channel.chat" in str(status) and "/chat/widget.js" in str(status)

    agent = await api.login("agent")
    visitor = await api.anonymous()
    async with agent.client.ws_connect("/ws/agent") as desk, visitor.ws_connect("/ws/chat") as chat:
        assert (await request(desk, "set_status", status="ready"))["ok"]
        await chat.send_json(
            {"type": "start", "name": "Ann", "email": "ann@example.com", "topic": "billing"}
        )
        started = await frame(chat, "started")
        await chat.send_json({"type": "message", "id": "w-1", "text": "My invoice is wrong"})
        offer = await until(desk, "offer")
        assert offer["channel"] == "chat" and offer["address_name"] == "Ann"
        assert offer["pop"]["customer"]["id"] == ann.id  # found by the pre-chat email
        # The queue asks support 2; the topic adds billing 3.
        assert offer["explanation"]["skills_matched"] == {"billing": 5, "support": 5}
        interaction_id = offer["interaction_id"]
        assert (await request(desk, "accept_offer", offer_id=offer["offer_id"]))["ok"]
        joined = await frame(chat, "agent_joined")
        assert joined["agent_name"]

        # Typing, both ways.
        assert (await request(desk, "typing", interaction_id=interaction_id))["ok"]
        assert (await frame(chat, "typing"))["agent_name"] == joined["agent_name"]
        await chat.send_json({"type": "typing"})
        await until(desk, "customer_typing", interaction_id=interaction_id)

        path = f"/api/v1/interactions/{interaction_id}/messages"
        assert (await agent.post(path, {"body": "Let me check <b>that</b>."})).status == 202
        answer = await frame(chat, "message")
        assert (answer["from"], answer["text"]) == ("agent", "Let me check <b>that</b>.")
        delivered = await until(desk, "message_status", interaction_id=interaction_id)
        assert delivered["message"]["status"] in ("sent", "delivered")

        # The visitor reloads: the history comes back with the resume token.
        async with visitor.ws_connect("/ws/chat") as again:
            await again.send_json({"type": "resume", "token": started["token"]})
            texts = []
            while len(texts) < 2:
                got = await again.receive_json(timeout=10)
                if got["type"] == "message":
                    texts.append(got["text"])
            assert texts == ["My invoice is wrong", "Let me check <b>that</b>."]

        await chat.send_json({"type": "end", "csat": 4})
        await until(desk, "contact", state="wrap_up")
    async with daemon.sessionmaker() as db:
        ix = await db.get(Interaction, interaction_id)
        assert ix is not None and ix.csat == 4 and ix.customer_id == ann.id
        moved = await service_requests.get_service_request(db, sr.id)
    assert moved.status == "archived"  # 4 stars: the loop closes the request


async def test_the_chat_pages_are_served(chat_api: Api) -> None:
    client = await chat_api.anonymous()
    for path, kind in (("/chat/widget.js", "javascript"), ("/chat/demo", "html")):
        response = await client.get(path)
        assert response.status == 200 and kind in response.content_type, path
        assert "default-src" in response.headers["Content-Security-Policy"]
