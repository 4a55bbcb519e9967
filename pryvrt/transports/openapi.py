"""The OpenAPI 3.1 document, generated from ROUTES and the registry's parameter models.

Nothing here is written by hand per method: a new method or route appears in the document
by itself, so the document cannot drift from the server.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from pryvrt import API_VERSION
from pryvrt.methods.registry import REGISTRY, Auth
from pryvrt.transports.http import ROUTES, SERVICE_ROUTES, Route, json_response

_PATH_PARAM = re.compile(r"\{(\w+)\}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "message"],
    "properties": {
        "id": {"type": "string", "description": "error id, e.g. UNKNOWN_CHANNEL"},
        "message": {"type": "string"},
        "data": {},
        "subErrors": {"type": "array", "items": {"$ref": "#/components/schemas/Error"}},
    },
}


def _error_responses(method_errors: tuple[str, ...]) -> dict[str, Any]:
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    ids = ", ".join(method_errors) if method_errors else "see API.md §3"
    return {
        "4XX": {"description": f"client error ({ids})", "content": ref},
        "5XX": {"description": "UNEXPECTED_ERROR or SERVICE_UNAVAILABLE", "content": ref},
    }


def _operation(route: Route, user_route: bool, schemas: dict[str, Any]) -> dict[str, Any]:
    method = REGISTRY[route.method_id]
    schema = method.params.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    path_names = _PATH_PARAM.findall(route.path)

    parameters: list[dict[str, Any]] = []
    if user_route:
        parameters.append(
            {"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    for name in path_names:
        parameters.append(
            {"name": name, "in": "path", "required": True, "schema": props.get(name, {})}
        )
    rest = {k: v for k, v in props.items() if k not in path_names}

    operation: dict[str, Any] = {
        "operationId": f"{method.id}:{route.verb}:{route.path}",
        "summary": method.summary,
        "tags": [method.id.split(".")[0]],
        "x-method-id": method.id,
    }
    if route.verb in ("GET", "DELETE"):
        for name, prop in rest.items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if prop.get("type") == "array":
                param.update(style="form", explode=True)
            parameters.append(param)
    else:
        if route.body_key is not None:
            body_schema = rest.get(route.body_key, {})
        else:
            body_schema = {
                "type": "object",
                "additionalProperties": False,
                "properties": rest,
                "required": sorted(required - set(path_names)),
            }
        content: dict[str, Any] = {"application/json": {"schema": body_schema}}
        if route.uploads:
            content["multipart/form-data"] = {
                "schema": {
                    "type": "object",
                    "description": "a JSON part with the params first, then file parts",
                    "additionalProperties": {"type": "string", "format": "binary"},
                }
            }
        operation["requestBody"] = {
            "required": bool(required - set(path_names)) and not route.uploads,
            "content": content,
        }
    operation["parameters"] = parameters
    success: dict[str, Any] = {"application/json": {"schema": {}}}
    if route.download:
        success = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    operation["responses"] = {
        str(route.status): {"description": "success", "content": success},
        **_error_responses(method.errors),
    }
    if method.auth is not Auth.NONE:
        operation["security"] = [{"authorization": []}, {"authQuery": []}]
        if method.anonymous is not None:  # e.g. a download by readToken
            operation["security"].append({})
    return operation


def build_openapi() -> dict[str, Any]:
    """The whole document for the routes whose methods are registered."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for routes, user_route in ((SERVICE_ROUTES, False), (ROUTES, True)):
        for route in routes:
            if route.method_id not in REGISTRY:
                continue
            path = ("/{username}" + route.path) if user_route else route.path
            path = path if path == "/{username}/" else path.rstrip("/")
            paths.setdefault(path, {})[route.verb.lower()] = _operation(route, user_route, schemas)
    plain = {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}}
    paths["/"] = {
        "get": {"operationId": "service.info", "summary": "Service info", "responses": plain}
    }
    paths["/health"] = {
        "get": {
            "operationId": "service.health",
            "summary": "Database health",
            "responses": {**plain, **_error_responses(("SERVICE_UNAVAILABLE",))},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pryvrt API",
            "version": API_VERSION,
            "description": "Events in channels and folders, scoped tokens, live updates."
            " Errors are {id, message, data?}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "authorization": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "authQuery": {"type": "apiKey", "in": "query", "name": "auth"},
            },
        },
    }


async def handle_openapi(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return json_response(build_openapi())
