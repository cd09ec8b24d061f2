"""Who reads which interactions and service requests (issue 13, item 13), over HTTP.

Two agents, A ("agent") and B ("agent2"), a supervisor. A serves customer "Ana" (an open
contact); B served "Ben" an hour ago; A handled one of Ben's contacts two days ago. What an
agent may not read answers 404 exactly like an id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from contact_center.keys import DAEMON
from crm_store import customers, interactions, users
from crm_store import service_requests as srs
from crm_store.actors import Actor
from crm_store.models import utcnow
from tests.component.api_fixtures import Api, Session
from tests.component.test_routing_flow import _call, request, until


@dataclass
class World:
    ana: int
    ben: int
    ix_a: int  # A's open contact with Ana
    ix_b: int  # B's contact with Ben, ended an hour ago
    ix_old: int  # A's contact with Ben, ended two days ago
    ix_b_no_customer: int  # B's contact with nobody known
    sr_a: int  # Ana's, assigned to A
    sr_ana_b: int  # Ana's, assigned to B
    sr_b: int  # Ben's, created by B and assigned to B
    agent_b: int


async def _world(api: Api) -> World:
    sessionmaker = api.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    now = utcnow()
    ids = api.user_ids
    async with sessionmaker.begin() as db:
        b = await users.create_user(
            db, username="agent2", role="agent", password="agent-pass-1", skills={"support": 5}
        )
        ana = await customers.create_customer(db, name="Ana", phones=["+34600000001"], region="GB")
        ben = await customers.create_customer(db, name="Ben", phones=["+34600000002"], region="GB")

        async def contact(customer: int | None, agent: int, ended_ago: timedelta | None) -> int:
            ix = await interactions.record_interaction(
                db, channel="voice", customer_id=customer, started_at=now - timedelta(days=3)
            )
            ended = None if ended_ago is None else now - ended_ago
            await interactions.update_interaction(
                db, ix.id, agent_id=agent, ended_at=ended, notes=f"notes of {ix.id}"
            )
            return ix.id

        ix_a = await contact(ana.id, ids["agent"], None)
        ix_b = await contact(ben.id, b.id, timedelta(hours=1))
        ix_old = await contact(ben.id, ids["agent"], timedelta(days=2))
        ix_nobody = await contact(None, b.id, None)
        supervisor = Actor(ids["supervisor"], "supervisor", "supervisor")
        agent_b = Actor(b.id, "agent2", "agent")

        async def request_for(customer: int, creator: Actor, assignee: int) -> int:
            sr = await srs.create_service_request(
                db, customer_id=customer, title=f"for {customer}", actor=creator
            )
            await srs.assign(db, sr.id, assignee, actor=supervisor)
            return sr.id

        world = World(
            ana.id,
            ben.id,
            ix_a,
            ix_b,
            ix_old,
            ix_nobody,
            await request_for(ana.id, supervisor, ids["agent"]),
            await request_for(ana.id, supervisor, b.id),
            await request_for(ben.id, agent_b, b.id),
            b.id,
        )
    return world


async def _status(session: Session, path: str) -> int:
    return int((await session.get(path)).status)


async def _ids(session: Session, path: str, key: str) -> list[int]:
    response = await session.get(path)
    assert response.status == 200, await response.text()
    return sorted(item["id"] for item in (await response.json())[key])


async def test_an_agent_reads_only_their_own_and_their_customers_interactions(api: Api) -> None:
    w = await _world(api)
    a = await api.login("agent")
    assert await _status(a, f"/api/v1/interactions/{w.ix_a}") == 200
    assert await _status(a, f"/api/v1/interactions/{w.ix_old}") == 200  # handled by A
    for hidden in (w.ix_b, w.ix_b_no_customer):
        for path in (f"/api/v1/interactions/{hidden}", f"/api/v1/interactions/{hidden}/messages"):
            response = await a.get(path)
            assert response.status == 404, path
            assert (await response.json())["error"] == {
                "id": "store.not_found",
                "message": f"no interaction with id {hidden}",
            }
        wrap = await a.post(
            f"/api/v1/interactions/{hidden}/wrap-up", json={"disposition": "resolved"}
        )
        assert wrap.status == 404
    # An id that does not exist looks the same.
    missing = await a.get("/api/v1/interactions/999999")
    assert (await missing.json())["error"]["message"] == "no interaction with id 999999"
    # Lists: Ben's history holds only what A handled; Ana's (served now) holds everything.
    assert await _ids(a, f"/api/v1/customers/{w.ben}/timeline", "interactions") == [w.ix_old]
    assert await _ids(a, f"/api/v1/customers/{w.ana}/timeline", "interactions") == [w.ix_a]
    b = await api.login("agent2")
    # B served Ben an hour ago: within the window, B reads all of Ben's history.
    assert await _ids(b, f"/api/v1/customers/{w.ben}/timeline", "interactions") == sorted(
        [w.ix_b, w.ix_old]
    )
    assert await _status(b, f"/api/v1/interactions/{w.ix_old}") == 200
    assert await _status(b, f"/api/v1/interactions/{w.ix_a}") == 404


async def test_an_agent_reads_only_their_requests_and_those_of_customers_they_serve(
    api: Api,
) -> None:
    w = await _world(api)
    a = await api.login("agent")
    base = "/api/v1/service-requests"
    assert await _ids(a, base, "service_requests") == [w.sr_a]
    for query in ("", "?mine=1", "?status=assigned", "?status=new,assigned&limit=500"):
        assert w.sr_b not in await _ids(a, base + query, "service_requests"), query
    assert await _ids(a, f"{base}?customer_id={w.ben}", "service_requests") == []
    assert await _ids(a, f"{base}?customer_id={w.ben}&mine=0", "service_requests") == []
    # Ana is A's customer right now: all her requests, B's included.
    assert await _ids(a, f"{base}?customer_id={w.ana}", "service_requests") == sorted(
        [w.sr_a, w.sr_ana_b]
    )
    assert await _status(a, f"{base}/{w.sr_a}") == 200
    assert await _status(a, f"{base}/{w.sr_ana_b}") == 200
    hidden = await a.get(f"{base}/{w.sr_b}")
    assert hidden.status == 404
    assert (await hidden.json())["error"]["message"] == f"no service request with id {w.sr_b}"
    for move, body in (("start", None), ("request-feedback", {}), ("feedback", {"csat": 5})):
        assert (await a.post(f"{base}/{w.sr_b}/{move}", json=body)).status == 404, move
    # The customer record shows only the open requests A may read.
    ben = await (await a.get(f"/api/v1/customers/{w.ben}")).json()
    assert ben["open_service_requests"] == []
    # Linking a request to someone else's interaction would name its customer: refused.
    link = await a.post(base, json={"customer_id": w.ana, "title": "x", "interaction_id": w.ix_b})
    assert link.status == 404
    b = await api.login("agent2")
    assert await _ids(b, base, "service_requests") == sorted([w.sr_ana_b, w.sr_b])
    assert await _status(b, f"{base}/{w.sr_a}") == 404


async def test_supervisors_and_admins_read_everything(api: Api) -> None:
    w = await _world(api)
    for role in ("supervisor", "admin"):
        s = await api.login(role)
        for ix in (w.ix_a, w.ix_b, w.ix_old, w.ix_b_no_customer):
            assert await _status(s, f"/api/v1/interactions/{ix}") == 200
        for sr in (w.sr_a, w.sr_ana_b, w.sr_b):
            assert await _status(s, f"/api/v1/service-requests/{sr}") == 200
        assert await _ids(
            s, f"/api/v1/service-requests?customer_id={w.ben}", "service_requests"
        ) == [w.sr_b]
        assert len(await _ids(s, "/api/v1/service-requests", "service_requests")) == 3
        assert await _ids(s, f"/api/v1/customers/{w.ben}/timeline", "interactions") == sorted(
            [w.ix_b, w.ix_old]
        )


async def test_screen_pop_shows_an_agent_only_what_they_may_read(api: Api) -> None:
    w = await _world(api)
    a = await api.login("agent")
    for query in (f"customer_id={w.ben}", "phone=%2B34600000002"):
        pop = await (await a.get(f"/api/v1/screen-pop?{query}")).json()
        assert pop["customer"]["name"] == "Ben"  # the card: any user finds customers
        assert [i["id"] for i in pop["interactions"]] == [w.ix_old]
        assert pop["open_requests"] == []
    ana = await (await a.get(f"/api/v1/screen-pop?customer_id={w.ana}")).json()
    assert [i["id"] for i in ana["interactions"]] == [w.ix_a]
    assert sorted(r["id"] for r in ana["open_requests"]) == sorted([w.sr_a, w.sr_ana_b])
    supervisor = await api.login("supervisor")
    full = await (await supervisor.get(f"/api/v1/screen-pop?customer_id={w.ben}")).json()
    assert sorted(i["id"] for i in full["interactions"]) == sorted([w.ix_b, w.ix_old])
    assert [r["id"] for r in full["open_requests"]] == [w.sr_b]


async def test_a_live_offer_opens_the_customers_history_to_that_agent(api: Api) -> None:
    w = await _world(api)
    a = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with a.client.ws_connect("/ws/agent") as ws:
        await until(ws, "agent_state")
        assert (await request(ws, "set_status", status="ready"))["ok"]
        offered = await _call(supervisor, "+34600000002")  # Ben calls
        offer = await until(ws, "offer")
        assert offer["interaction_id"] == offered
        # Ringing, not answered: A now serves Ben and reads all of his history.
        assert await _status(a, f"/api/v1/interactions/{w.ix_b}") == 200
        assert await _status(a, f"/api/v1/interactions/{offered}") == 200
        assert await _ids(
            a, f"/api/v1/service-requests?customer_id={w.ben}", "service_requests"
        ) == [w.sr_b]
        pop = await (await a.get(f"/api/v1/screen-pop?customer_id={w.ben}")).json()
        assert w.ix_b in [i["id"] for i in pop["interactions"]]
        # B served Ben an hour ago and reads it too; an agent with no tie to Ben does not.
        b = await api.login("agent2")
        assert await _status(b, f"/api/v1/interactions/{offered}") == 200
        sessionmaker = api.app[DAEMON].sessionmaker
        assert sessionmaker is not None
        async with sessionmaker.begin() as db:
            await users.create_user(db, username="agent3", role="agent", password="agent-pass-1")
        c = await api.login("agent3")
        assert await _status(c, f"/api/v1/interactions/{offered}") == 404
