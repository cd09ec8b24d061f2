"""Untrusted numbers and nesting are refused at the boundary (4xx), never a 500.

Every JSON-body route gets a body whose integers are 2**64, one whose integers have 5,000
digits, and arrays nested 10,000 deep; every integer path segment gets 10**22 and a
5,000-digit number; the WebSocket gets the same. The route table is walked, so a route
added later is covered without touching this file.
"""

from __future__ import annotations

import json
import re
import types
from typing import Any, Literal, Union, get_args, get_origin

import aiohttp
from pydantic import BaseModel

from contact_center.web.routes import PUBLIC, declared_roles, route_spec
from tests.component.api_fixtures import Api, Session, json_body_routes

HUGE = 2**64
MARK = 2**64 + 424242  # replaced by a 5,000-digit literal in the raw text
FIVE_THOUSAND = "9" * 5000
DEEP = "[" * 10000 + "]" * 10000


def _sample(annotation: Any, number: int) -> Any:
    """A plausible value of `annotation` in which every integer is `number`."""
    origin = get_origin(annotation)
    if annotation is int:
        return number
    if annotation is bool:
        return True
    if annotation is str:
        return "x"
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (Union, types.UnionType):
        return _sample(next(a for a in get_args(annotation) if a is not type(None)), number)
    if origin is dict:
        return {"billing": _sample(get_args(annotation)[1], number)}
    if origin is list:
        return [_sample(get_args(annotation)[0], number)]
    return number


def _body(model: type[BaseModel], number: int) -> dict[str, Any]:
    return {name: _sample(f.annotation, number) for name, f in model.model_fields.items()}


def _concrete(path: str, value: str = "1") -> str:
    path = re.sub(r"\{username\}", "agent", path)
    return re.sub(r"\{\w+\}", value, path)


async def _send(session: Session, method: str, path: str, text: str) -> aiohttp.ClientResponse:
    response = await session.client.request(
        method,
        path,
        data=text,
        headers={"X-CSRF-Token": session.csrf, "Content-Type": "application/json"},
    )
    await response.read()
    return response


async def _assert_refused(response: aiohttp.ClientResponse, what: str) -> None:
    assert 400 <= response.status < 500, f"{what}: {response.status} {await response.text()}"


async def test_every_json_body_route_refuses_huge_ints_and_deep_nesting(api: Api) -> None:
    admin = await api.login("admin")
    specs = json_body_routes(api.app)
    assert len(specs) >= 8
    for spec in specs:
        assert spec.body is not None
        path = _concrete(spec.path)
        what = f"{spec.method} {spec.path}"
        huge = await _send(admin, spec.method, path, json.dumps(_body(spec.body, HUGE)))
        await _assert_refused(huge, f"{what} 2**64")
        long_text = json.dumps(_body(spec.body, MARK)).replace(str(MARK), FIVE_THOUSAND)
        await _assert_refused(await _send(admin, spec.method, path, long_text), f"{what} 5000")
        await _assert_refused(await _send(admin, spec.method, path, DEEP), f"{what} deep")
        first = next(iter(spec.body.model_fields))
        nested = json.dumps({first: "PLACE"}).replace('"PLACE"', DEEP)
        await _assert_refused(await _send(admin, spec.method, path, nested), f"{what} deep field")


