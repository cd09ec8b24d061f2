"""Service requests over HTTP: the workflow, who may move them, and wrap-up."""

from __future__ import annotations

from contact_center.keys import DAEMON
from crm_store import interactions
from tests.component.api_fixtures import Api


async def _customer(api: Api) -> int:
    admin = await api.login("admin")
    response = await admin.post(
        "/api/v1/customers", json={"name": "Ana", "phones": ["+34600000001"]}
    )
    assert response.status == 201
    return int((await response.json())["id"])


async def test_the_whole_workflow_archives_on_good_feedback(api: Api) -> None:
    customer_id = await _customer(api)
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    created = await agent.post(
        "/api/v1/service-requests", json={"customer_id": customer_id, "title": "Refund"}
    )
    assert created.status == 201
    sr = await created.json()
    assert sr["status"] == "new"
    one = f"/api/v1/service-requests/{sr['id']}"
    # An agent cannot assign: that is the supervisor's move.
    denied = await agent.post(one + "/assign", json={"assignee": "agent"})
    assert denied.status == 403
    assigned = await supervisor.post(one + "/assign", json={"assignee": "agent", "note": "yours"})
    assert (await assigned.json())["status"] == "assigned"
    mine = await (await agent.get("/api/v1/service-requests")).json()
    assert [r["id"] for r in mine["service_requests"]] == [sr["id"]]
    assert (await (await agent.post(one + "/start")).json())["status"] == "in_progress"
    fb = await agent.post(one + "/request-feedback", json={"note": "refunded"})
    assert (await fb.json())["status"] == "feedback"
    done = await (await agent.post(one + "/feedback", json={"csat": 4})).json()
    assert done["status"] == "archived"
    assert [(t["from"], t["to"]) for t in done["transitions"]] == [
        (None, "new"),
        ("new", "assigned"),
        ("assigned", "in_progress"),
        ("in_progress", "feedback"),
        ("feedback", "archived"),
    ]
    ids = api.user_ids
    assert [t["actor_id"] for t in done["transitions"]] == [
        ids["agent"],
        ids["supervisor"],
        ids["agent"],
        ids["agent"],
        ids["agent"],
    ]


async def test_poor_feedback_goes_back_to_a_supervisor(api: Api) -> None:
    customer_id = await _customer(api)
    supervisor = await api.login("supervisor")
    agent = await api.login("agent")
    sr = await (
        await supervisor.post(
            "/api/v1/service-requests", json={"customer_id": customer_id, "title": "Broken"}
        )
    ).json()
    one = f"/api/v1/service-requests/{sr['id']}"
    await supervisor.post(one + "/assign", json={"assignee": "agent"})
    await agent.post(one + "/start")
    await agent.post(one + "/request-feedback", json={})
    back = await (await agent.post(one + "/feedback", json={"csat": 2, "comment": "meh"})).json()
    assert back["status"] == "assigned"
    assert back["csat"] == 2


async def test_illegal_transition_is_a_409_and_changes_nothing(api: Api) -> None:
    customer_id = await _customer(api)
    agent = await api.login("agent")
    sr = await (
        await agent.post(
            "/api/v1/service-requests", json={"customer_id": customer_id, "title": "Early"}
        )
    ).json()
    one = f"/api/v1/service-requests/{sr['id']}"
    response = await agent.post(one + "/feedback", json={"csat": 5})
    assert response.status == 409
    assert (await response.json())["error"]["id"] == "store.illegal_transition"
    after = await (await agent.get(one)).json()
    assert after["status"] == "new"
    assert len(after["transitions"]) == 1
    bad_csat = await agent.post(one + "/feedback", json={"csat": 9})
    assert bad_csat.status == 400
    unknown_customer = await agent.post(
        "/api/v1/service-requests", json={"customer_id": 424242, "title": "x"}
    )
    assert unknown_customer.status == 404


async def test_wrap_up_saves_disposition_and_notes_on_own_contact_only(api: Api) -> None:
    customer_id = await _customer(api)
    sessionmaker = api.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker.begin() as db:
        ix = await interactions.record_interaction(db, channel="voice", customer_id=customer_id)
        await interactions.update_interaction(db, ix.id, agent_id=api.user_ids["agent"])
        other = await interactions.record_interaction(db, channel="voice")
        await interactions.update_interaction(db, other.id, agent_id=api.user_ids["supervisor"])
    agent = await api.login("agent")
    path = f"/api/v1/interactions/{ix.id}/wrap-up"
    bad = await agent.post(path, json={"disposition": "sold-a-car"})
    assert bad.status == 400
    assert "resolved" in (await bad.json())["error"]["message"]
    ok = await agent.post(path, json={"disposition": "resolved", "notes": "refund sent"})
    assert ok.status == 200
    body = await ok.json()
    assert (body["disposition"], body["notes"]) == ("resolved", "refund sent")
    timeline = await (await agent.get(f"/api/v1/customers/{customer_id}/timeline")).json()
    assert timeline["interactions"][0]["notes"] == "refund sent"
    not_mine = await agent.post(
        f"/api/v1/interactions/{other.id}/wrap-up", json={"disposition": "resolved"}
    )
    # Someone else's contact, of no customer the agent serves: not even readable (issue 13).
    assert not_mine.status == 404
    linked = await (
        await (await api.login("supervisor")).post(
            f"/api/v1/interactions/{other.id}/wrap-up",
            json={"disposition": "resolved", "customer_id": customer_id},
        )
    ).json()
    assert linked["customer_id"] == customer_id
