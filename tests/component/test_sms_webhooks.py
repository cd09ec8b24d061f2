"""Twilio's SMS webhooks on a real loopback server, posted and signed as Twilio does
(tests/fakes/twilio_api.py signs with the twilio library's own RequestValidator)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from adapters.messaging.model import InboundMessage, Received
from adapters.sms.webhooks import (
    EMPTY_TWIML,
    INBOUND_PATH,
    MAX_FORM_BYTES,
    STATUS_PATH,
    WebhookStats,
    sms_routes,
)
from contact_center.config import SmsChannelConfig
from contact_center.web.auth import auth_middleware
from contact_center.web.errors import error_middleware
from contact_center.web.routes import PUBLIC, RouteSpec, add_routes
from crm_store.errors import InvalidData
from tests.fakes.twilio_api import FakeTwilio

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-1"
OUR_NUMBER = "+441632960001"
CUSTOMER = "+447700900123"
NOW = 1_764_633_600.0


@dataclass
class RecordingSink:
    """The intake as the webhooks see it: idempotent on (channel, provider_id)."""

    messages: list[InboundMessage] = field(default_factory=list)
    refuse: bool = False

    async def receive(self, message: InboundMessage) -> Received:
        if self.refuse:
            raise InvalidData("the store refuses this message")
        for number, kept in enumerate(self.messages, start=1):
            if (kept.channel, kept.provider_id) == (message.channel, message.provider_id):
                return Received(1, number, new_contact=False, duplicate=True)
        self.messages.append(message)
        return Received(1, len(self.messages), new_contact=len(self.messages) == 1)


@dataclass
class RecordingStatuses:
    updates: list[tuple[str, str, str | None, float]] = field(default_factory=list)

    async def message_status(
        self, provider_id: str, status: str, error: str | None, at: float
    ) -> None:
        self.updates.append((provider_id, status, error, at))


@dataclass
class MemoryOptOuts:
    changes: list[tuple[str, str, bool, float, str]] = field(default_factory=list)

    async def set_opted_out(
        self, channel: str, address: str, opted_out: bool, at: float, word: str
    ) -> None:
        self.changes.append((channel, address, opted_out, at, word))

    async def is_opted_out(self, channel: str, address: str) -> bool:
        states = [c[2] for c in self.changes if (c[0], c[1]) == (channel, address)]
        return bool(states) and states[-1]


@dataclass
class Webhooks:
    """The webhook routes on a loopback server, with what they stored."""

    server: TestServer
    twilio: FakeTwilio
    sink: RecordingSink
    statuses: RecordingStatuses
    opt_outs: MemoryOptOuts
    stats: WebhookStats

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def inbound(self, fields: dict[str, str], **kwargs: Any) -> tuple[int, str, str]:
        return await self.twilio.post_webhook(self.url(INBOUND_PATH), fields, **kwargs)


Start = Callable[..., Awaitable[Webhooks]]


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(ACCOUNT, TOKEN) as fake:
        yield fake


@pytest.fixture
def start(aiohttp_server: Callable[..., Awaitable[TestServer]], twilio: FakeTwilio) -> Start:
    """Start the webhooks, as the daemon wires them: public routes behind its middlewares."""

    async def started(public_url: str | None = None, max_body_chars: int = 1600) -> Webhooks:
        config = SmsChannelConfig(
            enabled=True,
            account_sid=ACCOUNT,
            auth_token=SecretStr(TOKEN),
            from_number=OUR_NUMBER,
            max_body_chars=max_body_chars,
        )
        sink, statuses, opt_outs, stats = (
            RecordingSink(),
            RecordingStatuses(),
            MemoryOptOuts(),
            WebhookStats(),
        )
        routes = sms_routes(
            sink, statuses, opt_outs, config, public_url, stats=stats, clock=lambda: NOW
        )
        app = web.Application(middlewares=[error_middleware, auth_middleware])
        add_routes(
            app,
            [RouteSpec(r.method, r.path, r.handler, PUBLIC, "Twilio webhook") for r in routes],
        )
        server = await aiohttp_server(app)
        return Webhooks(server, twilio, sink, statuses, opt_outs, stats)

    return started


def sms(
    body: str = "Hello, my order is late", sid: str = "SM" + "a" * 32, **extra: str
) -> dict[str, str]:
    """An incoming-message webhook's fields, as Twilio posts them."""
    return {
        "ToCountry": "GB",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": OUR_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": CUSTOMER,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def error_id(text: str) -> str:
    return str(json.loads(text)["error"]["id"])


async def test_a_signed_message_is_stored_and_answered_with_empty_twiml(start: Start) -> None:
    hooks = await start()
    status, content_type, text = await hooks.inbound(sms())
    assert (status, content_type, text) == (200, "text/xml", EMPTY_TWIML)
    [message] = hooks.sink.messages
    assert message.channel == "sms" and message.provider_id == "SM" + "a" * 32
    assert (message.sender, message.recipient) == (CUSTOMER, OUR_NUMBER)
    assert message.body == "Hello, my order is late" and message.received_at == NOW
    assert message.thread_refs == () and message.attachments == ()
    assert message.queue == "sms"  # channels.sms.queue
    assert hooks.stats.inbound == 1 and hooks.opt_outs.changes == []


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("", id="missing"),
        pytest.param("bm90IGEgc2lnbmF0dXJl", id="garbage"),
    ],
)
async def test_an_unsigned_message_is_refused_and_nothing_stored(
    start: Start, signature: str
) -> None:
    hooks = await start()
    status, content_type, text = await hooks.inbound(sms(), signature=signature)
    assert (status, content_type, error_id(text)) == (403, "application/json", "webhook.signature")
    assert hooks.sink.messages == [] and hooks.stats.bad_signature == 1


