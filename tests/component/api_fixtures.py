"""A running daemon app on loopback with one logged-in client per role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import make_app
from contact_center.config import parse_config
from contact_center.keys import DAEMON
from crm_store import users

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
ServerFactory = Callable[..., Awaitable[TestServer]]

PASSWORDS = {"admin": "admin-pass-1", "supervisor": "super-pass-1", "agent": "agent-pass-1"}


SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def config_for(tmp_path: Path, **sections: Any) -> Any:
    """The shipped config.yaml (queues, skills, routing) on a fresh SQLite file."""
    raw: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw["database"] = {"url": f"sqlite+aiosqlite:///{tmp_path}/cc.db"}
    raw["pbx"] = {"mode": "simulated"}
    if "queues" in sections and "channels" not in sections:
        # A test's own queues leave out the shipped chat queue: no chat then.
        raw["channels"] = {**raw["channels"], "chat": {"enabled": False}}
    raw.update(sections)
    return parse_config(raw, {})


# An IVR flow without the bundled one's opening hours: tests pass at any time of day.
FLOW = """name: main
start: welcome
steps:
  welcome: {type: play, prompt: welcome.wav, next: menu}
  menu:
    type: menu
    prompt: menu.wav
    choices: {"1": billing, "2": support}
    retries: 1
    invalid: support
    timeout: support
  billing: {type: queue, queue: billing}
  support: {type: queue, queue: support}
"""


def asterisk_config_for(tmp_path: Path, ami_port: int, **sections: Any) -> Any:
    """`config_for` with `pbx.mode: asterisk`: AMI on 127.0.0.1:`ami_port` (a fake or the
    simulated Asterisk), FastAGI on a free port."""
    pbx = {
        "mode": "asterisk",
        "ami": {"host": "127.0.0.1", "port": ami_port, "username": "cti"},
        "agi": {"host": "127.0.0.1", "port": 0},
    }
    return config_for(tmp_path, pbx=pbx, **sections)


@dataclass
class Api:
    """The app, its server, and a way to get logged-in clients."""

    app: web.Application
    server: TestServer
    new_client: ClientFactory
    user_ids: dict[str, int]

    async def anonymous(self) -> TestClient[Any, Any]:
        """A client with its own cookie jar, not logged in."""
        return await self.new_client(self.server)

    async def login(self, username: str) -> Session:
        """A client logged in as `username` (one of PASSWORDS, or created with agent-pass-1)."""
        client = await self.anonymous()
        password = PASSWORDS.get(username, "agent-pass-1")
        response = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        return Session(client, body["csrf_token"], body["user"])


@dataclass
class Session:
    """A logged-in client that sends its CSRF token on changes."""

    client: TestClient[Any, Any]
    csrf: str
    user: dict[str, Any]

    def _headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.client.get(path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.client.post(path, json=json, headers=self._headers(), **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.client.patch(path, json=json, headers=self._headers(), **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.client.delete(path, headers=self._headers(), **kw)


async def start_api(
    tmp_path: Path, server_factory: ServerFactory, client_factory: ClientFactory, **sections: Any
) -> Api:
    """Start the daemon app and create an admin, a supervisor and an agent."""
    app = make_app(config_for(tmp_path, **sections))
    server = await server_factory(app)
    sessionmaker = app[DAEMON].sessionmaker
    assert sessionmaker is not None
    ids: dict[str, int] = {}
    async with sessionmaker.begin() as db:
        for role, password in PASSWORDS.items():
            user = await users.create_user(
                db,
                username=role,
                role=role,
                password=password,
                skills={"billing": 5, "support": 5},
                device="PJSIP/1001" if role == "agent" else None,
            )
            ids[role] = user.id
    routing = app[DAEMON].routing
    if routing is not None:
        for user_id in ids.values():
            await routing.sync_user(user_id)
    return Api(app, server, client_factory, ids)


def json_body_routes(app: web.Application) -> list[Any]:
    """Every route that takes a JSON body (its RouteSpec), in a stable order."""
    from contact_center.web.routes import route_spec

    found = []
    for route in app.router.routes():
        spec = route_spec(route)
        if spec is not None and spec.body is not None and route.method != "HEAD":
            found.append(spec)
    return sorted(found, key=lambda s: (s.path, s.method))
