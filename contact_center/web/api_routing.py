"""Routing over the web: agents' and supervisors' WebSocket messages, live figures, and
the simulated PBX's controls."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contact_center.keys import DAEMON
from contact_center.notifier import (
    agent_state_message,
    agents_message,
    contact_message,
    history_message,
    queues_message,
)
from contact_center.web.errors import ApiError, path_int, read_body
from contact_center.web.routes import ANY_USER, SUPERVISORS, RouteSpec
from contact_center.web.ws import WsContext, WsMessageSpec
from crm_store.actors import Actor
from routing.service import RoutingService


def _service(app: web.Application) -> RoutingService:
    service = app[DAEMON].routing
    if service is None:
        raise ApiError(503, "routing.unavailable", "routing is not running")
    return service


def _actor(context: WsContext) -> Actor:
    client = context.client
    return Actor(client.user_id, client.username, client.role)


def _int(message: dict[str, Any], key: str) -> int:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "request.invalid", f"{key}: expected an integer, got {value!r}")
    return value


def _text(message: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = message.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ApiError(400, "request.invalid", f"{key}: expected a short text, got {value!r}")
    return value.strip()


# --- agent messages ---------------------------------------------------------------


async def set_status(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"status": "ready"|"not_ready"|"offline", "reason": code}: the agent's own status."""
    service = _service(context.app)
    state = await service.set_status(
        context.client.user_id,
        _text(message, "status") or "",
        _text(message, "reason", required=False),
        actor=_actor(context),
    )
    return agent_state_message(state)


async def accept_offer(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"offer_id": n}: take the offered contact (answers a simulated call)."""
    await _service(context.app).accept(context.client.user_id, _int(message, "offer_id"))
    return {"accepted": message["offer_id"]}


async def reject_offer(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"offer_id": n}: decline; the contact goes to another agent."""
    await _service(context.app).reject(context.client.user_id, _int(message, "offer_id"))
    return {"rejected": message["offer_id"]}


async def call_action(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"interaction_id", "action": hangup|hold|unhold|transfer, "target"}."""
    await _service(context.app).call_action(
        context.client.user_id,
        _int(message, "interaction_id"),
        _text(message, "action") or "",
        _text(message, "target", required=False),
    )
    return {"done": message["action"]}


async def dial(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"number"}: click-to-dial from the agent's device."""
    interaction_id = await _service(context.app).dial(
        context.client.user_id, _text(message, "number") or ""
    )
    return {"interaction_id": interaction_id}


