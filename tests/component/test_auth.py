"""Login, sessions, CSRF, rate limit, and the route table's role declarations."""

from __future__ import annotations

import re

from aiohttp import web

from contact_center.web.routes import PUBLIC, declared_roles, route_spec
from tests.component.api_fixtures import Api


async def test_login_sets_an_httponly_cookie_and_returns_the_csrf_token(api: Api) -> None:
    client = await api.anonymous()
    response = await client.post(
        "/api/v1/auth/login", json={"username": "agent", "password": "agent-pass-1"}
    )
    assert response.status == 200
    body = await response.json()
    assert body["user"]["username"] == "agent"
    assert body["user"]["role"] == "agent"
    assert len(body["csrf_token"]) > 20
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("cc_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    me = await client.get("/api/v1/auth/me")
    assert me.status == 200
    assert (await me.json())["csrf_token"] == body["csrf_token"]


async def test_wrong_password_is_401_with_a_stable_id(api: Api) -> None:
    client = await api.anonymous()
    response = await client.post(
        "/api/v1/auth/login", json={"username": "agent", "password": "nope"}
    )
    assert response.status == 401
    error = (await response.json())["error"]
    assert error["id"] == "auth.invalid_credentials"
    assert error["message"] == "wrong username or password"
    assert "Set-Cookie" not in response.headers


async def test_unknown_user_looks_like_a_wrong_password(api: Api) -> None:
    client = await api.anonymous()
    response = await client.post("/api/v1/auth/login", json={"username": "ghost", "password": "x"})
    assert response.status == 401
    assert (await response.json())["error"]["id"] == "auth.invalid_credentials"


async def test_login_body_must_be_json(api: Api) -> None:
    client = await api.anonymous()
    form = await client.post("/api/v1/auth/login", data={"username": "agent", "password": "x"})
    assert form.status == 415
    assert (await form.json())["error"]["id"] == "request.content_type"
    bad = await client.post(
        "/api/v1/auth/login", data="{nope", headers={"Content-Type": "application/json"}
    )
    assert bad.status == 400
    assert (await bad.json())["error"]["id"] == "request.json"
    missing = await client.post("/api/v1/auth/login", json={"username": "agent"})
    assert missing.status == 400
    assert "password" in (await missing.json())["error"]["message"]


async def test_failed_logins_are_rate_limited_per_user(api: Api) -> None:
    client = await api.anonymous()
    for _ in range(5):
        response = await client.post(
            "/api/v1/auth/login", json={"username": "agent", "password": "wrong"}
        )
        assert response.status == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"username": "agent", "password": "agent-pass-1"}
    )
    assert blocked.status == 429
    assert (await blocked.json())["error"]["id"] == "auth.rate_limited"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # Another user from the same address is not locked out by the agent's failures.
    other = await client.post(
        "/api/v1/auth/login", json={"username": "supervisor", "password": "super-pass-1"}
    )
    assert other.status == 200


async def test_logout_ends_the_session(api: Api) -> None:
    session = await api.login("agent")
    assert (await session.post("/api/v1/auth/logout")).status == 200
    after = await session.get("/api/v1/auth/me")
    assert after.status == 401
    assert (await after.json())["error"]["id"] == "auth.required"


async def test_state_change_without_csrf_token_is_refused(api: Api) -> None:
    session = await api.login("agent")
    response = await session.client.post("/api/v1/customers", json={"name": "Eve"})
    assert response.status == 403
    assert (await response.json())["error"]["id"] == "auth.csrf"
    wrong = await session.client.post(
        "/api/v1/customers", json={"name": "Eve"}, headers={"X-CSRF-Token": "forged"}
    )
    assert wrong.status == 403
    listing = await session.get("/api/v1/customers?q=Eve")
    assert (await listing.json())["customers"] == []


async def test_disabling_a_user_ends_their_sessions(api: Api) -> None:
    agent = await api.login("agent")
    admin = await api.login("admin")
    assert (await admin.post("/api/v1/users/agent/disable")).status == 200
    assert (await agent.get("/api/v1/auth/me")).status == 401
    client = await api.anonymous()
    again = await client.post(
        "/api/v1/auth/login", json={"username": "agent", "password": "agent-pass-1"}
    )
    assert again.status == 401


def _concrete(path: str) -> str:
    return re.sub(r"\{username\}", "agent", re.sub(r"\{\w+\}", "1", path))


async def test_every_route_declares_roles_and_enforces_them(api: Api) -> None:
    routes = [r for r in api.app.router.routes() if r.method != "HEAD"]
    undeclared = [f"{r.method} {r.resource.canonical if r.resource else r}" for r in routes]
    undeclared = [name for r, name in zip(routes, undeclared, strict=True) if not declared_roles(r)]
    assert undeclared == []
    sessions = {role: await api.login(role) for role in ("agent", "supervisor", "admin")}
    anonymous = await api.anonymous()
    checked = 0
    for route in routes:
        roles = declared_roles(route)
        assert roles is not None
        if roles == PUBLIC or route.resource is None:
            continue
        spec = route_spec(route)
        assert spec is not None
        path = _concrete(route.resource.canonical)
        response = await anonymous.request(route.method, path, allow_redirects=False)
        if spec.page:
            assert response.status == 302, path
            assert response.headers["Location"].startswith("/login")
        else:
            assert response.status == 401, f"{route.method} {path}"
        for role, session in sessions.items():
            if role in roles:
                continue
            denied = await session.client.request(
                route.method, path, headers={"X-CSRF-Token": session.csrf}
            )
            assert denied.status == 403, f"{role} {route.method} {path}"
            assert (await denied.json())["error"]["id"] == "auth.forbidden"
            checked += 1
    assert checked >= 8  # admin-only and supervisor-only routes exist


async def test_unknown_api_path_is_a_json_404(api: Api) -> None:
    client = await api.anonymous()
    response = await client.get("/api/v1/nothing-here")
    assert response.status == 404
    assert (await response.json())["error"]["id"] == "http.404"


async def _plain(request: web.Request) -> web.Response:
    return web.Response()


def test_route_table_helpers_on_a_bare_app() -> None:
    app = web.Application()
    route = app.router.add_get("/x", _plain)
    assert declared_roles(route) is None
    assert route_spec(route) is None
