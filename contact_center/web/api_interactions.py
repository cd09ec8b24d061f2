"""`/api/v1/interactions`: read one, its messages, and the agent's wrap-up.

Who reads what: `contact_center/web/access.py` (an agent gets 404 for an interaction they
may not read, as for one that does not exist).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from adapters.messaging.delivery import queue_reply
from contact_center.keys import DAEMON
from contact_center.web import access
from contact_center.web.context import actor_of, transaction
from contact_center.web.errors import ApiError, path_int, read_body
from contact_center.web.routes import ANY_USER, RouteSpec
from contact_center.web.serialize import interaction_json, message_json
from crm_store import audit, interactions, opt_outs
from crm_store.models import Message


class Reply(BaseModel):
    """What an agent writes to the customer of an email, SMS or chat contact."""

    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=100_000)
    subject: str | None = Field(default=None, max_length=998)
    # Email: the customer's last message quoted below the answer.
    quote: bool = False


class WrapUp(BaseModel):
    """What the agent records when the contact is over."""

    model_config = ConfigDict(extra="forbid")
    disposition: str = Field(min_length=1, max_length=64)
    notes: str | None = Field(default=None, max_length=10_000)
    customer_id: int | None = Field(default=None, ge=1)


async def read(request: web.Request) -> web.Response:
    """One interaction (any channel), if the user may read it."""
    interaction_id = path_int(request, "interaction_id")
    routing = request.app[DAEMON].routing
    if routing is not None:
        await routing.writer.flush()  # read what routing has already decided
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        ix = await access.readable_interaction(scope, db, interaction_id)
        payload = interaction_json(ix)
    return web.json_response(payload)


async def messages(request: web.Request) -> web.Response:
    """The email, SMS or chat messages of an interaction, oldest first."""
    interaction_id = path_int(request, "interaction_id")
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        await access.readable_interaction(scope, db, interaction_id)
        found = await interactions.list_messages(db, interaction_id)
        payload = [message_json(m) for m in found]
    return web.json_response({"messages": payload})


async def reply(request: web.Request) -> web.Response:
    """Queue a message to the contact's customer on its channel (agents: their own
    contacts); 202 with the stored message, `queued` until its channel sends it."""
    interaction_id = path_int(request, "interaction_id")
    body = await read_body(request, Reply)
    daemon = request.app[DAEMON]
    actor = actor_of(request)
    if daemon.routing is not None:
        await daemon.routing.writer.flush()  # who has the contact is written behind
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        ix = await access.readable_interaction(scope, db, interaction_id)
        if actor.role == "agent" and ix.agent_id != actor.user_id:
            raise ApiError(403, "auth.forbidden", "an agent answers only their own contacts")
        delivery = daemon.delivery
        if delivery is None or ix.channel not in delivery.senders:
            raise ApiError(
                409, "channel.not_running", f"the {ix.channel} channel is not running here"
            )
        if await opt_outs.is_opted_out(db, ix.channel, ix.address or ""):
            raise ApiError(
                409,
                "channel.opted_out",
                f"{ix.address} asked not to be contacted by {ix.channel} (opted out)",
            )
        message = await queue_reply(
            db,
            interaction_id,
            body=body.body,
            subject=body.subject,
            author_id=actor.user_id,
            provider_id=delivery.new_provider_id(ix.channel),
            quote=body.quote,
        )
        await audit.record(
            db, actor, "message.queued", "interaction", ix.id, {"message_id": message.id}
        )
        payload = message_json(message)
    delivery.wake()
    return web.json_response(payload, status=202)


def _stored_file(folder: str, ref: str) -> Path | None:
    """The attachment file `ref` names under `folder`; None when it is not there (or the
    ref would lead out of the folder)."""
    root = Path(folder).resolve()
    path = (root / ref).resolve()
    return path if root in path.parents and path.is_file() else None


async def attachment(request: web.Request) -> web.StreamResponse:
    """One attachment of a message the user may read, as a download (never shown inline:
    a mail's HTML file must not run as the daemon's page)."""
    interaction_id = path_int(request, "interaction_id")
    message_id = path_int(request, "message_id")
    index = path_int(request, "index")
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        await access.readable_interaction(scope, db, interaction_id)
        message = await db.get(Message, message_id)
        if message is None or message.interaction_id != interaction_id:
            raise ApiError(404, "request.not_found", f"no message {message_id} on this contact")
        items = message.attachments or []
        if not 0 <= index < len(items):
            raise ApiError(
                404, "request.not_found", f"message {message_id} has no attachment {index}"
            )
        item = items[index]
    ref = item.get("ref")
    if not ref or "://" in str(ref):
        reason = item.get("dropped") or ("kept at the provider" if ref else "not kept")
        raise ApiError(404, "request.not_found", f"attachment {index} is not stored here: {reason}")
    path = await asyncio.to_thread(
        _stored_file, request.app[DAEMON].config.channels.email.attachments_dir, str(ref)
    )
    if path is None:
        raise ApiError(404, "request.not_found", f"attachment {index} is missing from the store")
    response = web.FileResponse(path)
    response.content_type = "application/octet-stream"
    name = str(item.get("filename") or "attachment")
    response.headers["Content-Disposition"] = (
        f"attachment; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def wrap_up(request: web.Request) -> web.Response:
    """Save disposition and notes (and link the customer); agents only on their own."""
    interaction_id = path_int(request, "interaction_id")
    body = await read_body(request, WrapUp)
    dispositions = request.app[DAEMON].config.routing.dispositions
    if body.disposition not in dispositions:
        raise ApiError(
            400,
            "request.invalid",
            f"disposition: expected one of {', '.join(dispositions)}, got {body.disposition!r}",
        )
    actor = actor_of(request)
    routing = request.app[DAEMON].routing
    if routing is not None:
        # Who answered is written behind by routing: make sure it is stored before checking.
        await routing.writer.flush()
    fields: dict[str, object] = {"disposition": body.disposition, "notes": body.notes}
    if body.customer_id is not None:
        fields["customer_id"] = body.customer_id
    scope = await access.read_scope(request)
    async with transaction(request) as db:
        # 404 for what the agent may not even read; 403 for what they read but do not own.
        ix = await access.readable_interaction(scope, db, interaction_id)
        if actor.role == "agent" and ix.agent_id != actor.user_id:
            raise ApiError(403, "auth.forbidden", "an agent wraps up only their own contacts")
        ix = await interactions.update_interaction(db, interaction_id, **fields)
        await audit.record(db, actor, "interaction.wrapped_up", "interaction", ix.id, fields)
        payload = interaction_json(ix)
    return web.json_response(payload)


BASE = "/api/v1/interactions/{interaction_id}"
ROUTES = [
    RouteSpec("GET", BASE, read, ANY_USER, "Read an interaction"),
    RouteSpec("GET", BASE + "/messages", messages, ANY_USER, "Messages of an interaction"),
    RouteSpec(
        "POST", BASE + "/messages", reply, ANY_USER, "Write to the customer", body=Reply, status=202
    ),
    RouteSpec(
        "GET",
        BASE + "/messages/{message_id}/attachments/{index}",
        attachment,
        ANY_USER,
        "Download an attachment",
    ),
    RouteSpec("POST", BASE + "/wrap-up", wrap_up, ANY_USER, "Wrap up a contact", body=WrapUp),
]