async def finish_wrap_up(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """End wrap-up now and take the next contact."""
    await _service(context.app).finish_wrap_up(context.client.user_id)
    return {"wrap_up": "finished"}


async def link_customer(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"interaction_id", "customer_id"}: the unknown caller is this customer."""
    await _service(context.app).link_customer(
        context.client.user_id, _int(message, "interaction_id"), _int(message, "customer_id")
    )
    return {"linked": message["customer_id"]}


# --- supervisor messages ----------------------------------------------------------


async def set_agent_status(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"user_id", "status", "reason"}: set an agent not ready or log them out (audited)."""
    service = _service(context.app)
    state = await service.set_status(
        _int(message, "user_id"),
        _text(message, "status") or "",
        _text(message, "reason", required=False)
        or ("supervisor" if message.get("status") == "not_ready" else None),
        actor=_actor(context),
    )
    return agent_state_message(state)


async def spy(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """{"user_id", "mode": listen|whisper|barge}: from the supervisor's own device."""
    await _service(context.app).spy(
        _actor(context), _int(message, "user_id"), _text(message, "mode") or ""
    )
    return {"spying": message["mode"]}


async def on_connect(context: WsContext) -> None:
    """A new socket gets the current state at once."""
    service = context.app[DAEMON].routing
    if service is None:
        return
    hub = context.app[DAEMON].hub
    client = context.client
    if client.kind == "agent" and client.user_id in service.agents:
        # A live desktop: confirms a "ready" restored after a restart (routing.service).
        await service.agent_present(client.user_id)
        hub.to_client(client, agent_state_message(service.agent_state(client.user_id)))
        for info in service.contacts.values():
            if info.agent_id == client.user_id and info.state not in ("waiting", "closed"):
                hub.to_client(client, contact_message(info))
    elif client.kind == "supervisor":
        now = service.clock()
        hub.to_client(client, history_message(service.history()))
        hub.to_client(client, queues_message(now, service.queue_snapshot(now)))
        hub.to_client(client, agents_message(now, service.agent_snapshot(now)))


# --- REST -------------------------------------------------------------------------


async def queues(request: web.Request) -> web.Response:
    """Live figures per queue (waiting, longest wait, agents, windowed KPIs)."""
    service = _service(request.app)
    return web.json_response({"queues": service.queue_snapshot(service.clock())})


async def agents(request: web.Request) -> web.Response:
    """Live state of every agent with today's figures."""
    service = _service(request.app)
    agents = service.agent_snapshot(service.clock())
    return web.json_response({"agents": [agent_state_message(a) for a in agents]})


class SimulatedCall(BaseModel):
    """A call to place on the simulated PBX."""

    model_config = ConfigDict(extra="forbid")
    caller: str = Field(min_length=1, max_length=64)
    # Either straight into a queue (the IVR already done), or through an IVR flow with
    # the keys the caller presses at each question ("hangup" hangs up there).
    queue: str | None = Field(default=None, min_length=1, max_length=64)
    flow: str | None = Field(default=None, min_length=1, max_length=64)
    keys: list[str] = Field(default=[], max_length=20)
    dnis: str = Field(default="5000", max_length=32)
    priority: int = Field(default=0, ge=0, le=100)
    skills: dict[str, int] = {}
    ivr_path: list[str] = Field(default=[], max_length=50)
    ivr_inputs: dict[str, str] = {}


def _simulator(request: web.Request) -> Any:
    daemon = request.app[DAEMON]
    if daemon.simulator is None:
        raise ApiError(409, "simulator.off", "the PBX is not simulated (pbx.mode)")
    return daemon.simulator


async def place_call(request: web.Request) -> web.Response:
    """A simulated caller rings in, goes through the IVR and waits in a queue."""
    simulator = _simulator(request)
    body = await read_body(request, SimulatedCall)
    config = request.app[DAEMON].config
    if body.queue is None:
        flow = body.flow or config.ivr.default_flow
        if flow not in simulator.flows:
            raise ApiError(400, "request.invalid", f"flow: no IVR flow named {flow!r}")
        interaction_id, outcome = await simulator.call_through_ivr(
            body.caller, flow, body.keys, dnis=body.dnis
        )
        return web.json_response(
            {"interaction_id": interaction_id, "ivr_outcome": outcome}, status=201
        )
    if body.queue not in {q.name for q in config.queues}:
        raise ApiError(400, "request.invalid", f"queue: no queue named {body.queue!r}")
    interaction_id = await simulator.place_call(
        body.caller,
        body.queue,
        dnis=body.dnis,
        priority=body.priority,
        skills=body.skills,
        ivr_path=body.ivr_path,
        ivr_inputs=body.ivr_inputs,
    )
    return web.json_response({"interaction_id": interaction_id}, status=201)


async def hang_up_call(request: web.Request) -> web.Response:
    """The simulated caller hangs up."""
    simulator = _simulator(request)
    await simulator.caller_hangs_up(path_int(request, "interaction_id"))
    return web.json_response({"hung_up": True})


ROUTES = [
    RouteSpec("GET", "/api/v1/queues", queues, SUPERVISORS, "Live queue figures"),
    RouteSpec("GET", "/api/v1/agents", agents, SUPERVISORS, "Live agent states"),
    RouteSpec(
        "POST",
        "/api/v1/simulator/calls",
        place_call,
        SUPERVISORS,
        "Place a simulated call",
        body=SimulatedCall,
        status=201,
    ),
    RouteSpec(
        "POST",
        "/api/v1/simulator/calls/{interaction_id}/hangup",
        hang_up_call,
        SUPERVISORS,
        "The simulated caller hangs up",
    ),
]

MESSAGES = [
    WsMessageSpec("set_status", ANY_USER, set_status, "Set my status"),
    WsMessageSpec("accept_offer", ANY_USER, accept_offer, "Accept an offer"),
    WsMessageSpec("reject_offer", ANY_USER, reject_offer, "Reject an offer"),
    WsMessageSpec("call_action", ANY_USER, call_action, "Hang up, hold, unhold, transfer"),
    WsMessageSpec("dial", ANY_USER, dial, "Click-to-dial"),
    WsMessageSpec("finish_wrap_up", ANY_USER, finish_wrap_up, "End wrap-up"),
    WsMessageSpec("link_customer", ANY_USER, link_customer, "Link the contact to a customer"),
    WsMessageSpec("set_agent_status", SUPERVISORS, set_agent_status, "Set an agent's status"),
    WsMessageSpec("spy", SUPERVISORS, spy, "Listen, whisper or barge"),
]
