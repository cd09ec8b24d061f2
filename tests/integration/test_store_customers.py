"""Customers and contact points: any phone format, refusals that change nothing, audit."""

from __future__ import annotations

import re
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


async def _audit_actions(store: Store, customer_id: int) -> list[tuple[str, str]]:
    async with store.sessionmaker() as session:
        entries = await audit.list_entries(session, entity="customer", entity_id=customer_id)
    return [(e.actor, e.action) for e in entries]


@pytest.mark.parametrize(
    "raw",
    [
        "+44 20 7946 0958",
        "+442079460958",
        "020 7946 0958",
        "0044 20 7946 0958",
        "+44 (0)20 7946 0958",
        "tel:+44-20-7946-0958",
        "  020-7946-0958  ",
    ],
)
async def test_a_number_stored_nationally_is_found_in_any_format(store: Store, raw: str) -> None:
    customer_id = await _zoe(store, phones=["020 7946 0958"], emails=[])
    async with store.sessionmaker() as session:
        found = await customers.find_customer_by_phone(session, raw, "GB")
        assert found is not None
        assert found.id == customer_id
        # The contact points come loaded with the customer.
        assert [(cp.kind, cp.value) for cp in found.contact_points] == [("phone", "+442079460958")]
        via_contact = await customers.find_customer_by_contact(session, "phone", raw, "GB")
        assert via_contact is not None and via_contact.id == customer_id


async def test_phone_lookups_that_match_nothing_return_none(store: Store) -> None:
    await _zoe(store)
    async with store.sessionmaker() as session:
        for raw in ("", "   ", "anonymous", "+44 20 7946 0019", "12", "unknown@host"):
            assert await customers.find_customer_by_phone(session, raw, "GB") is None, raw
        # Not text at all (a caller id missing from an event) is not a match either.
        assert await customers.find_customer_by_phone(session, None, "GB") is None  # type: ignore[arg-type]


async def test_email_and_chat_lookups(store: Store) -> None:
    customer_id = await _zoe(store, chat_handles=["  zoe-web-42 "])
    other = await _zoe(store, name="Raj", phones=[], emails=["raj@example.com"])
    async with store.sessionmaker() as session:
        for raw in ("zoe.martin@example.com", "  ZOE.Martin@EXAMPLE.com "):
            found = await customers.find_customer_by_email(session, raw)
            assert found is not None and found.id == customer_id, raw
        raj = await customers.find_customer_by_contact(session, "email", "RAJ@example.COM", "GB")
        assert raj is not None and raj.id == other
        chat = await customers.find_customer_by_contact(session, "chat", "zoe-web-42", "GB")
        assert chat is not None and chat.id == customer_id
        # Malformed or unknown values find nobody; they do not raise.
        assert await customers.find_customer_by_email(session, "not-an-email") is None
        assert await customers.find_customer_by_email(session, "") is None
        assert await customers.find_customer_by_email(session, "nobody@example.com") is None
        assert await customers.find_customer_by_contact(session, "chat", "  ", "GB") is None
        assert await customers.find_customer_by_contact(session, "chat", "zoe", "GB") is None
        # An unknown kind is a programming error, said clearly.
        with pytest.raises(InvalidData, match="contact kind 'fax'"):
            await customers.find_customer_by_contact(session, "fax", "123", "GB")


async def test_create_stores_every_field_and_audits_who_did_it(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        created = await customers.create_customer(
            session,
            name="  Ana Souza ",
            company="Tailspin",
            tier="platinum",
            language="pt-BR",
            segment="enterprise",
            notes="Prefers WhatsApp",
            phones=["+55 11 91234 5678"],
            emails=["Ana@Tailspin.example"],
            chat_handles=["ana.s"],
            region="BR",
            actor=AGENT,
        )
    async with store.sessionmaker() as session:
        ana = await customers.get_customer(session, created.id)
        assert (ana.name, ana.company, ana.tier, ana.language, ana.segment, ana.notes) == (
            "Ana Souza",
            "Tailspin",
            "platinum",
            "pt-BR",
            "enterprise",
            "Prefers WhatsApp",
        )
        assert [(cp.kind, cp.value) for cp in ana.contact_points] == [
            ("phone", "+5511912345678"),
            ("email", "ana@tailspin.example"),
            ("chat", "ana.s"),
        ]
        assert ana.created_at.tzinfo is not None
        entries = await audit.list_entries(session, entity="customer", entity_id=created.id)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.actor, entry.actor_id, entry.action) == ("alex", None, "customer.created")
    assert entry.details == {
        "name": "Ana Souza",
        "contacts": ["phone:+5511912345678", "email:ana@tailspin.example", "chat:ana.s"],
    }
    assert entry.at.tzinfo is not None


