"""The real aiohttp app on loopback: /healthz, /status, /metrics, the landing page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from contact_center.app import make_app
from contact_center.keys import DAEMON
from contact_center.web.routes import declared_roles
from tests.component.api_fixtures import config_for as api_config_for

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def config_for(tmp_path: Path, **sections: Any) -> Any:
    # The shipped queues: the bundled IVR flows must find theirs.
    return api_config_for(tmp_path, **sections)


async def test_healthz(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await aiohttp_client(make_app(config_for(tmp_path)))
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_status_lists_every_component(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await aiohttp_client(make_app(config_for(tmp_path)))
    response = await client.get("/status")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    components = body["components"]
    assert components["database"]["state"] == "up"
    assert "cc.db" in components["database"]["detail"]
    assert components["pbx"]["state"] == "up"
    assert components["pbx"]["detail"].startswith("simulated")
    for name in ("channel.email", "channel.sms"):
        assert components[name]["state"] == "disabled"
    assert components["channel.chat"]["state"] == "up"  # on in the shipped config


async def test_status_reports_pbx_off(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await aiohttp_client(make_app(config_for(tmp_path, pbx={"mode": "off"})))
    body = await (await client.get("/status")).json()
    assert body["components"]["pbx"]["state"] == "disabled"


async def test_status_degraded_when_database_goes_away(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    app = make_app(config_for(tmp_path))
    client = await aiohttp_client(app)
    daemon = app[DAEMON]
    assert daemon.engine is not None
    # Point the engine at a server that refuses connections: /status must notice now.
    from crm_store.database import make_engine

    await daemon.engine.dispose()
    daemon.engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    response = await client.get("/status")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["components"]["database"]["state"] == "down"
    assert body["components"]["database"]["last_error"]


async def test_metrics_prometheus_text(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await aiohttp_client(make_app(config_for(tmp_path)))
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert 'cc_component_state{component="database",state="up"} 1.0' in text
    assert 'cc_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "cc_build_info{version=" in text
    assert "process_cpu_seconds_total" in text


async def test_unknown_route_counted_with_bounded_label(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(make_app(config_for(tmp_path)))
    for path in ("/a", "/b", "/c"):
        assert (await client.get(path)).status == 404
    text = await (await client.get("/metrics")).text()
    assert 'route="unmatched",status="404"} 3.0' in text
    assert 'route="/a"' not in text


async def test_landing_page_escapes_and_lists_components(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    app = make_app(config_for(tmp_path))
    client = await aiohttp_client(app)
    app[DAEMON].health.set("probe", "down", "<script>x</script>", error="<b>bad</b>")
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200
    assert "database" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<script>" not in html


def test_every_route_declares_roles(tmp_path: Path) -> None:
    app = make_app(config_for(tmp_path))
    routes = [r for r in app.router.routes() if r.method != "HEAD"]
    assert routes
    for route in routes:
        assert declared_roles(route), f"{route.method} {route.resource}: no roles declared"


async def test_new_database_is_migrated_at_start(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    from crm_store import migrate

    config = config_for(tmp_path)
    assert await migrate.current_revision(config.database.url) is None
    await aiohttp_client(make_app(config))
    assert await migrate.is_up_to_date(config.database.url)


async def test_outdated_database_refuses_to_start(tmp_path: Path) -> None:
    from contact_center.app import DatabaseBehind
    from crm_store import migrate

    config = config_for(tmp_path)
    await migrate.upgrade(config.database.url)
    # Simulate a store made by an older release: a revision older than head.
    from sqlalchemy import text

    from crm_store.database import make_engine

    engine = make_engine(config.database.url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'ancient'"))
    await engine.dispose()
    app = make_app(config)
    runner = web.AppRunner(app)
    with pytest.raises(Exception) as info:
        await runner.setup()
    await runner.cleanup()
    assert isinstance(info.value, DatabaseBehind)
    assert "contact-center db upgrade" in str(info.value)