async def test_a_signature_made_with_another_token_is_refused(start: Start) -> None:
    hooks = await start()
    url = hooks.url(INBOUND_PATH)
    forged = FakeTwilio(ACCOUNT, "someone-elses-token").sign(url, sms())
    status, _, text = await hooks.inbound(sms(), signature=forged)
    assert (status, error_id(text)) == (403, "webhook.signature")
    assert hooks.sink.messages == []


async def test_a_signed_form_changed_on_the_way_is_refused(start: Start) -> None:
    hooks = await start()
    signature = hooks.twilio.sign(hooks.url(INBOUND_PATH), sms())
    changed = sms(body="Send the refund to account 666")
    status, _, _ = await hooks.inbound(changed, signature=signature)
    assert status == 403 and hooks.sink.messages == []


async def test_a_redelivered_message_is_stored_once_and_answered_both_times(
    start: Start,
) -> None:
    hooks = await start()
    first = await hooks.inbound(sms())
    again = await hooks.inbound(sms())
    assert first[0] == again[0] == 200
    assert len(hooks.sink.messages) == 1
    assert (hooks.stats.inbound, hooks.stats.duplicates) == (2, 1)


async def test_behind_a_tls_proxy_the_public_url_is_what_is_signed(start: Start) -> None:
    hooks = await start(public_url="https://cc.example.com")
    public = "https://cc.example.com" + INBOUND_PATH
    assert (await hooks.inbound(sms(), signed_url=public))[0] == 200
    # The URL the daemon itself sees is not the one Twilio called.
    internal = hooks.url(INBOUND_PATH)
    assert internal.startswith("http://127.0.0.1:")
    status, _, text = await hooks.inbound(sms(sid="SM" + "b" * 32), signed_url=internal)
    assert (status, error_id(text)) == (403, "webhook.signature")
    assert [m.provider_id for m in hooks.sink.messages] == ["SM" + "a" * 32]


async def test_behind_a_proxy_the_query_string_and_default_port_are_signed_too(
    start: Start,
) -> None:
    hooks = await start(public_url="https://cc.example.com/")
    query = "?source=twilio&x=%2Fa"
    url = hooks.url(INBOUND_PATH) + query
    # Twilio signs the URL as configured; with or without :443 both validate.
    with_port = "https://cc.example.com:443" + INBOUND_PATH + query
    assert (await hooks.twilio.post_webhook(url, sms(), signed_url=with_port))[0] == 200
    without_query = "https://cc.example.com" + INBOUND_PATH
    second = sms(sid="SM" + "c" * 32)
    assert (await hooks.twilio.post_webhook(url, second, signed_url=without_query))[0] == 403
    assert len(hooks.sink.messages) == 1


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param({"From": ""}, "From: missing", id="no-from"),
        pytest.param({"MessageSid": ""}, "MessageSid: missing", id="no-sid"),
        pytest.param({"MessageSid": "SM123"}, "MessageSid: not a Twilio id", id="bad-sid"),
        pytest.param({"From": "whatsapp:+447700900123"}, "From:", id="not-a-phone"),
        pytest.param({"Body": "x" * 21}, "Body: 21 characters, over the 20", id="too-long"),
        pytest.param({"NumMedia": "11"}, "NumMedia: expected 0..10", id="too-many-media"),
        pytest.param({"NumMedia": "1"}, "MediaUrl0: missing", id="media-without-url"),
    ],
)
async def test_a_signed_but_bad_form_is_refused_and_nothing_stored(
    start: Start, fields: dict[str, str], problem: str
) -> None:
    hooks = await start(max_body_chars=20)
    status, _, text = await hooks.inbound(sms(body="short", **fields))
    assert (status, error_id(text)) == (400, "request.invalid")
    assert problem in json.loads(text)["error"]["message"]
    assert hooks.sink.messages == [] and hooks.opt_outs.changes == []
    assert hooks.stats.bad_form == 1


