"""Admin user management over HTTP, and the OpenAPI document matching the routes."""

from __future__ import annotations

from tests.component.api_fixtures import Api


async def test_admin_creates_updates_and_disables_users(api: Api) -> None:
    admin = await api.login("admin")
    created = await admin.post(
        "/api/v1/users",
        json={
            "username": "Bea",
            "role": "agent",
            "password": "agent-pass-1",
            "skills": {"billing": 8},
            "capacities": {"chat": 3},
        },
    )
    assert created.status == 201
    body = await created.json()
    assert body["username"] == "bea"
    assert "password_hash" not in body
    bea = await api.login("bea")
    assert bea.user["role"] == "agent"
    dup = await admin.post(
        "/api/v1/users", json={"username": "bea", "role": "agent", "password": "long-enough-1"}
    )
    assert dup.status == 409
    bad_role = await admin.post(
        "/api/v1/users", json={"username": "cy", "role": "boss", "password": "long-enough-1"}
    )
    assert bad_role.status == 400
    updated = await admin.patch("/api/v1/users/bea", json={"role": "supervisor"})
    assert (await updated.json())["role"] == "supervisor"
    # A role change ends the user's sessions: the old role must not linger.
    assert (await bea.get("/api/v1/auth/me")).status == 401
    listing = await (await admin.get("/api/v1/users")).json()
    assert {u["username"] for u in listing["users"]} >= {"admin", "agent", "bea"}
    missing = await admin.post("/api/v1/users/nobody/disable")
    assert missing.status == 404
    audit = await (await admin.get("/api/v1/audit", params={"entity": "user"})).json()
    assert "user.created" in {e["action"] for e in audit["entries"]}


async def test_password_change_ends_sessions(api: Api) -> None:
    agent = await api.login("agent")
    admin = await api.login("admin")
    response = await admin.post("/api/v1/users/agent/password", json={"password": "new-pass-22"})
    assert response.status == 200
    assert (await agent.get("/api/v1/auth/me")).status == 401


async def test_openapi_document_matches_the_routes(api: Api) -> None:
    client = await api.anonymous()
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    registered = {
        (r.method, r.resource.canonical)
        for r in api.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/")
        and r.method != "HEAD"
    }
    assert documented == registered
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["required"]) == {"username", "password"}
    assert doc["paths"]["/api/v1/users"]["get"]["x-roles"] == ["admin"]