async def test_defaults_and_the_system_actor(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        bare = await customers.create_customer(session, name="Walk-in", region="GB")
    async with store.sessionmaker() as session:
        stored = await customers.get_customer(session, bare.id)
        assert (stored.tier, stored.company, stored.contact_points) == ("bronze", None, [])
    assert await _audit_actions(store, bare.id) == [("system", "customer.created")]


async def test_the_same_contact_twice_in_one_call_is_stored_once(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        created = await customers.create_customer(
            session,
            name="Echo",
            phones=["0044 7700 900555", "+447700900555", "07700 900555"],
            emails=["echo@example.com", "ECHO@example.com "],
            region="GB",
        )
    async with store.sessionmaker() as session:
        echo = await customers.get_customer(session, created.id)
        # The first way of writing each one is the raw form kept.
        assert [(cp.kind, cp.value, cp.raw) for cp in echo.contact_points] == [
            ("phone", "+447700900555", "0044 7700 900555"),
            ("email", "echo@example.com", "echo@example.com"),
        ]


@pytest.mark.parametrize(
    ("contacts", "taken"),
    [
        ({"phones": ["020 7946 0018"]}, "phone +442079460018"),
        ({"emails": ["ZOE.MARTIN@example.com"]}, "email zoe.martin@example.com"),
        ({"chat_handles": ["zoe-chat"]}, "chat zoe-chat"),
        # One free contact and one taken: nothing at all is created.
        ({"phones": ["+447700900777", "+44 20 7946 0018"]}, "phone +442079460018"),
    ],
)
async def test_a_contact_point_of_another_customer_is_refused_and_nothing_changes(
    store: Store, count_rows: CountRows, contacts: dict[str, Any], taken: str
) -> None:
    zoe = await _zoe(store, chat_handles=["zoe-chat"])
    before = await count_rows()
    with pytest.raises(Conflict) as caught:
        async with store.sessionmaker.begin() as session:
            await customers.create_customer(
                session, name="Copycat", region="GB", actor=AGENT, **contacts
            )
    assert caught.value.message == f"{taken} already belongs to customer {zoe}"
    assert caught.value.error_id == "store.conflict"
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        assert await customers.find_customer_by_phone(session, "+447700900777", "GB") is None


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"phones": ["+44 12"]}, InvalidData, "not a possible phone number"),
        ({"phones": ["+44 20 7946 00181234"]}, InvalidData, "phone number"),
        ({"phones": ["020 7946 0018"], "region": "ZZ"}, InvalidData, "cannot read phone"),
        ({"phones": "+442079460018"}, InvalidData, "list of values"),
        ({"phones": [""]}, InvalidData, "empty"),
        ({"chat_handles": ["   "]}, InvalidData, "chat handle"),
        ({"emails": ["a@b"]}, InvalidData, "not an email address"),
        ({"tier": "Gold"}, InvalidData, "tier 'Gold' is not one of bronze, silver, gold"),
        ({"tier": None}, InvalidData, "tier None"),
        ({"name": None}, InvalidData, "name is required"),
        ({"name": "x" * 201}, InvalidData, "name is longer than 200"),
        ({"company": 42}, InvalidData, "company must be text"),
        # PostgreSQL cannot store NUL; SQLite could, so both refuse it up front.
        ({"name": "Zo\x00e"}, InvalidData, "name must not contain NUL characters"),
        ({"emails": ["zo\x00e@example.com"]}, InvalidData, "email must not contain NUL"),
        ({"chat_handles": ["zo\x00e"]}, InvalidData, "chat must not contain NUL"),
    ],
)
async def test_more_bad_data_is_refused_and_nothing_changes(
    store: Store,
    count_rows: CountRows,
    fields: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    await _zoe(store)
    before = await count_rows()
    given: dict[str, Any] = {"name": "Bad Data", "region": "GB", "actor": AGENT, **fields}
    with pytest.raises(error, match=re.escape(message)):
        async with store.sessionmaker.begin() as session:
            await customers.create_customer(session, **given)
    assert await count_rows() == before


async def test_update_changes_only_the_fields_given(store: Store) -> None:
    customer_id = await _zoe(store)
    async with store.sessionmaker.begin() as session:
        await customers.update_customer(
            session, customer_id, actor=AGENT, company=None, language=" fr "
        )
    async with store.sessionmaker() as session:
        zoe = await customers.get_customer(session, customer_id)
        assert (zoe.name, zoe.company, zoe.tier, zoe.language) == ("Zoë Martin", None, "gold", "fr")
        assert len(zoe.contact_points) == 2
        entries = await audit.list_entries(session, entity="customer", entity_id=customer_id)
    assert entries[0].details == {
        "company": {"from": "Northwind", "to": None},
        "language": {"from": None, "to": "fr"},
    }


async def test_an_update_that_changes_nothing_writes_no_audit_entry(
    store: Store, count_rows: CountRows
) -> None:
    customer_id = await _zoe(store)
    before = await count_rows()
    async with store.sessionmaker.begin() as session:
        same = await customers.update_customer(
            session, customer_id, actor=AGENT, tier="gold", name=" Zoë Martin "
        )
        assert same.tier == "gold"
    assert await count_rows() == before
    assert await _audit_actions(store, customer_id) == [("alex", "customer.created")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tier": "diamond"}, "tier 'diamond' is not one of"),
        ({"name": ""}, "name must not be empty"),
        ({"notes": "x" * 20_001}, "notes is longer than 20000"),
        ({"id": 7}, "unknown customer field 'id'"),
        ({"created_at": None}, "unknown customer field 'created_at'"),
        # A valid change next to a bad one is not half-applied.
        ({"notes": "fine", "tier": "Platinum"}, "tier 'Platinum'"),
    ],
)
async def test_a_bad_update_is_refused_and_nothing_changes(
    store: Store, count_rows: CountRows, fields: dict[str, Any], message: str
) -> None:
    customer_id = await _zoe(store)
    before = await count_rows()
    with pytest.raises(InvalidData, match=message):
        async with store.sessionmaker.begin() as session:
            await customers.update_customer(session, customer_id, actor=AGENT, **fields)
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        zoe = await customers.get_customer(session, customer_id)
        assert (zoe.tier, zoe.notes, zoe.name) == ("gold", None, "Zoë Martin")


