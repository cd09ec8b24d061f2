"""A call through the simulated PBX, the router and the agent's WebSocket, end to end
inside the real app: offer with screen pop, answer, hold, hang up, wrap-up, figures."""

from __future__ import annotations

from typing import Any

import aiohttp

from contact_center.app import make_app
from contact_center.keys import DAEMON
from crm_store import customers
from crm_store.actors import Actor
from tests.component.api_fixtures import Api, Session, start_api

_unread: dict[int, list[dict[str, Any]]] = {}


async def until(ws: aiohttp.ClientWebSocketResponse, kind: str, **match: Any) -> dict[str, Any]:
    """The next message of `kind` whose fields include `match` (others stay readable)."""

    def matches(message: dict[str, Any]) -> bool:
        return message["type"] == kind and all(message.get(k) == v for k, v in match.items())

    unread = _unread.setdefault(id(ws), [])
    for i, message in enumerate(unread):
        if matches(message):
            return unread.pop(i)
    while True:
        message = await ws.receive_json(timeout=10)
        if matches(message):
            return message
        unread.append(message)


async def request(ws: aiohttp.ClientWebSocketResponse, kind: str, **fields: Any) -> dict[str, Any]:
    """Send a message and wait for its reply."""
    await ws.send_json({"type": kind, "id": kind, **fields})
    reply = await until(ws, "reply", ref=kind)
    return reply


async def _customer(api: Api) -> int:
    sessionmaker = api.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker.begin() as db:
        customer = await customers.create_customer(
            db, name="Zoë Martin", tier="gold", phones=["+44 20 7946 0018"], region="GB"
        )
        return customer.id


async def _call(supervisor: Session, caller: str, queue: str = "support", **extra: Any) -> int:
    response = await supervisor.post(
        "/api/v1/simulator/calls", json={"caller": caller, "queue": queue, **extra}
    )
    assert response.status == 201, await response.text()
    return int((await response.json())["interaction_id"])


async def test_call_offered_with_pop_answered_held_ended_and_wrapped_up(api: Api) -> None:
    customer_id = await _customer(api)
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with agent.client.ws_connect("/ws/agent") as ws:
        state = await until(ws, "agent_state")
        assert state["status"] == "offline"
        ready = await request(ws, "set_status", status="ready")
        assert ready["ok"], ready
        interaction_id = await _call(
            supervisor, "020 7946 0018", ivr_path=["welcome", "menu"], ivr_inputs={"menu": "2"}
        )
        offer = await until(ws, "offer")
        assert offer["interaction_id"] == interaction_id
        assert offer["pop"]["customer"]["id"] == customer_id
        assert offer["pop"]["customer"]["tier"] == "gold"
        assert offer["ivr"]["inputs"] == {"dnis": "5000", "menu": "2"}
        assert offer["explanation"]["queue"] == "support"
        assert offer["explanation"]["skills_matched"] == {"support": 5}
        assert offer["explanation"]["priority"] == 2  # gold tier
        accepted = await request(ws, "accept_offer", offer_id=interaction_id)
        assert accepted["ok"], accepted
        talking = await until(ws, "contact", state="talking")
        assert talking["interaction_id"] == interaction_id
        assert (await request(ws, "call_action", interaction_id=interaction_id, action="hold"))[
            "ok"
        ]
        await until(ws, "contact", state="held")
        await request(ws, "call_action", interaction_id=interaction_id, action="unhold")
        await until(ws, "contact", state="talking")
        await request(ws, "call_action", interaction_id=interaction_id, action="hangup")
        await until(ws, "contact", state="wrap_up")
        wrapped = await agent.post(
            f"/api/v1/interactions/{interaction_id}/wrap-up",
            json={"disposition": "resolved", "notes": "all good"},
        )
        assert wrapped.status == 200
        _unread.get(id(ws), []).clear()  # only what follows the finish counts now
        assert (await request(ws, "finish_wrap_up"))["ok"]
        idle = await until(ws, "agent_state", activity="idle")
        assert idle["today"]["handled"] == {"voice": 1}
    await api.app[DAEMON].routing.writer.flush()  # type: ignore[union-attr]
    stored = await (await agent.get(f"/api/v1/interactions/{interaction_id}")).json()
    assert stored["agent_id"] == api.user_ids["agent"]
    assert stored["answered_at"] and stored["ended_at"] and stored["offered_at"]
    assert stored["routing"]["queue"] == "support"
    assert stored["ivr_inputs"]["menu"] == "2"
    assert stored["end_cause"] == "Normal Clearing"  # as Asterisk reports the hang-up
    figures = await (await supervisor.get("/api/v1/queues")).json()
    support = next(q for q in figures["queues"] if q["name"] == "support")
    assert support["windows"]["today"]["answered"] == 1
    assert support["service_level"] == 1.0
    assert support["windows"]["today"]["aht_seconds"] is not None