async def test_a_body_that_is_not_a_form_is_refused(start: Start) -> None:
    hooks = await start()
    headers = {"X-Twilio-Signature": "c2ln"}
    url = hooks.url(INBOUND_PATH)
    async with ClientSession() as session:
        async with session.post(url, json=sms(), headers=headers) as response:
            assert response.status == 400
            assert error_id(await response.text()) == "request.invalid"
        form_headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        for raw in (b"Body=%FF%FE&From=%2B44", b"Body=\xff\xfe"):
            async with session.post(url, data=raw, headers=form_headers) as response:
                assert response.status == 400
                assert "not UTF-8" in await response.text()
        huge = {"Body": "x" * (MAX_FORM_BYTES + 1)}
        async with session.post(url, data=huge) as response:
            # No signature: refused before the body is read.
            assert response.status == 403
        async with session.post(url, data=huge, headers=headers) as response:
            assert response.status == 413
            assert error_id(await response.text()) == "request.too_large"
    assert hooks.sink.messages == []


async def test_stop_opts_the_customer_out_and_is_still_stored(start: Start) -> None:
    hooks = await start()
    assert (await hooks.inbound(sms(body="  sToP \n", sid="SM" + "1" * 32)))[0] == 200
    assert hooks.opt_outs.changes == [("sms", CUSTOMER, True, NOW, "STOP")]
    assert await hooks.opt_outs.is_opted_out("sms", CUSTOMER)
    # The agent sees it in the conversation.
    assert [m.body for m in hooks.sink.messages] == ["  sToP \n"]

    assert (await hooks.inbound(sms(body="START", sid="SM" + "2" * 32)))[0] == 200
    assert not await hooks.opt_outs.is_opted_out("sms", CUSTOMER)
    assert hooks.opt_outs.changes[-1] == ("sms", CUSTOMER, False, NOW, "START")
    assert len(hooks.sink.messages) == 2


@pytest.mark.parametrize("body", ["stop please", "HELP", "info", "Please cancel my order"])
async def test_other_messages_change_no_opt_out(start: Start, body: str) -> None:
    hooks = await start()
    assert (await hooks.inbound(sms(body=body)))[0] == 200
    assert hooks.opt_outs.changes == []
    assert [m.body for m in hooks.sink.messages] == [body]


async def test_twilios_own_opt_out_type_is_honoured(start: Start) -> None:
    # Advanced Opt-Out: the account added "ARRET"; Twilio says it is a STOP.
    hooks = await start()
    assert (await hooks.inbound(sms(body="Arret", OptOutType="STOP")))[0] == 200
    assert hooks.opt_outs.changes == [("sms", CUSTOMER, True, NOW, "ARRET")]


async def test_an_opt_out_holds_even_when_the_message_cannot_be_stored(start: Start) -> None:
    hooks = await start()
    hooks.sink.refuse = True
    status, _, text = await hooks.inbound(sms(body="STOP"))
    assert (status, error_id(text)) == (400, "store.invalid_data")
    assert await hooks.opt_outs.is_opted_out("sms", CUSTOMER)


async def test_mms_media_are_kept_as_references(start: Start) -> None:
    hooks = await start()
    base = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/MM{'d' * 32}/Media"
    fields = sms(
        body="",
        sid="MM" + "d" * 32,
        NumMedia="2",
        MediaUrl0=f"{base}/ME{'e' * 32}",
        MediaContentType0="image/jpeg",
        MediaUrl1=f"{base}/ME{'f' * 32}",
        MediaContentType1="application/pdf",
    )
    assert (await hooks.inbound(fields))[0] == 200
    [message] = hooks.sink.messages
    assert message.body == ""
    assert [(a.ref, a.content_type, a.size) for a in message.attachments] == [
        (f"{base}/ME{'e' * 32}", "image/jpeg", 0),
        (f"{base}/ME{'f' * 32}", "application/pdf", 0),
    ]
    assert [a.filename for a in message.attachments] == [f"ME{'e' * 32}.jpg", f"ME{'f' * 32}.pdf"]


async def test_a_signed_status_callback_records_the_status(start: Start) -> None:
    hooks = await start()
    url = hooks.url(STATUS_PATH)
    sid = "SM" + "9" * 32
    assert await hooks.twilio.send_status_callback(url, sid, "delivered") == 200
    assert await hooks.twilio.send_status_callback(url, sid, "undelivered", "30003") == 200
    assert hooks.statuses.updates == [
        (sid, "delivered", None, NOW),
        (sid, "undelivered", "30003", NOW),
    ]
    assert hooks.stats.statuses == 2


async def test_a_bad_or_unsigned_status_callback_changes_nothing(start: Start) -> None:
    hooks = await start()
    url = hooks.url(STATUS_PATH)
    fields = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered"}
    assert (await hooks.twilio.post_webhook(url, fields, signature=""))[0] == 403
    bad = {**fields, "MessageStatus": "teleported"}
    status, _, text = await hooks.twilio.post_webhook(url, bad)
    assert (status, error_id(text)) == (400, "request.invalid")
    assert hooks.statuses.updates == []


def test_the_webhooks_are_never_served_without_an_auth_token() -> None:
    config = SmsChannelConfig(enabled=True, account_sid=ACCOUNT)
    with pytest.raises(ValueError, match="auth_token is empty"):
        sms_routes(RecordingSink(), RecordingStatuses(), MemoryOptOuts(), config, None)