async def test_unknown_customer_ids_are_not_found_with_a_clear_message(
    store: Store, count_rows: CountRows
) -> None:
    customer_id = await _zoe(store)
    before = await count_rows()
    async with store.sessionmaker.begin() as session:
        with pytest.raises(NotFound, match="no customer with id 4242") as caught:
            await customers.get_customer(session, 4242)
        assert caught.value.error_id == "store.not_found"
        with pytest.raises(NotFound, match="no customer with id 4242"):
            await customers.remove_contact_point(session, 4242, 1, actor=AGENT)
        with pytest.raises(NotFound, match=f"customer {customer_id} has no contact point 999"):
            await customers.remove_contact_point(session, customer_id, 999, actor=AGENT)
    assert await count_rows() == before


async def test_adding_a_contact_the_customer_already_has_returns_it(
    store: Store, count_rows: CountRows
) -> None:
    customer_id = await _zoe(store)
    before = await count_rows()
    async with store.sessionmaker.begin() as session:
        same = await customers.add_contact_point(
            session, customer_id, "phone", "0044 20 7946 0018", region="GB", actor=AGENT
        )
        assert (same.value, same.raw) == ("+442079460018", "+44 20 7946 0018")
        again = await customers.add_contact_point(
            session, customer_id, "email", "ZOE.MARTIN@EXAMPLE.COM", region="GB", actor=AGENT
        )
        assert again.value == "zoe.martin@example.com"
    assert await count_rows() == before


async def test_add_contact_point_stores_label_and_audits(store: Store) -> None:
    customer_id = await _zoe(store)
    supervisor = Actor(None, "sam", "supervisor")
    async with store.sessionmaker.begin() as session:
        point = await customers.add_contact_point(
            session,
            customer_id,
            "phone",
            " 07700 900461 ",
            region="GB",
            label=" mobile ",
            actor=supervisor,
        )
    assert (point.kind, point.value, point.raw, point.label) == (
        "phone",
        "+447700900461",
        "07700 900461",
        "mobile",
    )
    async with store.sessionmaker() as session:
        found = await customers.find_customer_by_phone(session, "+44 7700 900461", "GB")
        assert found is not None and found.id == customer_id
        entries = await audit.list_entries(session, entity="customer", entity_id=customer_id)
    assert (entries[0].actor, entries[0].action, entries[0].details) == (
        "sam",
        "customer.contact_added",
        {"phone": "+447700900461"},
    )


