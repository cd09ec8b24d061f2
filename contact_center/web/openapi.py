"""The OpenAPI 3.1 document, generated from the route table so it cannot drift."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from contact_center import __version__
from contact_center.web.routes import PUBLIC, ROUTE_SPECS, RouteSpec

_PARAM = re.compile(r"\{(\w+)\}")


def _operation(spec: RouteSpec, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": f"{spec.method.lower()}_{spec.handler.__module__.rsplit('.', 1)[-1]}_"
        f"{spec.handler.__name__}",
        "x-roles": sorted(spec.roles),
        "responses": {
            str(spec.status): {"description": "success"},
            "default": {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if spec.roles != PUBLIC:
        op["security"] = [{"session": []}]
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(spec.path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in spec.query
    ]
    if params:
        op["parameters"] = params
    if spec.body is not None:
        name = spec.body.__name__
        schema = spec.body.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub_name, sub in schema.pop("$defs", {}).items():
            schemas[sub_name] = sub
        schemas[name] = schema
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    return op


def build_document(specs: list[RouteSpec]) -> dict[str, Any]:
    """The OpenAPI document for the JSON API routes among `specs`."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["id", "message"],
                    "properties": {"id": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if not spec.path.startswith("/api/"):
            continue
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contact center API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "cc_session"}
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document of this daemon's API."""
    return web.json_response(build_document(request.app[ROUTE_SPECS]))


ROUTES = [RouteSpec("GET", "/api/v1/openapi.json", openapi, PUBLIC, "This API's OpenAPI document")]
