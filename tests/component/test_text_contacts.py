"""A text contact through the real app: a customer's message opens a routed contact, the
agent gets the offer with the pop, accepts, reads the conversation, answers; the answer
is sent by the channel's sender and its state reaches the desktop; a second message of
the customer reaches the agent's desktop live; closing ends the contact.

The channel adapter here is a recording one (the real ones have their own tests:
tests/component/test_sms_*.py, tests/integration/test_email_*.py, test_webchat_*.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.messaging.intake import MessageIntake
from adapters.messaging.model import InboundMessage, OutboundMessage, SendResult, TemporaryFailure
from contact_center import text_channels
from contact_center.keys import DAEMON
from crm_store import customers, opt_outs
from tests.component.api_fixtures import Api, ClientFactory, ServerFactory, start_api
from tests.component.test_routing_flow import request, until


class RecordingAdapter:
    """A channel whose provider is this list."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.fail_next = 0
        self.sender = self
        self.stopped = False

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.fail_next:
            self.fail_next -= 1
            raise TemporaryFailure("provider busy")
        self.sent.append(message)
        return SendResult(f"SM{message.message_id}")

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
async def sms_api(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Api, RecordingAdapter]:
    adapter = RecordingAdapter()

    async def start(_daemon: Any, _intake: MessageIntake) -> RecordingAdapter:
        return adapter

    monkeypatch.setitem(text_channels.ADAPTERS, "sms", start)
    channels = {
        "sms": {
            "enabled": True,
            "queue": "sms",
            "account_sid": "AC" + "0" * 32,
            "auth_token": "token",
            "from_number": "+447700900000",
        }
    }
    return await start_api(tmp_path, aiohttp_server, aiohttp_client, channels=channels), adapter


def sms(sid: str, body: str, number: str = "+447700900123") -> InboundMessage:
    return InboundMessage("sms", sid, number, body, time.time(), recipient="+447700900000")


async def test_an_sms_conversation_end_to_end(sms_api: tuple[Api, RecordingAdapter]) -> None:
    api, adapter = sms_api
    daemon = api.app[DAEMON]
    assert daemon.sessionmaker is not None and daemon.messages is not None
    async with daemon.sessionmaker.begin() as db:
        customer = await customers.create_customer(
            db, name="Li Na", phones=["+447700900123"], region="GB", tier="silver"
        )
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        assert (await request(ws, "set_status", status="ready"))["ok"]
        first = await daemon.messages.receive(sms("SM-in-1", "Where is my parcel?"))
        offer = await until(ws, "offer", interaction_id=first.interaction_id)
        assert offer["channel"] == "sms" and offer["pop"]["customer"]["id"] == customer.id
        assert (await request(ws, "accept_offer", offer_id=offer["offer_id"]))["ok"]
        contact = await until(ws, "contact", state="talking")
        assert contact["actions"] == ["hangup", "reply"]
        listed = await (
            await agent.get(f"/api/v1/interactions/{first.interaction_id}/messages")
        ).json()
        assert [m["body"] for m in listed["messages"]] == ["Where is my parcel?"]

        # The customer writes again: the agent's desktop gets it at once.
        again = await daemon.messages.receive(sms("SM-in-2", "It was due Monday."))
        assert again.interaction_id == first.interaction_id and not again.new_contact
        pushed = await until(ws, "message", interaction_id=first.interaction_id)
        assert pushed["message"]["body"] == "It was due Monday."

        # The agent answers; the provider is busy once, then takes it.
        adapter.fail_next = 1
        response = await agent.post(
            f"/api/v1/interactions/{first.interaction_id}/messages", {"body": "It left today."}
        )
        assert response.status == 202, await response.text()
        queued = await response.json()
        assert queued["status"] == "queued" and queued["direction"] == "outbound"
        retry = await until(ws, "message_status", interaction_id=first.interaction_id)
        assert (
            retry["message"]["status"] == "queued" and retry["message"]["error"] == "provider busy"
        )
        sent = await until(ws, "message_status", interaction_id=first.interaction_id)
        assert sent["message"]["status"] == "sent", sent
        assert [(m.recipient, m.body) for m in adapter.sent] == [
            ("+447700900123", "It left today.")
        ]

        # Closing ends the contact; the next message opens a new one.
        done = await request(
            ws, "call_action", interaction_id=first.interaction_id, action="hangup"
        )
        assert done["ok"], done
        await until(ws, "contact", state="wrap_up")
        later = await daemon.messages.receive(sms("SM-in-3", "Thanks!"))
        assert later.new_contact and later.interaction_id != first.interaction_id


async def test_replies_are_refused_with_a_reason(sms_api: tuple[Api, RecordingAdapter]) -> None:
    api, adapter = sms_api
    daemon = api.app[DAEMON]
    assert daemon.sessionmaker is not None and daemon.messages is not None
    got = await daemon.messages.receive(sms("SM-x", "hello"))
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    path = f"/api/v1/interactions/{got.interaction_id}/messages"
    # Not the agent's contact (nobody accepted it).
    assert (await agent.post(path, {"body": "hi"})).status in (403, 404)
    # Empty, too long, unknown fields.
    for bad in ({"body": ""}, {"body": "x" * 100_001}, {"body": "hi", "extra": 1}):
        response = await supervisor.post(path, bad)
        assert response.status == 400, (bad, await response.text())
    async with daemon.sessionmaker.begin() as db:
        await opt_outs.set_opted_out(db, "sms", "+447700900123", True, source="STOP")
    response = await supervisor.post(path, {"body": "hi"})
    assert response.status == 409 and (await response.json())["error"]["id"] == "channel.opted_out"
    listed = await (await supervisor.get(path)).json()
    assert [m["direction"] for m in listed["messages"]] == ["inbound"]  # nothing was queued
    await asyncio.sleep(0.1)
    assert adapter.sent == []


async def test_a_channel_that_is_not_running_says_so(api: Api) -> None:
    """The shipped config has no text channel on: answering one is a clear 409."""
    daemon = api.app[DAEMON]
    assert daemon.sessionmaker is not None
    from crm_store import interactions

    async with daemon.sessionmaker.begin() as db:
        ix = await interactions.record_interaction(
            db, channel="email", address="ana@example.com", queue="email"
        )
    supervisor = await api.login("supervisor")
    response = await supervisor.post(f"/api/v1/interactions/{ix.id}/messages", {"body": "hi"})
    assert (
        response.status == 409 and (await response.json())["error"]["id"] == "channel.not_running"
    )
    status = await (await supervisor.get("/status")).json()
    assert "channel.email" in str(status)
