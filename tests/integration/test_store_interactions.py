"""Interactions and messages: recording, updates, idempotent provider ids, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_store import customers, interactions, users
from crm_store.errors import InvalidData, NotFound
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
