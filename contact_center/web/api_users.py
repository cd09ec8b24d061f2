"""`/api/v1/users` (admins) and `/api/v1/audit` (supervisors and admins)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contact_center.keys import DAEMON
from contact_center.web.context import actor_of, transaction
from contact_center.web.errors import query_int, read_body
from contact_center.web.routes import ADMINS, SUPERVISORS, RouteSpec
from contact_center.web.serialize import audit_json, user_json
from crm_store import audit, users

Role = Literal["agent", "supervisor", "admin"]


class UserCreate(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    display_name: str | None = Field(default=None, max_length=200)
    role: Role
    password: str = Field(min_length=1, max_length=1024)
    skills: dict[str, int] = {}
    capacities: dict[str, int] = {}
    device: str | None = Field(default=None, max_length=200)


class UserUpdate(BaseModel):
    """Fields to change; absent fields are left alone."""

    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    skills: dict[str, int] | None = None
    capacities: dict[str, int] | None = None
    device: str | None = Field(default=None, max_length=200)


class PasswordChange(BaseModel):
    """A new password."""

    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=1024)


async def _sync_routing(request: web.Request, user_id: int) -> None:
    # The router learns about new agents and changed skills without a restart.
    routing = request.app[DAEMON].routing
    if routing is not None:
        await routing.sync_user(user_id)


async def _end_sessions(request: web.Request, user_id: int) -> None:
    daemon = request.app[DAEMON]
    await daemon.sessions.revoke_user(user_id)
    daemon.hub.end_user(user_id)


async def list_all(request: web.Request) -> web.Response:
    """Every user, active or not."""
    async with transaction(request) as db:
        payload = [user_json(u) for u in await users.list_users(db)]
    return web.json_response({"users": payload})


async def create(request: web.Request) -> web.Response:
    """Add a user."""
    body = await read_body(request, UserCreate)
    async with transaction(request) as db:
        user = await users.create_user(db, **body.model_dump(), actor=actor_of(request))
        payload = user_json(user)
    await _sync_routing(request, payload["id"])
    return web.json_response(payload, status=201)


async def update(request: web.Request) -> web.Response:
    """Change a user; a role change logs them out everywhere."""
    body = await read_body(request, UserUpdate)
    fields = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "device" in body.model_fields_set:
        fields["device"] = body.device
    async with transaction(request) as db:
        user = await users.update_user(
            db, request.match_info["username"], **fields, actor=actor_of(request)
        )
        payload = user_json(user)
    if "role" in fields:
        await _end_sessions(request, payload["id"])
    await _sync_routing(request, payload["id"])
    return web.json_response(payload)


async def _set_active(request: web.Request, active: bool) -> web.Response:
    async with transaction(request) as db:
        user = await users.set_user_active(
            db, request.match_info["username"], active, actor=actor_of(request)
        )
        payload = user_json(user)
    if not active:
        await _end_sessions(request, payload["id"])
    await _sync_routing(request, payload["id"])
    return web.json_response(payload)


async def disable(request: web.Request) -> web.Response:
    """Disable a user and end their sessions; their history stays."""
    return await _set_active(request, False)


async def enable(request: web.Request) -> web.Response:
    """Let a disabled user log in again."""
    return await _set_active(request, True)


async def set_password(request: web.Request) -> web.Response:
    """Set a user's password and end their sessions."""
    body = await read_body(request, PasswordChange)
    async with transaction(request) as db:
        user = await users.set_password(
            db, request.match_info["username"], body.password, actor=actor_of(request)
        )
        payload = user_json(user)
    await _end_sessions(request, payload["id"])
    return web.json_response(payload)


async def audit_log(request: web.Request) -> web.Response:
    """Newest audit entries, optionally for one entity."""
    limit = query_int(request, "limit", 100, high=1000)
    async with transaction(request) as db:
        entries = await audit.list_entries(
            db,
            limit=limit,
            entity=request.query.get("entity") or None,
            entity_id=request.query.get("entity_id") or None,
        )
        payload = [audit_json(e) for e in entries]
    return web.json_response({"entries": payload})


BASE = "/api/v1/users"
ONE = BASE + "/{username}"
ROUTES = [
    RouteSpec("GET", BASE, list_all, ADMINS, "List users"),
    RouteSpec("POST", BASE, create, ADMINS, "Create a user", body=UserCreate, status=201),
    RouteSpec("PATCH", ONE, update, ADMINS, "Update a user", body=UserUpdate),
    RouteSpec("POST", ONE + "/disable", disable, ADMINS, "Disable a user"),
    RouteSpec("POST", ONE + "/enable", enable, ADMINS, "Enable a user"),
    RouteSpec(
        "POST", ONE + "/password", set_password, ADMINS, "Set a password", body=PasswordChange
    ),
    RouteSpec(
        "GET",
        "/api/v1/audit",
        audit_log,
        SUPERVISORS,
        "The audit log",
        query=("limit", "entity", "entity_id"),
    ),
]