async def test_an_out_of_range_int_is_named_in_a_request_invalid(api: Api) -> None:
    admin = await api.login("admin")
    response = await admin.post(
        "/api/v1/service-requests", json={"customer_id": HUGE, "title": "overflow"}
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["id"] == "request.invalid"
    assert "customer_id" in error["message"]
    nested = await admin.patch("/api/v1/users/agent", json={"skills": {"billing": -HUGE}})
    error = (await nested.json())["error"]
    assert (nested.status, error["id"]) == (400, "request.invalid")
    assert "skills.billing" in error["message"]
    for text in ('{"customer_id": NaN, "title": "x"}', '{"customer_id": 1e999, "title": "x"}'):
        response = await _send(admin, "POST", "/api/v1/service-requests", text)
        assert response.status == 400, text
    # Nothing was created by any of it.
    listing = await (await admin.get("/api/v1/service-requests")).json()
    assert [r for r in listing["service_requests"] if r["title"] in ("overflow", "x")] == []


async def test_anonymous_login_with_huge_numbers_or_nesting_is_a_400(api: Api) -> None:
    client = await api.anonymous()
    for text in (
        '{"username": "agent", "password": ' + FIVE_THOUSAND + "}",
        '{"username": ' + DEEP + ', "password": "x"}',
        DEEP,
    ):
        response = await client.post(
            "/api/v1/auth/login", data=text, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["id"] == "request.json"


async def test_every_integer_path_segment_refuses_numbers_past_64_bits(api: Api) -> None:
    admin = await api.login("admin")
    checked = 0
    for route in api.app.router.routes():
        spec = route_spec(route)
        roles = declared_roles(route)
        if spec is None or roles == PUBLIC or route.method == "HEAD" or route.resource is None:
            continue
        template = route.resource.canonical
        if not re.search(r"\{(?!username\})\w+\}", template):
            continue
        for value in ("99999999999999999999999", FIVE_THOUSAND, "9223372036854775808"):
            path = _concrete(template, value)
            response = await admin.client.request(
                route.method,
                path,
                json={},
                headers={"X-CSRF-Token": admin.csrf},
            )
            await _assert_refused(response, f"{route.method} {template} {value[:25]}")
            checked += 1
    assert checked >= 30
    response = await admin.get("/api/v1/customers/99999999999999999999999")
    assert response.status == 404
    assert (await response.json())["error"]["id"] == "request.not_found"


async def test_integer_query_parameters_refuse_huge_numbers(api: Api) -> None:
    admin = await api.login("admin")
    for route in api.app.router.routes():
        spec = route_spec(route)
        if spec is None or route.method != "GET" or not spec.query:
            continue
        for name in spec.query:
            for value in ("99999999999999999999999", FIVE_THOUSAND):
                response = await admin.get(_concrete(spec.path), params={name: value})
                assert response.status < 500, f"{spec.path}?{name}={value[:25]}"
                error = (await response.json()).get("error") if response.status >= 400 else None
                if error is not None and error["message"].startswith(f"{name}: expected"):
                    # An integer parameter (query_int): the 5,000 digits are not echoed back.
                    assert len(error["message"]) < 200


async def test_websocket_messages_with_huge_numbers_or_nesting_get_error_replies(api: Api) -> None:
    agent = await api.login("agent")
    async with agent.client.ws_connect("/ws/agent") as ws:
        cases = {
            '{"type": "ping", "id": 1, "n": ' + FIVE_THOUSAND + "}": "request.json",
            # 5,000 deep: past the parser's recursion limit, within the 16 kB message cap.
            '{"type": "ping", "id": 1, "n": ' + "[" * 5000 + "]" * 5000 + "}": "request.json",
            '{"type": "ping", "id": 1, "n": ' + "[" * 40 + "]" * 40 + "}": "request.invalid",
            json.dumps({"type": "link_customer", "interaction_id": 1, "customer_id": HUGE}): (
                "request.invalid"
            ),
            json.dumps({"type": "accept_offer", "offer_id": -HUGE}): "request.invalid",
        }
        for text, error_id in cases.items():
            await ws.send_str(text)
            while (reply := await ws.receive_json(timeout=5))["type"] != "reply":
                pass
            assert reply["ok"] is False, text[:60]
            assert reply["error"]["id"] == error_id, (text[:60], reply)
        await ws.send_json({"type": "ping", "id": 9})
        while (reply := await ws.receive_json(timeout=5))["type"] != "reply":
            pass
        assert (reply["ref"], reply["ok"]) == (9, True)  # the socket survived all of it


async def test_a_body_over_the_size_limit_is_a_413(api: Api) -> None:
    admin = await api.login("admin")
    text = json.dumps({"name": "x" * (1024 * 1024 + 1)})
    response = await _send(admin, "POST", "/api/v1/customers", text)
    assert response.status == 413
    assert (await response.json())["error"]["id"] == "request.too_large"