@pytest.mark.parametrize(
    ("kind", "raw", "error", "message"),
    [
        ("phone", "call me", InvalidData, "cannot read phone number 'call me'"),
        ("phone", "+44 12", InvalidData, "'+44 12' is not a possible phone number"),
        ("email", "zoe at example", InvalidData, "not an email address"),
        ("fax", "+442079460018", InvalidData, "contact kind 'fax'"),
        ("chat", "x" * 321, InvalidData, "longer than 320"),
        ("phone", "+44 20 7946 0099", Conflict, "phone +442079460099 already belongs to"),
        ("email", "RAJ@example.com", Conflict, "email raj@example.com already belongs to"),
    ],
)
async def test_a_bad_or_taken_contact_point_is_refused_and_nothing_changes(
    store: Store,
    count_rows: CountRows,
    kind: str,
    raw: str,
    error: type[Exception],
    message: str,
) -> None:
    customer_id = await _zoe(store)
    await _zoe(store, name="Raj", phones=["020 7946 0099"], emails=["raj@example.com"])
    before = await count_rows()
    with pytest.raises(error, match=re.escape(message)):
        async with store.sessionmaker.begin() as session:
            await customers.add_contact_point(
                session, customer_id, kind, raw, region="GB", actor=AGENT
            )
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        zoe = await customers.get_customer(session, customer_id)
        assert len(zoe.contact_points) == 2


async def test_a_removed_contact_point_frees_the_number(store: Store) -> None:
    zoe = await _zoe(store)
    async with store.sessionmaker() as session:
        phone = next(
            cp
            for cp in (await customers.get_customer(session, zoe)).contact_points
            if cp.kind == "phone"
        )
    async with store.sessionmaker.begin() as session:
        await customers.remove_contact_point(session, zoe, phone.id, actor=AGENT)
    async with store.sessionmaker() as session:
        assert await customers.find_customer_by_phone(session, "020 7946 0018", "GB") is None
        entries = await audit.list_entries(session, entity="customer", entity_id=zoe)
    assert (entries[0].actor, entries[0].action, entries[0].details) == (
        "alex",
        "customer.contact_removed",
        {"phone": "+442079460018"},
    )
    # Now another customer may have it.
    raj = await _zoe(store, name="Raj", phones=["020 7946 0018"], emails=[])
    async with store.sessionmaker() as session:
        found = await customers.find_customer_by_phone(session, "+442079460018", "GB")
        assert found is not None and found.id == raj


async def test_search_ignores_case_of_any_letter_on_both_backends(store: Store) -> None:
    zoe = await _zoe(store)
    emile = await _zoe(store, name="Émile Ærøskøbing", company="Øresund A/S", phones=[], emails=[])
    async with store.sessionmaker() as session:

        async def ids(query: str) -> list[int]:
            return [c.id for c in await customers.search_customers(session, query, region="GB")]

        for query in ("zoë", "ZOË MARTIN", "Zoë", "zOË mArTiN", "MARTIN", "zoe.martin@EXAMPLE"):
            assert await ids(query) == [zoe], query
        for query in ("émile", "ÉMILE", "ærøskøbing", "ÆRØSKØBING", "øresund a/s", "ØRESUND"):
            assert await ids(query) == [emile], query
        assert await ids("zoe martin") == []  # "e" is not "ë"


async def test_search_treats_wildcards_as_plain_characters(store: Store) -> None:
    percent = await _zoe(store, name="Amy", company="100% Organic", phones=[], emails=[])
    plain = await _zoe(store, name="Ben", company="100 Organic", phones=[], emails=[])
    under = await _zoe(store, name="Cat", company="snake_case Ltd", phones=[], emails=[])
    await _zoe(store, name="Dan", company="snakeXcase Ltd", phones=[], emails=[])
    glob = await _zoe(store, name="Eve", company="Star*[Ü]?", phones=[], emails=[])
    async with store.sessionmaker() as session:

        async def ids(query: str) -> list[int]:
            return [c.id for c in await customers.search_customers(session, query, region="GB")]

        assert await ids("100%") == [percent]
        assert await ids("100") == [percent, plain]
        assert await ids("snake_case") == [under]
        assert await ids("*[ü]?") == [glob]
        assert await ids("r*[Ü") == [glob]
        assert await ids("back\\slash") == []
        # A NUL typed into the search box is no error on PostgreSQL.
        assert await ids("Star\x00") == [glob]
        assert await customers.find_customer_by_email(session, "a\x00@example.com") is None
        assert await customers.find_customer_by_contact(session, "chat", "\x00", "GB") is None


