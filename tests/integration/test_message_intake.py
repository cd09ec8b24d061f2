"""Text channels' core on SQLite and PostgreSQL: a customer's message stored once, joined
to its conversation or opening a routed contact; agents' messages sent from the store,
retried, failed with the reason, never lost."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from adapters.desk_channels import DESK_CHANNELS
from adapters.messaging.delivery import MessageDelivery, queue_reply, reply_references
from adapters.messaging.events import MessageReceived
from adapters.messaging.intake import MessageIntake, TextChannelRoute
from adapters.messaging.model import (
    Attachment,
    InboundMessage,
    OutboundMessage,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
)
from crm_store import customers, interactions, opt_outs
from crm_store.errors import InvalidData
from crm_store.models import Interaction, Message
from routing.events import ContactQueued
from tests.integration.conftest import Store

pytestmark = pytest.mark.integration

SPECS = {spec.name: spec for spec in DESK_CHANNELS}
ROUTES = {name: TextChannelRoute(queue=name) for name in SPECS}


class Published(list[Any]):
    def publish(self, event: Any) -> None:
        self.append(event)


def intake(store: Store, bus: Published, **kw: Any) -> MessageIntake:
    return MessageIntake(
        store.sessionmaker, bus, specs=SPECS, routes=ROUTES, region="GB", clock=lambda: 100.0, **kw
    )


def email(provider_id: str, *refs: str, **kw: Any) -> InboundMessage:
    fields: dict[str, Any] = {
        "channel": "email",
        "provider_id": provider_id,
        "sender": "ana@example.com",
        "sender_name": "Ana Pérez",
        "body": "Hello, my order has not arrived.",
        "subject": "Order 1234",
        "received_at": 1_764_000_000.0,
        "thread_refs": refs,
        "recipient": "support@example.com",
    }
    fields.update(kw)
    return InboundMessage(**fields)


async def close(store: Store, interaction_id: int) -> None:
    async with store.sessionmaker.begin() as session:
        await interactions.update_interaction(
            session, interaction_id, ended_at=datetime.now(UTC), end_cause="closed"
        )


async def test_a_new_email_opens_a_routed_contact_for_its_customer(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        ana = await customers.create_customer(
            session, name="Ana", emails=["ana@example.com"], region="GB", tier="gold"
        )
    bus = Published()
    got = await intake(store, bus).receive(
        email("m1@example.com", attachments=(Attachment("a.pdf", "application/pdf", 10, "x/1"),))
    )
    assert got.new_contact and not got.duplicate
    [queued] = bus
    assert isinstance(queued, ContactQueued)
    assert (queued.interaction_id, queued.channel, queued.queue) == (
        got.interaction_id,
        "email",
        "email",
    )
    assert (queued.customer_id, queued.tier, queued.address) == (ana.id, "gold", "ana@example.com")
    async with store.sessionmaker() as session:
        ix = await session.get(Interaction, got.interaction_id)
        msg = await session.get(Message, got.message_id)
    assert ix is not None and msg is not None
    assert (ix.customer_id, ix.address, ix.address_name, ix.external_id) == (
        ana.id,
        "ana@example.com",
        "Ana Pérez",
        "m1@example.com",
    )
    assert (msg.direction, msg.status, msg.thread_key, msg.subject) == (
        "inbound",
        "received",
        "m1@example.com",
        "Order 1234",
    )
    assert msg.attachments == [
        {
            "filename": "a.pdf",
            "content_type": "application/pdf",
            "size": 10,
            "ref": "x/1",
            "dropped": None,
        }
    ]


async def test_the_same_message_twice_is_stored_once(store: Store) -> None:
    bus = Published()
    sink = intake(store, bus)
    first = await sink.receive(email("dup@example.com"))
    again = await sink.receive(email("dup@example.com"))
    assert again.duplicate and (again.interaction_id, again.message_id) == (
        first.interaction_id,
        first.message_id,
    )
    assert len(bus) == 1  # routed once
    async with store.sessionmaker() as session:
        count = len((await session.scalars(select(Message))).all())
    assert count == 1


async def test_a_reply_joins_its_open_conversation_by_references(store: Store) -> None:
    bus = Published()
    sink = intake(store, bus)
    first = await sink.receive(email("root@example.com"))
    reply = await sink.receive(email("r2@example.com", "root@example.com", "root@example.com"))
    assert not reply.new_contact and reply.interaction_id == first.interaction_id
    assert isinstance(bus[-1], MessageReceived)
    # A reply to the reply: still the same conversation.
    third = await sink.receive(email("r3@example.com", "r2@example.com", "root@example.com"))
    assert third.interaction_id == first.interaction_id


async def test_a_reply_that_arrives_before_its_parent_keeps_one_conversation(
    store: Store,
) -> None:
    """Mailboxes do not keep order: a reply taken in before the mails it answers used to
    open a second contact for the same thread when the earlier mails came."""
    bus = Published()
    sink = intake(store, bus)
    # c answers b, which answered the root a: In-Reply-To first, then References.
    c = await sink.receive(
        email("c@example.com", "b@example.com", "a@example.com", "b@example.com")
    )
    a = await sink.receive(email("a@example.com"))
    b = await sink.receive(email("b@example.com", "a@example.com", "a@example.com"))
    assert c.new_contact and not a.new_contact and not b.new_contact
    assert a.interaction_id == b.interaction_id == c.interaction_id


async def test_a_reply_after_the_conversation_closed_opens_a_new_contact_in_the_thread(
    store: Store,
) -> None:
    bus = Published()
    sink = intake(store, bus)
    first = await sink.receive(email("t1@example.com"))
    await close(store, first.interaction_id)
    later = await sink.receive(email("t2@example.com", "t1@example.com"))
    assert later.new_contact and later.interaction_id != first.interaction_id
    # The next reply joins the new, open contact, not the closed one.
    third = await sink.receive(email("t3@example.com", "t1@example.com"))
    assert third.interaction_id == later.interaction_id and not third.new_contact


async def test_a_reply_without_headers_joins_by_its_token(store: Store) -> None:
    bus = Published()
    tokens: dict[str, int] = {}
    sink = intake(store, bus, read_token=tokens.get)
    first = await sink.receive(email("k1@example.com"))
    tokens["tok"] = first.interaction_id
    joined = await sink.receive(email("k2@example.com", thread_token="tok"))
    assert joined.interaction_id == first.interaction_id and not joined.new_contact
    forged = await sink.receive(email("k3@example.com", thread_token="forged"))
    assert forged.new_contact


async def test_sms_one_open_conversation_per_number(store: Store) -> None:
    bus = Published()
    sink = intake(store, bus)

    def sms(sid: str, number: str = "+447700900123") -> InboundMessage:
        return InboundMessage("sms", sid, number, "hi", 1_764_000_000.0)

    a = await sink.receive(sms("SM1"))
    b = await sink.receive(sms("SM2"))
    other = await sink.receive(sms("SM3", "+447700900999"))
    assert a.interaction_id == b.interaction_id != other.interaction_id
    await close(store, a.interaction_id)
    c = await sink.receive(sms("SM4"))
    assert c.new_contact and c.interaction_id not in (a.interaction_id, other.interaction_id)


async def test_concurrent_messages_of_one_conversation_open_one_contact(store: Store) -> None:
    bus = Published()
    sink = intake(store, bus)
    got = await asyncio.gather(
        *(
            sink.receive(
                InboundMessage("chat", f"f{n}", "visitor:c1", "hi", 1.0, thread_refs=("c1",))
            )
            for n in range(8)
        )
    )
    assert len({r.interaction_id for r in got}) == 1
    assert sum(r.new_contact for r in got) == 1


async def test_bad_messages_are_refused_and_store_nothing(store: Store) -> None:
    bus = Published()
    sink = intake(store, bus)
    with pytest.raises(InvalidData, match="not running"):
        await sink.receive(replace(email("x1"), channel="fax"))
    with pytest.raises(InvalidData, match="NUL"):
        await sink.receive(email("x2", body="bad\x00body"))
    async with store.sessionmaker() as session:
        assert (await session.scalars(select(Interaction))).all() == []
    assert bus == []


class Sender:
    def __init__(self, *outcomes: SendResult | Exception) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        outcome = self.outcomes.pop(0) if self.outcomes else SendResult("P-ok")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def _contact_with_reply(store: Store, channel: str = "email") -> tuple[int, int]:
    sink = intake(store, Published())
    got = await sink.receive(
        email("in-1@example.com", "older@example.com", "older@example.com")
        if channel == "email"
        else InboundMessage(channel, "SMin", "+447700900123", "hi", 1.0)
    )
    async with store.sessionmaker.begin() as session:
        msg = await queue_reply(
            session,
            got.interaction_id,
            body="We are on it.",
            author_id=None,
            provider_id="out-1@example.com" if channel == "email" else None,
        )
    return got.interaction_id, msg.id


async def test_a_reply_is_sent_with_its_thread_and_recorded(store: Store) -> None:
    _interaction_id, message_id = await _contact_with_reply(store)
    sender, bus = Sender(SendResult("out-1@example.com")), Published()
    delivery = MessageDelivery(store.sessionmaker, bus, {"email": sender})
    await delivery.deliver_due()
    [out] = sender.sent
    assert (out.recipient, out.subject, out.own_provider_id) == (
        "ana@example.com",
        "Order 1234",
        "out-1@example.com",
    )
    assert out.in_reply_to == "in-1@example.com"
    assert out.references == ("older@example.com", "in-1@example.com")
    assert [(e.message_id, e.status) for e in bus] == [(message_id, "sent")]
    async with store.sessionmaker() as session:
        row = await session.get(Message, message_id)
    assert row is not None and (row.status, row.attempts, row.next_attempt_at) == ("sent", 1, None)
    await delivery.deliver_due()
    assert len(sender.sent) == 1  # sent once


async def test_a_temporary_failure_is_retried_then_sent(store: Store) -> None:
    _, _message_id = await _contact_with_reply(store)
    now = [time.time()]
    sender, bus = Sender(TemporaryFailure("451 try later"), SendResult("x")), Published()
    delivery = MessageDelivery(store.sessionmaker, bus, {"email": sender}, clock=lambda: now[0])
    wait = await delivery.deliver_due()
    assert [e.status for e in bus] == ["queued"] and bus[0].error == "451 try later"
    assert 0 < wait <= 2.0  # the first back-off
    await delivery.deliver_due()
    assert len(sender.sent) == 1  # not yet due
    now[0] += 2.5
    await delivery.deliver_due()
    assert [e.status for e in bus] == ["queued", "sent"]
    assert [m.attempt for m in sender.sent] == [1, 2]


async def test_a_permanent_failure_or_too_many_tries_fails_with_the_reason(store: Store) -> None:
    _, message_id = await _contact_with_reply(store)
    now = [time.time()]
    sender, bus = Sender(*[TemporaryFailure("down")] * 3), Published()
    delivery = MessageDelivery(
        store.sessionmaker, bus, {"email": sender}, backoff=(1.0, 1.0), clock=lambda: now[0]
    )
    for _ in range(4):
        await delivery.deliver_due()
        now[0] += 1.5
    assert [e.status for e in bus] == ["queued", "queued", "failed"]
    async with store.sessionmaker() as session:
        row = await session.get(Message, message_id)
    assert row is not None and (row.status, row.last_error) == ("failed", "down")

    _, second = await _contact_with_reply(store, "sms")
    refusing, bus2 = Sender(PermanentFailure("21211 invalid 'To' number")), Published()
    await MessageDelivery(store.sessionmaker, bus2, {"sms": refusing}).deliver_due()
    assert [(e.message_id, e.status, e.error) for e in bus2] == [
        (second, "failed", "21211 invalid 'To' number")
    ]


async def test_a_claimed_message_whose_daemon_died_is_sent_after_its_lease(store: Store) -> None:
    _, message_id = await _contact_with_reply(store)
    now = [time.time()]

    class Hangs:
        async def send(self, message: OutboundMessage) -> SendResult:
            await asyncio.sleep(3600)
            raise AssertionError

    dying = MessageDelivery(
        store.sessionmaker, Published(), {"email": Hangs()}, lease_seconds=60, clock=lambda: now[0]
    )
    task = asyncio.create_task(dying.deliver_due())
    await asyncio.sleep(0.3)
    task.cancel()  # the daemon is gone mid-send
    sender = Sender()
    later = MessageDelivery(
        store.sessionmaker, Published(), {"email": sender}, clock=lambda: now[0]
    )
    await later.deliver_due()
    assert sender.sent == []  # still leased
    now[0] += 61
    await later.deliver_due()
    assert [m.message_id for m in sender.sent] == [message_id]


async def test_channels_not_running_here_are_left_queued(store: Store) -> None:
    _, message_id = await _contact_with_reply(store)
    sender = Sender()
    await MessageDelivery(store.sessionmaker, Published(), {"sms": sender}).deliver_due()
    async with store.sessionmaker() as session:
        row = await session.get(Message, message_id)
    assert row is not None and (row.status, row.attempts) == ("queued", 0)


async def test_opt_outs(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        await opt_outs.set_opted_out(session, "sms", "+447700900123", True, source="STOP")
        await opt_outs.set_opted_out(session, "sms", "+447700900123", True, source="STOP")
    async with store.sessionmaker() as session:
        assert await opt_outs.is_opted_out(session, "sms", "+447700900123")
        assert not await opt_outs.is_opted_out(session, "voice", "+447700900123")
        assert await opt_outs.opted_out_among(session, "sms", ["+447700900123", "+1"]) == {
            "+447700900123"
        }
    async with store.sessionmaker.begin() as session:
        await opt_outs.set_opted_out(session, "sms", "+447700900123", False, source="START")
    async with store.sessionmaker() as session:
        assert not await opt_outs.is_opted_out(session, "sms", "+447700900123")
    with pytest.raises(InvalidData):
        async with store.sessionmaker.begin() as session:
            await opt_outs.set_opted_out(session, "pigeon", "x", True)


def test_reply_references() -> None:
    assert reply_references(["b", "a", "b"], "c") == ["a", "b", "c"]
    assert reply_references([], "c") == ["c"]
    assert reply_references(["b"], None) == ["b"]


def test_quoted() -> None:
    from adapters.messaging.delivery import quoted

    when = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)
    assert quoted("Hello\n\nthere\n", "Ana", when) == (
        "On 2026-12-01 09:05 UTC, Ana wrote:\n> Hello\n>\n> there\n"
    )


async def test_a_reply_queued_while_the_loop_looks_is_sent_at_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wake-up that came while the loop read the store used to be cleared and lost: the
    reply then waited out the idle tick (30 s)."""
    import adapters.messaging.delivery as delivery_module

    interaction_id, _first = await _contact_with_reply(store)
    sender = Sender()
    delivery = MessageDelivery(store.sessionmaker, Published(), {"email": sender}, idle_seconds=30)
    real = delivery_module.messages.next_due_at
    queued_once: list[int] = []

    async def next_due_at_then_a_reply(session: Any, channels: Any) -> Any:
        found = await real(session, channels)
        if not queued_once:
            async with store.sessionmaker.begin() as other:
                row = await queue_reply(other, interaction_id, body="one more", author_id=None)
                queued_once.append(row.id)
            delivery.wake()
        return found

    monkeypatch.setattr(delivery_module.messages, "next_due_at", next_due_at_then_a_reply)
    delivery.start()
    try:
        for _ in range(100):  # 5 s at most; the idle tick is 30 s
            if len(sender.sent) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await delivery.stop()
    assert [m.message_id for m in sender.sent][-1] == queued_once[0]
