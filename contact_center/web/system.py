"""Operational routes: liveness, component status, Prometheus metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from contact_center import __version__
from contact_center.keys import DAEMON
from contact_center.web.routes import PUBLIC, RouteSpec

DB_CHECK_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers HTTP. Dependencies are `/status`'s business."""
    return web.json_response({"status": "ok"})


async def status(request: web.Request) -> web.Response:
    """Each component's state, with the last error it reported."""
    daemon = request.app[DAEMON]
    await _check_database(request)
    components = {c.name: c.as_dict() for c in daemon.health.all()}
    healthy = daemon.health.healthy()
    body = {
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "started_at": daemon.started_at.isoformat(),
        "uptime_seconds": round((datetime.now(UTC) - daemon.started_at).total_seconds(), 1),
        "components": components,
    }
    return web.json_response(body, status=200 if healthy else 503)


async def _check_database(request: web.Request) -> None:
    # Asked on each /status so the page tells the truth now, not at start-up.
    daemon = request.app[DAEMON]
    if daemon.engine is None:
        return
    try:
        async with asyncio.timeout(DB_CHECK_SECONDS):
            async with daemon.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except (Exception, TimeoutError) as exc:
        daemon.health.set("database", "down", daemon.database_detail, error=_short(exc))
    else:
        daemon.health.set("database", "up", daemon.database_detail)


def _short(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text_}"[:300]


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the daemon's registry."""
    registry = request.app[DAEMON].metrics.registry
    body = generate_latest(registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


ROUTES = [
    RouteSpec("GET", "/healthz", healthz, PUBLIC, "Liveness probe"),
    RouteSpec("GET", "/status", status, PUBLIC, "State of each component"),
    RouteSpec("GET", "/metrics", metrics, PUBLIC, "Prometheus metrics"),
]
