"""GET /openapi.json: generated from the registry, valid, and covering every route."""

from __future__ import annotations

from openapi_spec_validator import validate

from pryvrt.methods.registry import REGISTRY
from pryvrt.transports.http import ROUTES
from tests.conftest import Api


async def test_openapi_document_is_valid_and_covers_every_registered_route(api: Api) -> None:
    reply = await api.get("/openapi.json")
    assert reply.status == 200
    document = reply.body
    validate(document)
    operations = {(verb.upper(), path) for path, item in document["paths"].items() for verb in item}
    for route in ROUTES:
        if route.method_id in REGISTRY:
            path = "/{username}" + (route.path if route.path == "/" else route.path.rstrip("/"))
            assert (route.verb, path) in operations, route
    assert ("POST", "/users") in operations


async def test_openapi_parameters_come_from_the_method_definitions(api: Api) -> None:
    document = (await api.get("/openapi.json")).body
    create = document["paths"]["/{username}/channels"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["name"]
    assert {"id", "name", "enforceNoEventsOverlap", "clientData"} <= set(body["properties"])
    listing = document["paths"]["/{username}/channels"]["get"]
    assert [p["name"] for p in listing["parameters"] if p["in"] == "query"] == ["state"]
    assert create["security"]
    assert "security" not in document["paths"]["/users"]["post"]
