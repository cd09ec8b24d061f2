"""API errors as JSON with a stable id: `{"error": {"id": ..., "message": ...}}`.

Our exceptions (every `ContactCenterError`: store, routing, telephony) are translated
here, at the boundary, so handlers stay straight-line: the status is the one the error
catalogue (`crm_store.error_ids`) gives the exception's id, for HTTP and WebSocket alike.
So are database outages (503 `database.unavailable` with `Retry-After`), and so is
untrusted JSON: `parse_json` bounds its size, depth and numbers before any handler sees it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from crm_store import outage
from crm_store.error_ids import status_of
from crm_store.errors import ContactCenterError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Every integer column is a signed 64-bit one (SQLite INTEGER, PostgreSQL BIGINT at most):
# a bigger number cannot name anything, and reaching the driver with one is a 500.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# No request body or WebSocket message of ours nests deeper than a few levels.
MAX_JSON_DEPTH = 32
# aiohttp's own default (client_max_size), stated here so the 413 carries our id.
MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = 5
_DIGITS = re.compile(r"[0-9]{1,19}")

# During an outage every request fails the same way: one log line per interval, counted.
_OUTAGE_LOG_SECONDS = 10.0
_outage_log = {"at": -_OUTAGE_LOG_SECONDS, "suppressed": 0}


class ApiError(ContactCenterError):
    """An error answered to the client as-is (its status agrees with the catalogue's)."""

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
        self.details = details
        self.headers = headers or {}


def database_unavailable_error() -> ApiError:
    """The 503 every database outage is answered with (HTTP and WebSocket alike)."""
    return ApiError(
        503,
        "database.unavailable",
        "the database is not answering; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def translate_error(exc: BaseException) -> ApiError | None:
    """The client-facing error for one of our exceptions; None for a bug (a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if outage.is_unavailable(exc):
        # Checked before the catalogue: the store wraps driver errors in a plain StoreError.
        _log_outage(exc)
        return database_unavailable_error()
    if not isinstance(exc, ContactCenterError):
        return None
    # An id missing from the catalogue (the source scan test forbids it) falls back on
    # its class's own id: a TelephonyError stays a 409, whatever it names.
    status = status_of(exc.error_id) or status_of(type(exc).error_id)
    if status is None or status == 500:
        # Start-up, CLI or file errors are not meant for a client: answered as a bug.
        return None
    if exc.error_id == "database.unavailable":
        return database_unavailable_error()
    return ApiError(status, exc.error_id, exc.message)


def _log_outage(exc: BaseException) -> None:
    now = time.monotonic()
    if now - _outage_log["at"] < _OUTAGE_LOG_SECONDS:
        _outage_log["suppressed"] += 1
        return
    more = _outage_log["suppressed"]
    _outage_log.update(at=now, suppressed=0)
    log.warning(
        "database unavailable, answering 503: %s%s",
        _one_line(exc),
        f" ({more} more since the last report)" if more else "",
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


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
    except web.HTTPException as exc:
        if not _wants_json(request) or exc.status < 400:
            raise
        return error_response(exc.status, f"http.{exc.status}", exc.reason, headers=None)
    except Exception as exc:
        api = translate_error(exc)
        if api is not None:
            return error_response(
                api.status, api.error_id, api.message, details=api.details, headers=api.headers
            )
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not _wants_json(request):
            raise
        return error_response(500, "internal", "internal error; the daemon log has the details")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes, *, what: str = "the body") -> Any:
    """Untrusted JSON text as Python values, bounded; a 400 ApiError when it is not.

    Python's parser alone accepts NaN and Infinity, numbers of any size (up to a 4,300-digit
    ValueError) and nesting up to a RecursionError: each of those was a 500.
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "request.json", f"{what} is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "request.json", f"{what} is not valid JSON: not UTF-8 text") from None
    except RecursionError:
        raise ApiError(
            400, "request.json", f"{what} nests deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:  # the int-digit limit, NaN/Infinity
        raise ApiError(400, "request.json", f"{what} is not valid JSON: {str(exc)[:200]}") from None
    check_json_bounds(value)
    return value


def check_json_bounds(value: Any) -> None:
    """400 `request.invalid` naming the field when `value` nests too deep or holds a number
    no column can store (outside signed 64 bits, or not finite)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if len(where) > MAX_JSON_DEPTH:
            _out_of_bounds(where, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, (*where, str(k)[:64])) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*where, str(i))) for i, v in enumerate(item))
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            _out_of_bounds(where, "integer out of range (signed 64 bits)")
        elif isinstance(item, float) and not math.isfinite(item):
            _out_of_bounds(where, "number out of range")


def _out_of_bounds(where: tuple[str, ...], problem: str) -> None:
    field = ".".join(where) or "body"
    message = f"{field}: {problem}"
    raise ApiError(400, "request.invalid", message, details=[message])


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body validated by `model`; a 4xx ApiError otherwise."""
    if request.content_type != "application/json":
        raise ApiError(415, "request.content_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large()
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large() from None
    if len(data) > MAX_BODY_BYTES:
        raise _too_large()
    raw = parse_json(data)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors(include_url=False)]
        raise ApiError(400, "request.invalid", "; ".join(problems), details=problems) from None


def _too_large() -> ApiError:
    return ApiError(413, "request.too_large", f"the body is over {MAX_BODY_BYTES} bytes")


def _problem(err: Any) -> str:
    where = ".".join(str(part) for part in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


def _shown(raw: str) -> str:
    # Echo a bad value back, but never a 5,000-character one.
    return repr(raw) if len(raw) <= 40 else repr(raw[:40] + "...")


def query_int(
    request: web.Request, name: str, default: int, *, low: int = 1, high: int = 1000
) -> int:
    """An integer query parameter within [low, high]; 400 otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    digits = raw[1:] if raw.startswith("-") else raw
    if not _DIGITS.fullmatch(digits):
        # Plain decimal digits only: int() also takes "1_000", " 7" and other scripts' digits,
        # and chokes (ValueError) past 4,300 of them.
        if digits.isascii() and digits.isdigit():
            problem = f"expected {low}..{high}"
        else:
            problem = "expected an integer"
        raise ApiError(400, "request.query", f"{name}: {problem}, got {_shown(raw)}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, "request.query", f"{name}: expected {low}..{high}, got {value}")
    return value


def path_int(request: web.Request, name: str) -> int:
    """An integer path segment; 404 when it is not one, or too big to name anything."""
    raw = request.match_info[name]
    if not _DIGITS.fullmatch(raw) or int(raw) > INT64_MAX:
        raise ApiError(404, "request.not_found", f"no such {name}: {_shown(raw)}")
    return int(raw)
