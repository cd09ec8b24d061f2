"""`/ws/agent` and `/ws/supervisor`: the live channel to the browser.

Server -> browser messages go through the hub (bounded per client). Browser -> server
messages are JSON objects with a `type`; every type declares the roles that may send
it, like HTTP routes, and is answered with `{"type": "reply", "ref": <its id>, ...}`.
Errors carry the same ids and statuses as over HTTP (`errors.translate_error`, the
catalogue `crm_store.error_ids`). What a browser can
make the server hold is bounded: the message size, the echoed `id`, and (in the hub)
the bytes queued for it and the sockets per user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from contact_center.auth.sessions import COOKIE_NAME
from contact_center.keys import DAEMON
from contact_center.web.context import current_session
from contact_center.web.errors import ApiError, parse_json, translate_error
from contact_center.web.hub import Client
from contact_center.web.routes import ANY_USER, SUPERVISORS, RouteSpec
from crm_store.error_ids import status_of

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20.0
# The largest message a browser legitimately sends is a few hundred bytes (texts are
# capped at 200 characters); bigger frames close the socket (1009) before being parsed.
MAX_MESSAGE_BYTES = 16 * 1024
# The `id` is echoed in the reply's `ref`: bounded, or each message could make the
# server queue 64 kB for a client that does not read.
MAX_ID_CHARS = 64

WsHandler = Callable[["WsContext", dict[str, Any]], Awaitable[dict[str, Any] | None]]
OnConnect = Callable[["WsContext"], Awaitable[None]]


@dataclass(frozen=True)
class WsContext:
    """What an inbound-message handler knows: the app, the client, its user."""

    app: web.Application
    client: Client


@dataclass(frozen=True)
class WsMessageSpec:
    """One browser -> server message type and the roles allowed to send it."""

    type: str
    roles: frozenset[str]
    handler: WsHandler
    summary: str


WS_MESSAGES: web.AppKey[dict[str, WsMessageSpec]] = web.AppKey("ws_messages", dict)
WS_ON_CONNECT: web.AppKey[list[OnConnect]] = web.AppKey("ws_on_connect", list)


def add_ws_messages(app: web.Application, specs: Iterable[WsMessageSpec]) -> None:
    """Register inbound message types (each with its roles)."""
    if WS_MESSAGES not in app:
        app[WS_MESSAGES] = {}
    for spec in specs:
        if not spec.roles:
            raise ValueError(f"websocket message {spec.type!r}: no roles declared")
        if spec.type in app[WS_MESSAGES]:
            raise ValueError(f"websocket message {spec.type!r} registered twice")
        app[WS_MESSAGES][spec.type] = spec


def on_connect(app: web.Application, callback: OnConnect) -> None:
    """Run `callback` for each new socket (to send the current state, say)."""
    if WS_ON_CONNECT not in app:
        app[WS_ON_CONNECT] = []
    app[WS_ON_CONNECT].append(callback)


def _same_origin(request: web.Request) -> bool:
    # Browsers always send Origin on WebSocket upgrades; a page on another site must
    # not ride the agent's cookie into this socket.
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (CLI tools, tests): the cookie is still required
    netloc = urlsplit(origin).netloc
    # Behind a TLS proxy the page's origin is the public address, which the proxy may not
    # pass on as Host: `web.public_url` names it.
    public = request.app[DAEMON].config.web.public_url
    return netloc == request.host or (public is not None and netloc == urlsplit(public).netloc)


async def _serve(request: web.Request, kind: str) -> web.StreamResponse:
    session = current_session(request)
    if not _same_origin(request):
        raise ApiError(403, "auth.origin", "websocket from another origin refused")
    daemon = request.app[DAEMON]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    hub = daemon.hub
    client = hub.connect(
        ws, user_id=session.user_id, username=session.username, role=session.role, kind=kind
    )
    writer = asyncio.create_task(hub.writer(client), name=f"ws-writer-{client.id}")
    context = WsContext(request.app, client)
    try:
        hub.to_client(
            client,
            {
                "type": "hello",
                "channel": kind,
                "user": session.public()["user"],
                "server_time": time.time(),
                "heartbeat_seconds": HEARTBEAT_SECONDS,
            },
        )
        for callback in request.app.get(WS_ON_CONNECT, []):
            await callback(context)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                reply = await _handle(request, context, message.data)
                hub.to_client(client, reply)
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        _drop_heartbeat_callback(request)
        hub.disconnect(client)
        await writer
    return ws


def _drop_heartbeat_callback(request: web.Request) -> None:
    # aiohttp (3.14) leaves the socket's heartbeat callback on the connection's protocol
    # when the socket ends: protocol -> ws -> request -> protocol, a cycle of ~30 objects
    # only a full collection frees. The daemon freezes long-lived objects out of the
    # collector's way (contact_center/heap.py), so the cycle would stay until the next
    # compaction: with no callback left, reference counting frees the socket at once.
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None


async def _handle(request: web.Request, context: WsContext, data: str) -> dict[str, Any]:
    try:
        parsed = parse_json(data, what="the message")
    except ApiError as exc:
        return _error(None, exc.error_id, exc.message, exc.status)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        return _error(None, "request.invalid", 'a message is an object with a "type"')
    ref = parsed.get("id")
    if not _valid_ref(ref):
        return _error(
            None, "request.invalid", f"id: a number or a text of at most {MAX_ID_CHARS} characters"
        )
    daemon = request.app[DAEMON]
    try:
        cookie_session = await daemon.sessions.get(request.cookies.get(COOKIE_NAME), time.time())
    except Exception as exc:
        # The sessions' store is down: this message fails, the socket stays.
        api = translate_error(exc)
        if api is None:
            raise
        return _error(ref, api.error_id, api.message, api.status)
    if cookie_session is None:
        # Logged out or expired since the socket opened: stop serving it.
        await context.client.ws.close(code=4001, message=b"session ended")
        return _error(ref, "auth.required", "log in first")
    spec = request.app.get(WS_MESSAGES, {}).get(parsed["type"])
    if spec is None:
        return _error(ref, "request.unknown_type", f"unknown message type {_shown(parsed['type'])}")
    if context.client.role not in spec.roles:
        return _error(ref, "auth.forbidden", f"a {context.client.role} may not send {spec.type}")
    try:
        result = await spec.handler(context, parsed)
    except Exception as exc:
        # The same translation as HTTP: store, routing, telephony, database outage.
        api = translate_error(exc)
        if api is not None:
            return _error(ref, api.error_id, api.message, api.status)
        log.exception("websocket message %s failed", spec.type)
        return _error(ref, "internal", "internal error; the daemon log has the details")
    return {"type": "reply", "ref": ref, "ok": True, "result": result}


def _valid_ref(ref: Any) -> bool:
    # Numbers are already bounded to 64 bits by parse_json.
    if ref is None or isinstance(ref, int | float):
        return True
    return isinstance(ref, str) and len(ref) <= MAX_ID_CHARS


def _shown(value: str) -> str:
    return repr(value) if len(value) <= MAX_ID_CHARS else repr(value[:MAX_ID_CHARS] + "...")


def _error(ref: Any, error_id: str, message: str, status: int | None = None) -> dict[str, Any]:
    # The HTTP status the same error gets over HTTP: the browser handles both alike.
    error = {"id": error_id, "message": message, "status": status or status_of(error_id) or 500}
    return {"type": "reply", "ref": ref, "ok": False, "error": error}


async def agent_socket(request: web.Request) -> web.StreamResponse:
    """The agent desktop's live channel: offers, screen pops, own state."""
    return await _serve(request, "agent")


async def supervisor_socket(request: web.Request) -> web.StreamResponse:
    """The wallboard's live channel: queue and agent figures."""
    return await _serve(request, "supervisor")


async def ping(context: WsContext, message: dict[str, Any]) -> dict[str, Any]:
    """Application-level ping (the browser cannot see protocol pings)."""
    return {"pong": time.time()}


ROUTES = [
    RouteSpec("GET", "/ws/agent", agent_socket, ANY_USER, "Agent desktop WebSocket"),
    RouteSpec("GET", "/ws/supervisor", supervisor_socket, SUPERVISORS, "Wallboard WebSocket"),
]
MESSAGES = [WsMessageSpec("ping", ANY_USER, ping, "Answered with a pong")]