async def test_rejected_offer_waits_again_and_a_hang_up_is_an_abandon(api: Api) -> None:
    routing = api.app[DAEMON].routing
    assert routing is not None
    routing.router.queues["support"] = (
        routing.router.queues["support"].__class__(
            **{**routing.router.queues["support"].__dict__, "offer_timeout_seconds": 0.3}
        )
        if False
        else routing.router.queues["support"]
    )
    routing.router.update_skills(api.user_ids["agent"], {"support": 5}, 0)
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with agent.client.ws_connect("/ws/agent") as ws:
        await request(ws, "set_status", status="ready")
        interaction_id = await _call(supervisor, "+447700900555")
        await until(ws, "offer")
        rejected = await request(ws, "reject_offer", offer_id=interaction_id)
        assert rejected["ok"]
        ended = await until(ws, "offer_ended")
        assert ended["outcome"] == "rejected"
        # Nobody else can take it: still waiting, not lost.
        figures = await (await supervisor.get("/api/v1/queues")).json()
        support = next(q for q in figures["queues"] if q["name"] == "support")
        assert support["waiting"] == 1
        hung = await supervisor.post(f"/api/v1/simulator/calls/{interaction_id}/hangup")
        assert hung.status == 200
    figures = await (await supervisor.get("/api/v1/queues")).json()
    support = next(q for q in figures["queues"] if q["name"] == "support")
    assert support["waiting"] == 0
    await api.app[DAEMON].routing.writer.flush()  # type: ignore[union-attr]
    stored = await (await supervisor.get(f"/api/v1/interactions/{interaction_id}")).json()
    # Abandoned: ended without an answer, with the cause Asterisk reported.
    assert stored["ended_at"] and stored["answered_at"] is None
    assert stored["end_cause"] == "Normal Clearing"


async def test_bad_requests_get_clear_errors(api: Api) -> None:
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with agent.client.ws_connect("/ws/agent") as ws:
        bad = await request(ws, "set_status", status="not_ready", reason="napping")
        assert bad["error"]["id"] == "routing.bad_reason"
        assert "lunch" in bad["error"]["message"]
        nothing = await request(ws, "accept_offer", offer_id=12345)
        assert nothing["error"]["id"] == "routing.no_such_offer"
        not_int = await request(ws, "accept_offer", offer_id="x")
        assert not_int["error"]["id"] == "request.invalid"
        forbidden = await request(ws, "set_agent_status", user_id=1, status="offline")
        assert forbidden["error"]["id"] == "auth.forbidden"
    unknown_queue = await supervisor.post(
        "/api/v1/simulator/calls", json={"caller": "+447700900555", "queue": "nope"}
    )
    assert unknown_queue.status == 400
    assert (await agent.get("/api/v1/queues")).status == 403


async def test_supervisor_sets_an_agent_not_ready_and_it_is_audited(api: Api) -> None:
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with (
        agent.client.ws_connect("/ws/agent") as agent_ws,
        supervisor.client.ws_connect("/ws/supervisor") as board,
    ):
        await request(agent_ws, "set_status", status="ready")
        snapshot = await until(board, "agents")
        assert any(a["username"] == "agent" for a in snapshot["agents"])
        done = await request(
            board, "set_agent_status", user_id=api.user_ids["agent"], status="not_ready"
        )
        assert done["ok"], done
        pushed = await until(agent_ws, "agent_state", status="not_ready")
        assert pushed["reason"] == "supervisor"
    audit = await (await supervisor.get("/api/v1/audit?entity=user")).json()
    assert "agent.status_set" in {e["action"] for e in audit["entries"]}


