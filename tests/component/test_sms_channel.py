"""SMS end to end through the daemon: a customer's text reaches the daemon as Twilio posts
it (signed, on the public URL), is routed to an agent, who answers from the desktop API;
the answer reaches Twilio's API (a loopback fake that speaks its HTTP), and the delivery
receipt Twilio sends back shows on the agent's desktop. STOP is honoured: the customer is
shown as opted out and nothing more is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contact_center.keys import DAEMON
from crm_store import customers
from crm_store.models import Interaction
from tests.component.api_fixtures import Api, ClientFactory, ServerFactory, start_api
from tests.component.test_routing_flow import request, until
from tests.fakes.twilio_api import FakeTwilio

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-1"
OUR_NUMBER = "+441632960001"
CUSTOMER = "+447700900123"
QUESTION = "How did we do? Reply with a number from 1 to 5."


@pytest.fixture
async def twilio() -> Any:
    async with FakeTwilio(ACCOUNT, TOKEN) as fake:
        yield fake


@pytest.fixture
async def sms_daemon(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
    twilio: FakeTwilio,
) -> Api:
    channels = {
        "sms": {
            "enabled": True,
            "queue": "sms",
            "account_sid": ACCOUNT,
            "auth_token": TOKEN,
            "from_number": OUR_NUMBER,
            "api_base_url": twilio.base_url,
            "csat_question": QUESTION,
        }
    }
    # Twilio calls the public URL; the test server listens on a loopback port behind it.
    web_section = {"host": "127.0.0.1", "port": 8080, "public_url": "http://cc.example.com"}
    return await start_api(
        tmp_path, aiohttp_server, aiohttp_client, channels=channels, web=web_section
    )


def sid(n: str) -> str:
    """A Twilio-shaped message id (SM + 32 hex digits)."""
    return "SM" + n.encode().hex().rjust(32, "0")


def inbound(sid: str, body: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "MessageSid": sid,
        "SmsSid": sid,
        "From": CUSTOMER,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


async def post(api: Api, twilio: FakeTwilio, path: str, fields: dict[str, str]) -> int:
    url = str(api.server.make_url(path))
    status, _, _ = await twilio.post_webhook(url, fields, signed_url="http://cc.example.com" + path)
    return status


async def test_a_text_conversation_with_a_delivery_receipt(
    sms_daemon: Api, twilio: FakeTwilio
) -> None:
    api = sms_daemon
    daemon = api.app[DAEMON]
    assert daemon.sessionmaker is not None
    async with daemon.sessionmaker.begin() as db:
        customer = await customers.create_customer(db, name="Li Na", phones=[CUSTOMER], region="GB")
    status = await (await (await api.login("supervisor")).get("/status")).json()
    assert "channel.sms" in str(status) and "Twilio" in str(status)
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        assert (await request(ws, "set_status", status="ready"))["ok"]
        assert (
            await post(api, twilio, "/webhooks/twilio/sms", inbound(sid("1"), "Parcel late")) == 200
        )
        # Twilio retries: the same message is stored once.
        assert (
            await post(api, twilio, "/webhooks/twilio/sms", inbound(sid("1"), "Parcel late")) == 200
        )
        offer = await until(ws, "offer")
        assert offer["channel"] == "sms" and offer["pop"]["customer"]["id"] == customer.id
        interaction_id = offer["interaction_id"]
        assert (await request(ws, "accept_offer", offer_id=offer["offer_id"]))["ok"]
        path = f"/api/v1/interactions/{interaction_id}/messages"
        listed = await (await agent.get(path)).json()
        assert [m["body"] for m in listed["messages"]] == ["Parcel late"]

        answer = await agent.post(path, {"body": "Sorry! It ships today."})
        assert answer.status == 202, await answer.text()
        sent = await until(ws, "message_status", interaction_id=interaction_id)
        assert sent["message"]["status"] == "sent", sent
        [sms] = twilio.sent
        assert (sms.to, sms.from_, sms.body) == (CUSTOMER, OUR_NUMBER, "Sorry! It ships today.")
        assert sms.status_callback == "http://cc.example.com/webhooks/twilio/status"

        receipt = {"MessageSid": sms.sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT}
        assert await post(api, twilio, "/webhooks/twilio/status", receipt) == 200
        delivered = await until(ws, "message_status", interaction_id=interaction_id)
        assert delivered["message"]["status"] == "delivered"

        # A late "sent" callback does not undo "delivered".
        late = {"MessageSid": sms.sid, "MessageStatus": "sent", "AccountSid": ACCOUNT}
        assert await post(api, twilio, "/webhooks/twilio/status", late) == 200
        listed = await (await agent.get(path)).json()
        assert [m["status"] for m in listed["messages"]] == ["received", "delivered"]

        # Closed: the customer is asked how it went, and a "5" is the contact's CSAT,
        # not a new conversation.
        done = await request(ws, "call_action", interaction_id=interaction_id, action="hangup")
        assert done["ok"], done

        async def asked() -> bool:
            return len(twilio.sent) == 2

        for _ in range(100):
            if await asked():
                break
            await asyncio.sleep(0.05)
        assert twilio.sent[1].body == QUESTION and twilio.sent[1].to == CUSTOMER
        assert await post(api, twilio, "/webhooks/twilio/sms", inbound(sid("5"), "5")) == 200
        listed = await (await agent.get(path)).json()
        assert [m["body"] for m in listed["messages"]][-1] == "5"
        found = await (await agent.get(f"/api/v1/interactions/{interaction_id}")).json()
        assert found["csat"] == 5
        # Not an answer to the question: a new conversation.
        assert (
            await post(api, twilio, "/webhooks/twilio/sms", inbound(sid("6"), "One more thing"))
            == 200
        )
        async with daemon.sessionmaker() as db:
            ids = (await db.scalars(select(Interaction.id).order_by(Interaction.id))).all()
        assert len(ids) == 2 and ids[0] == interaction_id  # the agent's wrap-up first


async def test_unsigned_webhooks_store_nothing_and_stop_is_honoured(
    sms_daemon: Api, twilio: FakeTwilio
) -> None:
    api = sms_daemon
    url = str(api.server.make_url("/webhooks/twilio/sms"))
    # Signed over the URL the daemon sees instead of the public one: refused.
    status, _, _ = await twilio.post_webhook(url, inbound(sid("x"), "hi"))
    assert status == 403
    status, _, _ = await twilio.post_webhook(url, inbound(sid("y"), "hi"), signature="")
    assert status == 403
    supervisor = await api.login("supervisor")
    assert (await supervisor.get("/api/v1/interactions/1")).status == 404  # nothing stored

    daemon = api.app[DAEMON]
    assert daemon.sessionmaker is not None
    async with daemon.sessionmaker.begin() as db:
        customer = await customers.create_customer(db, name="Li Na", phones=[CUSTOMER], region="GB")
    assert await post(api, twilio, "/webhooks/twilio/sms", inbound(sid("2"), "STOP")) == 200
    record = await (await supervisor.get(f"/api/v1/customers/{customer.id}")).json()
    assert record["opted_out"] == {"sms": [CUSTOMER]}  # shown on the customer
    # The STOP is on the conversation for the agent to see, and replies are refused.
    response = await supervisor.post("/api/v1/interactions/1/messages", {"body": "Hello?"})
    assert response.status == 409, await response.text()
    assert (await response.json())["error"]["id"] == "channel.opted_out"
    await asyncio.sleep(0.2)
    assert twilio.sent == []
    assert await post(api, twilio, "/webhooks/twilio/sms", inbound(sid("3"), "START")) == 200
    response = await supervisor.post("/api/v1/interactions/1/messages", {"body": "Welcome back"})
    assert response.status == 202, await response.text()
    record = await (await supervisor.get(f"/api/v1/customers/{customer.id}")).json()
    assert record["opted_out"] == {"sms": []}
