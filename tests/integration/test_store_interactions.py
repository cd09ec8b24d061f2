"""Interactions and messages: recording, updates, idempotent provider ids, refusals."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from crm_store import customers, interactions, users
from crm_store.errors import Conflict, InvalidData, NotFound
from tests.integration.conftest import CountRows, Store

pytestmark = pytest.mark.integration


async def test_record_update_and_read_back(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        customer = await customers.create_customer(
            session, name="Ana", phones=["+34600000001"], region="ES"
        )
        agent = await users.create_user(
            session, username="alex", role="agent", password="agent-pass-1"
        )
        ix = await interactions.record_interaction(
            session,
            channel="voice",
            customer_id=customer.id,
            external_id="1763798633.12",
            address="+34600000001",
            queue="support",
            ivr_path=["welcome", "menu", "queue"],
            ivr_inputs={"menu": "2", "account": "12345"},
        )
    answered = datetime(2026, 11, 22, 9, 0, 5, tzinfo=UTC)
    async with store.sessionmaker.begin() as session:
        await interactions.update_interaction(
            session,
            ix.id,
            agent_id=agent.id,
            answered_at=answered,
            disposition="resolved",
            notes="ok",
            csat=5,
            routing={"queue": "support", "step": 0},
        )
    async with store.sessionmaker() as session:
        found = await interactions.find_interaction_by_external_id(
            session, "voice", "1763798633.12"
        )
        assert found is not None and found.id == ix.id
        assert found.answered_at == answered
        assert found.ivr_inputs == {"menu": "2", "account": "12345"}
        assert found.ivr_path == ["welcome", "menu", "queue"]
        assert (found.agent_id, found.disposition, found.csat) == (agent.id, "resolved", 5)
        assert [i.id for i in await interactions.list_open_interactions(session, "voice")] == [
            ix.id
        ]


async def test_bad_values_are_refused_and_nothing_changes(
    store: Store, count_rows: CountRows
) -> None:
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(session, channel="chat")
    before = await count_rows()
    cases = [
        dict(channel="fax"),
        dict(channel="voice", direction="sideways"),
        dict(channel="voice", customer_id=999),
    ]
    for fields in cases:
        with pytest.raises((InvalidData, NotFound)):
            async with store.sessionmaker.begin() as session:
                await interactions.record_interaction(session, **fields)  # type: ignore[arg-type]
    for update in (dict(csat=9), dict(agent_id=999), dict(colour="blue")):
        with pytest.raises((InvalidData, NotFound)):
            async with store.sessionmaker.begin() as session:
                await interactions.update_interaction(session, ix.id, **update)
    with pytest.raises(NotFound):
        async with store.sessionmaker.begin() as session:
            await interactions.update_interaction(session, 999, notes="x")
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        unchanged = await interactions.get_interaction(session, ix.id)
        assert unchanged.csat is None and unchanged.agent_id is None


async def test_messages_are_idempotent_by_provider_id(store: Store, count_rows: CountRows) -> None:
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(session, channel="sms", address="+447700900123")
        await interactions.add_message(
            session, ix.id, channel="sms", direction="inbound", body="Hi", provider_id="SM1"
        )
        await interactions.add_message(
            session, ix.id, channel="sms", direction="outbound", body="Hello!", provider_id="SM2"
        )
    before = await count_rows()
    # A webhook delivered twice stores the message once.
    async with store.sessionmaker.begin() as session:
        again = await interactions.add_message(
            session, ix.id, channel="sms", direction="inbound", body="Hi", provider_id="SM1"
        )
        assert again.body == "Hi"
    with pytest.raises(NotFound):
        async with store.sessionmaker.begin() as session:
            await interactions.add_message(
                session, 999, channel="sms", direction="inbound", body="lost"
            )
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        bodies = [m.body for m in await interactions.list_messages(session, ix.id)]
    assert bodies == ["Hi", "Hello!"]


async def _customer_and_agent(store: Store) -> tuple[int, int]:
    async with store.sessionmaker.begin() as session:
        customer = await customers.create_customer(
            session, name="Ana", phones=["+34600000001"], region="ES"
        )
        agent = await users.create_user(
            session, username="alex", role="agent", password="agent-pass-1"
        )
        return customer.id, agent.id


async def test_record_fills_defaults_and_trims_text(store: Store) -> None:
    before = datetime.now(UTC)
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(
            session,
            channel="email",
            external_id="  <abc@mail.example>  ",
            address=" ana@example.com ",
            queue="  ",
            ivr_path=("welcome", "menu"),
        )
    after = datetime.now(UTC)
    async with store.sessionmaker() as session:
        stored = await interactions.get_interaction(session, ix.id)
    assert (stored.channel, stored.direction) == ("email", "inbound")
    assert (stored.external_id, stored.address, stored.queue) == (
        "<abc@mail.example>",
        "ana@example.com",
        None,
    )
    assert stored.ivr_path == ["welcome", "menu"]
    assert stored.customer_id is None and stored.agent_id is None
    assert stored.ended_at is None and stored.csat is None
    assert stored.started_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= stored.started_at <= after + timedelta(seconds=1)


async def test_times_are_kept_in_utc_whatever_zone_they_come_in(store: Store) -> None:
    madrid = timezone(timedelta(hours=1))
    started = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=madrid)
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(
            session, channel="voice", direction="outbound", started_at=started
        )
        await interactions.update_interaction(
            session, ix.id, ended_at=started + timedelta(minutes=3)
        )
    async with store.sessionmaker() as session:
        stored = await interactions.get_interaction(session, ix.id)
    assert stored.direction == "outbound"
    assert stored.started_at == started
    assert stored.started_at.utcoffset() == timedelta(0)
    assert stored.started_at.hour == 9 and stored.started_at.microsecond == 123456
    assert stored.ended_at == started + timedelta(minutes=3)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"channel": "fax"}, InvalidData, "channel 'fax' is not one of voice, email, sms, chat"),
        ({"channel": "Voice"}, InvalidData, "channel 'Voice'"),
        ({"channel": "sms", "direction": "in"}, InvalidData, "direction 'in' is not one of"),
        ({"channel": "voice", "customer_id": 999}, NotFound, "no customer with id 999"),
        ({"channel": "voice", "customer_id": "1"}, InvalidData, "customers id must be an integer"),
        ({"channel": "voice", "customer_id": True}, InvalidData, "must be an integer"),
        (
            {"channel": "voice", "started_at": datetime(2026, 1, 1, 9, 0)},
            InvalidData,
            "started_at must be timezone-aware",
        ),
        ({"channel": "voice", "started_at": "2026-01-01"}, InvalidData, "must be a datetime"),
        ({"channel": "voice", "ivr_path": "welcome"}, InvalidData, "ivr_path must be a list"),
        ({"channel": "voice", "ivr_inputs": ["1"]}, InvalidData, "ivr_inputs must be a mapping"),
        ({"channel": "voice", "queue": "q" * 65}, InvalidData, "queue is longer than 64"),
        ({"channel": "voice", "external_id": 12}, InvalidData, "external_id must be text"),
        ({"channel": "voice", "address": "\x00"}, InvalidData, "address must not contain NUL"),
    ],
)
async def test_a_bad_new_interaction_is_refused_clearly_and_nothing_changes(
    store: Store,
    count_rows: CountRows,
    fields: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    await _customer_and_agent(store)
    before = await count_rows()
    with pytest.raises(error, match=re.escape(message)):
        async with store.sessionmaker.begin() as session:
            await interactions.record_interaction(session, **fields)
    assert await count_rows() == before


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"csat": 0}, InvalidData, "csat must be 1..5, not 0"),
        ({"csat": 6}, InvalidData, "csat must be 1..5"),
        ({"csat": True}, InvalidData, "csat must be an integer"),
        ({"csat": "5"}, InvalidData, "csat must be an integer"),
        ({"agent_id": 999}, NotFound, "no user with id 999"),
        ({"customer_id": 999}, NotFound, "no customer with id 999"),
        ({"answered_at": datetime(2026, 1, 1)}, InvalidData, "answered_at must be timezone"),
        ({"routing": "queue"}, InvalidData, "routing must be a mapping"),
        ({"disposition": "d" * 65}, InvalidData, "disposition is longer than 64"),
        ({"notes": "a\x00b"}, InvalidData, "notes must not contain NUL characters"),
        ({"started_at": None}, InvalidData, "unknown interaction field(s) started_at"),
        ({"channel": "sms"}, InvalidData, "unknown interaction field(s) channel"),
        # A good change next to a bad one is not half-applied.
        ({"notes": "fine", "csat": 9}, InvalidData, "csat"),
        ({"notes": "fine", "agent_id": 999}, NotFound, "no user"),
    ],
)
async def test_a_bad_update_is_refused_clearly_and_nothing_changes(
    store: Store,
    count_rows: CountRows,
    fields: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    customer_id, _agent_id = await _customer_and_agent(store)
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(
            session, channel="voice", customer_id=customer_id, queue="support"
        )
    before = await count_rows()
    with pytest.raises(error, match=re.escape(message)):
        async with store.sessionmaker.begin() as session:
            await interactions.update_interaction(session, ix.id, **fields)
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        stored = await interactions.get_interaction(session, ix.id)
    assert (stored.customer_id, stored.notes, stored.csat, stored.queue) == (
        customer_id,
        None,
        None,
        "support",
    )


async def test_update_can_clear_what_it_set(store: Store) -> None:
    customer_id, agent_id = await _customer_and_agent(store)
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(session, channel="chat")
        updated = await interactions.update_interaction(
            session, ix.id, customer_id=customer_id, agent_id=agent_id, csat=1, notes=" hi "
        )
        assert (updated.customer_id, updated.agent_id, updated.csat, updated.notes) == (
            customer_id,
            agent_id,
            1,
            "hi",
        )
    async with store.sessionmaker.begin() as session:
        await interactions.update_interaction(
            session, ix.id, customer_id=None, agent_id=None, csat=None, notes="   "
        )
    async with store.sessionmaker() as session:
        stored = await interactions.get_interaction(session, ix.id)
    assert (stored.customer_id, stored.agent_id, stored.csat, stored.notes) == (
        None,
        None,
        None,
        None,
    )


async def test_get_interaction_of_an_unknown_id_is_not_found(store: Store) -> None:
    async with store.sessionmaker() as session:
        with pytest.raises(NotFound, match="no interaction with id 42") as caught:
            await interactions.get_interaction(session, 42)
    assert caught.value.error_id == "store.not_found"


async def test_external_ids_are_scoped_by_channel_and_the_newest_wins(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        first = await interactions.record_interaction(
            session, channel="voice", external_id="1763798633.12"
        )
        # Asterisk reuses nothing, but a re-offered call can reuse its Linkedid.
        second = await interactions.record_interaction(
            session, channel="voice", external_id="1763798633.12"
        )
        chat = await interactions.record_interaction(
            session, channel="chat", external_id="1763798633.12"
        )
    async with store.sessionmaker() as session:
        voice = await interactions.find_interaction_by_external_id(
            session, "voice", "1763798633.12"
        )
        assert voice is not None and voice.id == second.id != first.id
        other = await interactions.find_interaction_by_external_id(session, "chat", "1763798633.12")
        assert other is not None and other.id == chat.id
        assert await interactions.find_interaction_by_external_id(session, "sms", "x") is None
        assert await interactions.find_interaction_by_external_id(session, "voice", "\x00") is None
        assert (
            await interactions.find_interaction_by_external_id(session, "voice", "1763798633.1")
            is None
        )


async def test_open_interactions_are_the_unended_oldest_first(store: Store) -> None:
    t0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    async with store.sessionmaker.begin() as session:
        late_voice = await interactions.record_interaction(
            session, channel="voice", started_at=t0 + timedelta(minutes=5)
        )
        early_chat = await interactions.record_interaction(session, channel="chat", started_at=t0)
        ended = await interactions.record_interaction(
            session, channel="voice", started_at=t0 - timedelta(minutes=5)
        )
        await interactions.update_interaction(session, ended.id, ended_at=t0 + timedelta(minutes=1))
        early_voice = await interactions.record_interaction(
            session, channel="voice", started_at=t0 + timedelta(minutes=1)
        )
    async with store.sessionmaker() as session:
        all_open = await interactions.list_open_interactions(session)
        assert [ix.id for ix in all_open] == [early_chat.id, early_voice.id, late_voice.id]
        voice = await interactions.list_open_interactions(session, "voice")
        assert [ix.id for ix in voice] == [early_voice.id, late_voice.id]
        assert await interactions.list_open_interactions(session, "sms") == []
        with pytest.raises(InvalidData, match="channel 'fax'"):
            await interactions.list_open_interactions(session, "fax")


async def test_messages_keep_their_fields_and_order(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(session, channel="email")
        other = await interactions.record_interaction(session, channel="email")
        first = await interactions.add_message(
            session,
            ix.id,
            channel="email",
            direction="inbound",
            sender="  Ana <ana@example.com> ",
            subject=" Refund ",
            body="  Hello,\n\nI want a refund.\n",
            provider_id=" <m1@mail.example> ",
        )
        await interactions.add_message(
            session, other.id, channel="email", direction="inbound", body="elsewhere"
        )
        reply = await interactions.add_message(
            session, ix.id, channel="email", direction="outbound", body="Done."
        )
    async with store.sessionmaker() as session:
        stored = await interactions.list_messages(session, ix.id)
        assert [m.id for m in stored] == [first.id, reply.id]
        message = stored[0]
        assert (message.sender, message.subject, message.provider_id) == (
            "Ana <ana@example.com>",
            "Refund",
            "<m1@mail.example>",
        )
        # The body is kept exactly as received, whitespace included.
        assert message.body == "  Hello,\n\nI want a refund.\n"
        assert message.interaction_id == ix.id and message.created_at.tzinfo is not None
        assert (reply.sender, reply.subject, reply.provider_id) == (None, None, None)
        assert await interactions.list_messages(session, 999) == []


async def test_messages_without_provider_id_are_never_merged(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(session, channel="chat")
        for _ in range(2):
            await interactions.add_message(
                session, ix.id, channel="chat", direction="inbound", body="?"
            )
        # The same provider id on another channel is another message.
        await interactions.add_message(
            session, ix.id, channel="chat", direction="inbound", body="a", provider_id="X1"
        )
        await interactions.add_message(
            session, ix.id, channel="sms", direction="inbound", body="b", provider_id="X1"
        )
    async with store.sessionmaker() as session:
        assert [m.body for m in await interactions.list_messages(session, ix.id)] == [
            "?",
            "?",
            "a",
            "b",
        ]


async def test_a_provider_id_stored_on_another_interaction_is_refused(
    store: Store, count_rows: CountRows
) -> None:
    async with store.sessionmaker.begin() as session:
        first = await interactions.record_interaction(session, channel="sms")
        second = await interactions.record_interaction(session, channel="sms")
        await interactions.add_message(
            session, first.id, channel="sms", direction="inbound", body="Hi", provider_id="SM1"
        )
    before = await count_rows()
    with pytest.raises(
        Conflict, match=f"sms message SM1 is already stored on interaction {first.id}"
    ):
        async with store.sessionmaker.begin() as session:
            await interactions.add_message(
                session, second.id, channel="sms", direction="inbound", body="Hi", provider_id="SM1"
            )
    # A known provider id does not hide that the interaction does not exist.
    with pytest.raises(NotFound, match="no interaction with id 999"):
        async with store.sessionmaker.begin() as session:
            await interactions.add_message(
                session, 999, channel="sms", direction="inbound", body="Hi", provider_id="SM1"
            )
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        assert await interactions.list_messages(session, second.id) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"channel": "fax"}, "channel 'fax' is not one of"),
        ({"direction": "both"}, "direction 'both' is not one of inbound, outbound"),
        ({"body": None}, "message body must be text"),
        ({"body": b"bytes"}, "message body must be text"),
        ({"body": "x" * 1_000_001}, "message body is longer than 1000000"),
        ({"sender": "s" * 321}, "sender is longer than 320"),
        ({"subject": 7}, "subject must be text"),
        ({"provider_id": "p" * 256}, "provider_id is longer than 255"),
        ({"body": "a\x00b"}, "message body must not contain NUL characters"),
        ({"subject": "a\x00b"}, "subject must not contain NUL characters"),
    ],
)
async def test_a_bad_message_is_refused_clearly_and_nothing_changes(
    store: Store, count_rows: CountRows, fields: dict[str, Any], message: str
) -> None:
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(session, channel="sms")
    before = await count_rows()
    given: dict[str, Any] = {"channel": "sms", "direction": "inbound", "body": "ok", **fields}
    with pytest.raises(InvalidData, match=re.escape(message)):
        async with store.sessionmaker.begin() as session:
            await interactions.add_message(session, ix.id, **given)
    assert await count_rows() == before