async def test_statuses_and_waiting_digital_contacts_survive_a_restart(
    tmp_path: Any, aiohttp_server: Any, aiohttp_client: Any, fast_hasher: None
) -> None:
    from routing.events import ContactQueued
    from routing.intake import open_contact
    from tests.component.api_fixtures import config_for

    first = await start_api(tmp_path, aiohttp_server, aiohttp_client)
    daemon = first.app[DAEMON]
    assert daemon.sessionmaker is not None and daemon.routing is not None
    agent_id = first.user_ids["agent"]
    await daemon.routing.set_status(
        agent_id, "not_ready", "lunch", actor=Actor(agent_id, "agent", "agent")
    )
    opened = await open_contact(
        daemon.sessionmaker,
        channel="chat",
        address="web:visitor-7",
        region="GB",
        address_kind="chat",
        queue="chat",
        at=1000.0,
    )
    await daemon.routing.on_queued(
        ContactQueued(opened.interaction_id, "chat", "chat", at=1000.0, address="web:visitor-7")
    )
    assert [c.id for c in daemon.routing.router.waiting("chat")] == [str(opened.interaction_id)]
    await first.server.close()

    app = make_app(config_for(tmp_path))
    server = await aiohttp_server(app)
    try:
        routing = app[DAEMON].routing
        assert routing is not None
        restored = routing.router.agents[agent_id]
        assert (restored.status, restored.reason) == ("not_ready", "lunch")
        waiting = routing.router.waiting("chat")
        assert [c.id for c in waiting] == [str(opened.interaction_id)]
        assert waiting[0].enqueued_at == 1000.0  # keeps its place
    finally:
        await server.close()


async def test_a_call_through_the_ivr_reaches_the_agent_with_what_was_keyed(api: Api) -> None:
    from datetime import UTC, datetime

    customer_id = await _customer(api)
    # The IVR's wall clock (the bundled flow's opening hours) is the Asterisk adapter's.
    pbx = api.app[DAEMON].telephony
    assert pbx is not None
    pbx.ivr_clock = lambda: datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday
    agent = await api.login("agent")
    supervisor = await api.login("supervisor")
    async with agent.client.ws_connect("/ws/agent") as ws:
        await request(ws, "set_status", status="ready")
        # Menu 1 (billing), then the account number: the customer's number in the store.
        response = await supervisor.post(
            "/api/v1/simulator/calls",
            json={"caller": "+44 7700 900111", "keys": ["1", f"{customer_id:05d}#"]},
        )
        assert response.status == 201, await response.text()
        placed = await response.json()
        assert placed["ivr_outcome"] == "queued"
        offer = await until(ws, "offer")
        assert offer["queue"] == "billing"
        assert offer["pop"]["customer"]["id"] == customer_id  # found by account number
        assert offer["ivr"]["inputs"]["main_menu"] == "1"
        assert offer["ivr"]["path"][:2] == ["welcome", "opening_hours"]
    # Closed on a Sunday: straight to voicemail, recorded on the interaction.
    pbx.ivr_clock = lambda: datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    closed = await (
        await supervisor.post("/api/v1/simulator/calls", json={"caller": "+447700900112"})
    ).json()
    assert closed["ivr_outcome"] == "voicemail"
    stored = await (await supervisor.get(f"/api/v1/interactions/{closed['interaction_id']}")).json()
    assert stored["end_cause"] == "ivr: voicemail"
    assert "closed" in stored["ivr_path"]
    # A caller who hangs up at the menu: how far they got is kept.
    pbx.ivr_clock = lambda: datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    gone = await (
        await supervisor.post(
            "/api/v1/simulator/calls", json={"caller": "+447700900113", "keys": ["hangup"]}
        )
    ).json()
    assert gone["ivr_outcome"] == "caller_hangup"
    stored = await (await supervisor.get(f"/api/v1/interactions/{gone['interaction_id']}")).json()
    assert stored["ivr_path"][-1] == "main_menu"
