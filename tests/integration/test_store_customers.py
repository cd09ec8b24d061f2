"""Customers and contact points: any phone format, refusals that change nothing, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_store import audit, customers, interactions
from crm_store.actors import Actor
from crm_store.errors import Conflict, InvalidData, NotFound
from tests.integration.conftest import CountRows, Store

pytestmark = pytest.mark.integration

AGENT = Actor(None, "alex", "agent")


async def _zoe(store: Store, **extra: Any) -> int:
    fields: dict[str, Any] = {
        "name": "Zoë Martin",
        "company": "Northwind",
        "tier": "gold",
        "phones": ["+44 20 7946 0018"],
        "emails": ["Zoe.Martin@Example.COM"],
        "region": "GB",
        "actor": AGENT,
        **extra,
    }
    async with store.sessionmaker.begin() as session:
        customer = await customers.create_customer(session, **fields)
        return customer.id


async def test_phone_found_in_any_format(store: Store) -> None:
    customer_id = await _zoe(store)
    async with store.sessionmaker() as session:
        for raw in ("+442079460018", "020 7946 0018", "(020) 7946-0018", "0044 20 7946 0018"):
            found = await customers.find_customer_by_phone(session, raw, "GB")
            assert found is not None and found.id == customer_id, raw
        # A national number read in another region is another number.
        assert await customers.find_customer_by_phone(session, "020 7946 0018", "FR") is None
        assert await customers.find_customer_by_phone(session, "anonymous", "GB") is None


async def test_email_is_case_insensitive_and_contacts_are_normalised(store: Store) -> None:
    customer_id = await _zoe(store)
    async with store.sessionmaker() as session:
        found = await customers.find_customer_by_email(session, "ZOE.MARTIN@example.com")
        assert found is not None and found.id == customer_id
        customer = await customers.get_customer(session, customer_id)
        stored = {(cp.kind, cp.value, cp.raw) for cp in customer.contact_points}
        assert stored == {
            ("phone", "+442079460018", "+44 20 7946 0018"),
            ("email", "zoe.martin@example.com", "Zoe.Martin@Example.COM"),
        }


async def test_duplicate_contact_point_is_refused_and_nothing_changes(
    store: Store, count_rows: CountRows
) -> None:
    await _zoe(store)
    before = await count_rows()
    with pytest.raises(Conflict, match=r"\+442079460018 already belongs to customer"):
        async with store.sessionmaker.begin() as session:
            await customers.create_customer(
                session, name="Other", phones=["02079460018"], region="GB", actor=AGENT
            )
    assert await count_rows() == before
    # The same number written twice in one record is one contact point, not a conflict.
    async with store.sessionmaker.begin() as session:
        twice = await customers.create_customer(
            session, name="Twice", phones=["+447700900001", "07700 900001"], region="GB"
        )
        assert [cp.raw for cp in twice.contact_points] == ["+447700900001"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phones", ["not a number"], "phone"),
        ("emails", ["no-at-sign"], "email"),
        ("tier", "diamond", "tier"),
        ("name", "   ", "name"),
    ],
)
async def test_bad_data_is_refused_with_a_clear_error(
    store: Store, count_rows: CountRows, field: str, value: Any, message: str
) -> None:
    before = await count_rows()
    fields: dict[str, Any] = {"name": "Bad Data", "region": "GB", "actor": AGENT, field: value}
    with pytest.raises(InvalidData, match=message):
        async with store.sessionmaker.begin() as session:
            await customers.create_customer(session, **fields)
    assert await count_rows() == before


async def test_update_records_the_change_in_the_audit_log(store: Store) -> None:
    customer_id = await _zoe(store)
    supervisor = Actor(None, "sam", "supervisor")
    async with store.sessionmaker.begin() as session:
        updated = await customers.update_customer(
            session, customer_id, actor=supervisor, tier="platinum", notes="VIP"
        )
        assert (updated.tier, updated.notes) == ("platinum", "VIP")
    async with store.sessionmaker() as session:
        entries = await audit.list_entries(session, entity="customer", entity_id=customer_id)
    assert [(e.actor, e.action) for e in entries] == [
        ("sam", "customer.updated"),
        ("alex", "customer.created"),
    ]
    assert entries[0].details == {
        "tier": {"from": "gold", "to": "platinum"},
        "notes": {"from": None, "to": "VIP"},
    }


async def test_unknown_customer_is_not_found(store: Store, count_rows: CountRows) -> None:
    before = await count_rows()
    async with store.sessionmaker.begin() as session:
        with pytest.raises(NotFound):
            await customers.get_customer(session, 4242)
        with pytest.raises(NotFound):
            await customers.update_customer(session, 4242, actor=AGENT, notes="x")
        with pytest.raises(NotFound):
            await customers.add_contact_point(
                session, 4242, "phone", "+447700900002", region="GB", actor=AGENT
            )
        with pytest.raises(NotFound):
            await customers.customer_timeline(session, 4242)
    assert await count_rows() == before


async def test_add_and_remove_contact_points(store: Store) -> None:
    customer_id = await _zoe(store)
    other_id = await _zoe(store, name="Raj", phones=["+447700900123"], emails=[])
    async with store.sessionmaker.begin() as session:
        cp = await customers.add_contact_point(
            session, customer_id, "chat", "Zoe_M", region="GB", label="web", actor=AGENT
        )
        assert cp.kind == "chat"
    with pytest.raises(Conflict):
        async with store.sessionmaker.begin() as session:
            await customers.add_contact_point(
                session, other_id, "phone", "020 7946 0018", region="GB", actor=AGENT
            )
    async with store.sessionmaker.begin() as session:
        await customers.remove_contact_point(session, customer_id, cp.id, actor=AGENT)
    async with store.sessionmaker() as session:
        customer = await customers.get_customer(session, customer_id)
        assert "chat" not in {c.kind for c in customer.contact_points}
        with pytest.raises(NotFound):
            await customers.remove_contact_point(session, other_id, cp.id, actor=AGENT)


async def test_search_by_name_company_and_phone_fragment(store: Store) -> None:
    zoe = await _zoe(store)
    raj = await _zoe(store, name="Raj Patel", company="Contoso", phones=["07700 900123"], emails=[])
    async with store.sessionmaker() as session:

        async def ids(query: str) -> list[int]:
            found = await customers.search_customers(session, query, region="GB")
            return [c.id for c in found]

        assert await ids("patel") == [raj]
        assert await ids("northwind") == [zoe]
        assert await ids("020 7946 0018") == [zoe]
        assert await ids("900123") == [raj]
        assert await ids("100%") == []
        assert sorted(await ids("")) == sorted([zoe, raj])


async def test_timeline_newest_first_across_channels_with_key_paging(store: Store) -> None:
    customer_id = await _zoe(store)
    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    channels = ["voice", "email", "sms", "chat", "voice", "email", "sms"]
    async with store.sessionmaker.begin() as session:
        for i, channel in enumerate(channels):
            await interactions.record_interaction(
                session,
                channel=channel,
                customer_id=customer_id,
                started_at=start + timedelta(hours=i),
            )
    async with store.sessionmaker() as session:
        page1 = await customers.customer_timeline(session, customer_id, limit=3)
        page2 = await customers.customer_timeline(
            session, customer_id, limit=3, before_id=page1[-1].id
        )
        page3 = await customers.customer_timeline(
            session, customer_id, limit=3, before_id=page2[-1].id
        )
    seen = [ix.channel for ix in page1 + page2 + page3]
    assert seen == list(reversed(channels))
    assert [ix.started_at for ix in page1 + page2 + page3] == sorted(
        (ix.started_at for ix in page1 + page2 + page3), reverse=True
    )
    async with store.sessionmaker() as session:
        assert await customers.count_customers(session) == 1
