"""API errors as JSON with a stable id: `{"error": {"id": ..., "message": ...}}`.

Store errors are translated here, at the boundary, so handlers stay straight-line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from contact_center.telephony import TelephonyError
from crm_store.errors import (
    Conflict,
    IllegalTransition,
    InvalidData,
    NotFound,
    PermissionDenied,
    StoreError,
)
from routing.router import RoutingError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_STORE_STATUS: dict[type[StoreError], int] = {
    NotFound: 404,
    InvalidData: 400,
    Conflict: 409,
    IllegalTransition: 409,
    PermissionDenied: 403,
}


class ApiError(Exception):
    """An error answered to the client as-is."""

    def __init__(
        self,
        status: int,
        error_id: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(
    status: int,
    error_id: str,
    message: str,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The JSON body every API error has."""
    body: dict[str, Any] = {"id": error_id, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status, headers=headers)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/ws/")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn our exceptions (and, under /api/, HTTP errors) into JSON error bodies."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(
            exc.status, exc.error_id, exc.message, details=exc.details, headers=exc.headers
        )
    except StoreError as exc:
        status = next((s for cls, s in _STORE_STATUS.items() if isinstance(exc, cls)), 400)
        return error_response(status, exc.error_id, exc.message)
    except RoutingError as exc:
        return error_response(409, exc.error_id, exc.message)
    except TelephonyError as exc:
        # The PBX refused or the call is gone: the request cannot be done now.
        return error_response(409, exc.error_id, exc.message)
    except web.HTTPException as exc:
        if not _wants_json(request) or exc.status < 400:
            raise
        return error_response(exc.status, f"http.{exc.status}", exc.reason, headers=None)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not _wants_json(request):
            raise
        return error_response(500, "internal", "internal error; the daemon log has the details")


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body validated by `model`; a 4xx ApiError otherwise."""
    if request.content_type != "application/json":
        raise ApiError(415, "request.content_type", "send the body as application/json")
    try:
        raw = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "request.json", f"the body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors(include_url=False)]
        raise ApiError(400, "request.invalid", "; ".join(problems), details=problems) from None


def _problem(err: Any) -> str:
    where = ".".join(str(part) for part in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


def query_int(
    request: web.Request, name: str, default: int, *, low: int = 1, high: int = 1000
) -> int:
    """An integer query parameter within [low, high]; 400 otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "request.query", f"{name}: expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(400, "request.query", f"{name}: expected {low}..{high}, got {value}")
    return value


def path_int(request: web.Request, name: str) -> int:
    """An integer path segment; 404 when it is not one (no such resource)."""
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise ApiError(404, "request.not_found", f"no such {name}: {raw!r}") from None
