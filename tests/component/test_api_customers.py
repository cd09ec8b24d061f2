"""`/api/v1/customers` on the real app: search in any phone format, create, update, timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contact_center.keys import DAEMON
from crm_store import interactions
from tests.component.api_fixtures import Api


async def _create(api: Api, **fields: object) -> dict[str, object]:
    session = await api.login("agent")
    body = {"name": "Zoë Martin", "phones": ["+44 20 7946 0018"], "emails": ["Zoe@Example.com"]}
    body.update(fields)
    response = await session.post("/api/v1/customers", json=body)
    assert response.status == 201, await response.text()
    result: dict[str, object] = await response.json()
    return result


async def test_create_then_find_by_any_phone_format(api: Api) -> None:
    created = await _create(api, company="Acme", tier="bronze")
    assert created["name"] == "Zoë Martin"
    contacts = {(c["kind"], c["value"]) for c in created["contact_points"]}  # type: ignore[attr-defined]
    assert contacts == {("phone", "+442079460018"), ("email", "zoe@example.com")}
    agent = await api.login("agent")
    for query in ("020 7946 0018", "+44 (20) 7946-0018", "7946 0018", "zoë martin", "acme"):
        found = await (await agent.get("/api/v1/customers", params={"q": query})).json()
        assert [c["id"] for c in found["customers"]] == [created["id"]], query


async def test_duplicate_contact_point_is_a_409_and_nothing_is_created(api: Api) -> None:
    await _create(api)
    agent = await api.login("agent")
    response = await agent.post(
        "/api/v1/customers", json={"name": "Someone Else", "phones": ["02079460018"]}
    )
    assert response.status == 409
    error = (await response.json())["error"]
    assert error["id"] == "store.conflict"
    assert "+442079460018" in error["message"]
    found = await (await agent.get("/api/v1/customers", params={"q": "Someone"})).json()
    assert found["customers"] == []


async def test_bad_input_is_a_400_naming_the_field(api: Api) -> None:
    agent = await api.login("agent")
    bad_phone = await agent.post("/api/v1/customers", json={"name": "X", "phones": ["hello"]})
    assert bad_phone.status == 400
    assert (await bad_phone.json())["error"]["id"] == "store.invalid_data"
    bad_tier = await agent.post("/api/v1/customers", json={"name": "X", "tier": "diamond"})
    assert bad_tier.status == 400
    assert "tier" in (await bad_tier.json())["error"]["message"]
    unknown_field = await agent.post("/api/v1/customers", json={"name": "X", "vip": True})
    assert unknown_field.status == 400
    assert "vip" in (await unknown_field.json())["error"]["message"]
    listing = await (await agent.get("/api/v1/customers")).json()
    assert listing["customers"] == []


async def test_read_update_and_tier_needs_a_supervisor(api: Api) -> None:
    created = await _create(api)
    path = f"/api/v1/customers/{created['id']}"
    agent = await api.login("agent")
    response = await agent.patch(path, json={"notes": "prefers email", "company": "Initech"})
    assert response.status == 200
    assert (await response.json())["notes"] == "prefers email"
    tier = await agent.patch(path, json={"tier": "gold"})
    assert tier.status == 403
    supervisor = await api.login("supervisor")
    assert (await supervisor.patch(path, json={"tier": "gold"})).status == 200
    body = await (await agent.get(path)).json()
    assert body["tier"] == "gold"
    assert body["company"] == "Initech"
    assert body["open_service_requests"] == []
    missing = await agent.get("/api/v1/customers/999999")
    assert missing.status == 404
    assert (await missing.json())["error"]["id"] == "store.not_found"
    not_a_number = await agent.get("/api/v1/customers/abc")
    assert not_a_number.status == 404
    audit = await (await supervisor.get("/api/v1/audit?entity=customer")).json()
    actions = [(e["actor"], e["action"]) for e in audit["entries"]]
    assert ("supervisor", "customer.updated") in actions
    assert ("agent", "customer.created") in actions


async def test_contact_points_add_and_remove(api: Api) -> None:
    created = await _create(api)
    agent = await api.login("agent")
    base = f"/api/v1/customers/{created['id']}/contact-points"
    added = await agent.post(base, json={"kind": "phone", "value": "07700 900123"})
    assert added.status == 201
    cp = await added.json()
    assert cp["value"] == "+447700900123"
    assert (await agent.post(base, json={"kind": "fax", "value": "1"})).status == 400
    removed = await agent.delete(f"{base}/{cp['id']}")
    assert removed.status == 200
    body = await (await agent.get(f"/api/v1/customers/{created['id']}")).json()
    assert "+447700900123" not in {c["value"] for c in body["contact_points"]}


async def test_timeline_is_newest_first_and_paged(api: Api) -> None:
    created = await _create(api)
    customer_id = int(created["id"])  # type: ignore[call-overload]
    sessionmaker = api.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    async with sessionmaker.begin() as db:
        for i, channel in enumerate(["voice", "email", "sms", "chat", "voice"]):
            ix = await interactions.record_interaction(
                db,
                channel=channel,
                customer_id=customer_id,
                started_at=start + timedelta(hours=i),
            )
        # The agent is on the latest contact, so reads the whole history (issue 13).
        await interactions.update_interaction(db, ix.id, agent_id=api.user_ids["agent"])
    agent = await api.login("agent")
    url = f"/api/v1/customers/{customer_id}/timeline"
    page1 = await (await agent.get(url, params={"limit": "3"})).json()
    assert [ix["channel"] for ix in page1["interactions"]] == ["voice", "chat", "sms"]
    page2 = await (
        await agent.get(url, params={"limit": "3", "before": str(page1["next_before"])})
    ).json()
    assert [ix["channel"] for ix in page2["interactions"]] == ["email", "voice"]
    assert page2["next_before"] is None
    bad = await agent.get(url, params={"limit": "0"})
    assert bad.status == 400
    assert (await bad.json())["error"]["id"] == "request.query"


async def test_screen_pop_by_any_phone_format_sees_fresh_writes(api: Api) -> None:
    agent = await api.login("agent")
    unknown = await (
        await agent.get("/api/v1/screen-pop", params={"phone": "020 7946 0018"})
    ).json()
    assert unknown["customer"] is None
    assert unknown["key"] == "+442079460018"
    created = await _create(api)
    sessionmaker = api.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker.begin() as db:
        sms = await interactions.record_interaction(
            db,
            channel="sms",
            customer_id=int(created["id"]),  # type: ignore[call-overload]
        )
        # The agent's own open contact: they read this customer's history (issue 13).
        await interactions.update_interaction(db, sms.id, agent_id=api.user_ids["agent"])
    pop = await (await agent.get("/api/v1/screen-pop", params={"phone": "+44 20 7946 0018"})).json()
    assert pop["customer"]["name"] == "Zoë Martin"
    assert [i["channel"] for i in pop["interactions"]] == ["sms"]
    by_email = await (await agent.get("/api/v1/screen-pop?email=ZOE@example.com")).json()
    assert by_email["customer"]["id"] == created["id"]
    anonymous = await (await agent.get("/api/v1/screen-pop?phone=anonymous")).json()
    assert anonymous["customer"] is None
    assert (await agent.get("/api/v1/screen-pop")).status == 400
