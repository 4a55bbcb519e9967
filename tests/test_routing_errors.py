"""Paths that are no route (404) and verbs a route does not take (405 with ``Allow``): always
the API's JSON error, never the dashboard page (API.md §3)."""

from __future__ import annotations

import pytest

from tests.conftest import Api

HTML = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}


@pytest.mark.parametrize("accept", [JSON, HTML, {}], ids=["json", "browser", "none"])
async def test_a_mistyped_service_path_is_404_json_not_the_dashboard(
    api: Api, accept: dict[str, str]
) -> None:
    reply = await api.get("/helth", headers=accept)
    assert reply.status == 404, reply
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body["id"] == "UNKNOWN_RESOURCE"
    assert "/helth" in reply.body["message"]


async def test_the_dashboard_is_served_to_a_browser_at_an_existing_users_root(api: Api) -> None:
    username, _ = await api.user()
    page = await api.get(f"/{username}/", headers=HTML)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    moved = await api.get(f"/{username}?x=1", headers=HTML, allow_redirects=False)
    assert (moved.status, moved.headers["Location"]) == (308, f"/{username}/?x=1")


async def test_an_api_client_at_a_users_root_is_told_it_takes_post(api: Api) -> None:
    username, _ = await api.user()
    reply = await api.get(f"/{username}/", headers=JSON)
    assert (reply.status, reply.body["id"]) == (405, "METHOD_NOT_ALLOWED")
    assert reply.headers["Allow"] == "OPTIONS, POST"


async def test_a_verb_a_route_does_not_take_is_405_with_allow(api: Api) -> None:
    username, session = await api.user()
    reply = await api.request("PATCH", f"/{username}/channels", auth=session)
    assert (reply.status, reply.body["id"]) == (405, "METHOD_NOT_ALLOWED")
    assert reply.headers["Allow"] == "GET, OPTIONS, POST"
    assert reply.body["data"] == {"allowed": ["GET", "POST"]}

    move = await api.get(f"/{username}/ch/folders/f/move", auth=session)
    assert (move.status, move.headers["Allow"]) == (405, "OPTIONS, POST")


@pytest.mark.parametrize(
    ("verb", "path", "allow"),
    [
        ("GET", "/users", "OPTIONS, POST"),
        ("POST", "/health", "GET, OPTIONS"),
        ("PUT", "/", "GET, OPTIONS"),
    ],
)
async def test_service_routes_answer_405_with_allow(
    api: Api, verb: str, path: str, allow: str
) -> None:
    reply = await api.request(verb, path, headers=JSON)
    assert (reply.status, reply.body["id"]) == (405, "METHOD_NOT_ALLOWED")
    assert reply.headers["Allow"] == allow