async def test_search_finds_numbers_typed_in_part_or_in_full(store: Store) -> None:
    zoe = await _zoe(store)
    raj = await _zoe(store, name="Raj", company=None, phones=["+1 212 555 0134"], emails=[])
    async with store.sessionmaker() as session:

        async def ids(query: str, region: str | None = "GB") -> list[int]:
            found = await customers.search_customers(session, query, region=region)
            return [c.id for c in found]

        assert await ids("020 7946") == [zoe]  # national prefix of GB swapped for +44
        assert await ids("0044 20 7946") == [zoe]
        assert await ids("+44 20 79") == [zoe]
        assert await ids("(020) 7946-0018") == [zoe]
        assert await ids("+1 (212) 555-0134") == [raj]
        assert await ids("555 0134", region=None) == [raj]
        assert await ids("+44 20 7946 0018", region=None) == [zoe]
        # Too short to be a number fragment, and not in any name.
        assert await ids("999") == []
        # A national number read in another region is not Zoë's.
        assert await ids("020 7946", region="US") == []


async def test_search_is_ordered_by_name_and_limited(store: Store, count_rows: CountRows) -> None:
    made = {name: await _zoe(store, name=name, phones=[], emails=[]) for name in "DBEAC"}
    async with store.sessionmaker() as session:
        found = await customers.search_customers(session, "", limit=3)
        assert [c.name for c in found] == ["A", "B", "C"]
        assert [c.id for c in found] == [made["A"], made["B"], made["C"]]
        assert await customers.count_customers(session) == 5
        for limit in (0, -1, 10_001, True):
            with pytest.raises(InvalidData, match="limit"):
                await customers.search_customers(session, "", limit=limit)


async def test_count_customers(store: Store) -> None:
    async with store.sessionmaker() as session:
        assert await customers.count_customers(session) == 0
    for i in range(3):
        await _zoe(store, name=f"C{i}", phones=[], emails=[f"c{i}@example.com"])
    async with store.sessionmaker() as session:
        assert await customers.count_customers(session) == 3


async def test_timeline_pages_ties_by_id_and_keeps_other_customers_out(store: Store) -> None:
    zoe = await _zoe(store)
    raj = await _zoe(store, name="Raj", phones=["+447700900123"], emails=[])
    same_time = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    async with store.sessionmaker.begin() as session:
        mine = [
            (
                await interactions.record_interaction(
                    session, channel=channel, customer_id=zoe, started_at=same_time
                )
            ).id
            for channel in ("voice", "chat", "email", "sms", "voice")
        ]
        theirs = await interactions.record_interaction(
            session, channel="voice", customer_id=raj, started_at=same_time
        )
        await interactions.record_interaction(session, channel="voice", started_at=same_time)
        newest = await interactions.record_interaction(
            session, channel="chat", customer_id=zoe, started_at=same_time + timedelta(seconds=1)
        )
        oldest = await interactions.record_interaction(
            session, channel="sms", customer_id=zoe, started_at=same_time - timedelta(days=30)
        )
    expected = [newest.id, *reversed(mine), oldest.id]
    async with store.sessionmaker() as session:
        seen: list[int] = []
        before_id: int | None = None
        while True:
            page = await customers.customer_timeline(session, zoe, limit=2, before_id=before_id)
            if not page:
                break
            assert len(page) <= 2
            seen.extend(ix.id for ix in page)
            before_id = page[-1].id
        assert seen == expected
        everything = await customers.customer_timeline(session, zoe, limit=100)
        assert [ix.id for ix in everything] == expected
        assert all(ix.customer_id == zoe for ix in everything)
        # An interaction of someone else is no anchor for Zoë's timeline.
        with pytest.raises(NotFound, match=f"customer {zoe} has no interaction {theirs.id}"):
            await customers.customer_timeline(session, zoe, before_id=theirs.id)
        with pytest.raises(NotFound):
            await customers.customer_timeline(session, zoe, before_id=999_999)
        with pytest.raises(InvalidData, match="limit"):
            await customers.customer_timeline(session, zoe, limit=0)
        assert await customers.customer_timeline(session, raj) == [
            await interactions.get_interaction(session, theirs.id)
        ]
