"""Operational routes: liveness, component status, Prometheus metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from contact_center import __version__
from contact_center.keys import DAEMON
from contact_center.web.routes import PUBLIC, RouteSpec

DB_CHECK_SECONDS = 2.0
# How long the SQLite write probe waits for a lock before saying "down" (the store's own
# busy time-out is 5 s; /status must answer sooner than a write would fail).
WRITE_PROBE_MS = 1000


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
                if conn.dialect.name == "sqlite":
                    await _sqlite_write_probe(conn)
                else:
                    await conn.execute(text("SELECT 1"))
    except (Exception, TimeoutError) as exc:
        daemon.health.set("database", "down", daemon.database_detail, error=_short(exc))
    else:
        daemon.health.set("database", "up", daemon.database_detail)


async def _sqlite_write_probe(conn: AsyncConnection) -> None:
    # WAL lets SELECT through while another connection holds the write lock, so a read
    # would say "up" while every write fails: take the write lock for an instant instead.
    # BEGIN IMMEDIATE writes nothing; the ROLLBACK releases it at once.
    busy_ms = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
    await conn.exec_driver_sql(f"PRAGMA busy_timeout={WRITE_PROBE_MS}")
    try:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
        await conn.exec_driver_sql("ROLLBACK")
    finally:
        await conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy_ms)}")


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
