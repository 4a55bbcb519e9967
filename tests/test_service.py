"""Service routes, common headers, CORS and error shapes (API.md §1, §3)."""

from __future__ import annotations

from tests.conftest import Api


async def test_service_info_names_the_server_and_registration_mode(api: Api) -> None:
    reply = await api.get("/")
    assert reply.status == 200
    assert reply.body["name"] == "pryvrt"
    assert reply.body["registration"] == "open"
    assert reply.body["apiVersion"]


async def test_health_checks_the_database(api: Api) -> None:
    reply = await api.get("/health")
    assert reply.status == 200
    assert reply.body["database"] == "ok"


async def test_every_response_carries_server_time_and_api_version(api: Api) -> None:
    username, session = await api.user()
    for reply in (
        await api.get("/"),
        await api.get(f"/{username}/channels", auth=session),
        await api.get(f"/{username}/channels"),  # 401
        await api.get("/nobody-here/channels", auth="x"),  # 404 unknown user
        await api.get(f"/{username}/no/such/route/at/all", auth=session),  # 404 route
    ):
        assert float(reply.headers["Server-Time"]) > 1_600_000_000
        assert reply.headers["API-Version"]


async def test_unknown_route_answers_a_json_error_with_an_id(api: Api) -> None:
    username, session = await api.user()
    reply = await api.get(f"/{username}/a/b/c/d/e", auth=session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_RESOURCE"
    assert "message" in reply.body


async def test_cors_preflight_answers_200_with_the_allowed_methods(api: Api) -> None:
    reply = await api.request(
        "OPTIONS",
        "/alice/channels",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "PUT" in reply.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
    assert "Server-Time" in reply.headers["Access-Control-Expose-Headers"]


async def test_cors_headers_echo_the_origin_on_normal_responses(api: Api) -> None:
    reply = await api.get("/", headers={"Origin": "https://dash.example"})
    assert reply.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert "API-Version" in reply.headers["Access-Control-Expose-Headers"]


async def test_invalid_json_body_is_an_invalid_request_structure(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/channels",
        data=b"{not json",
        auth=session,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_REQUEST_STRUCTURE"


async def test_wrong_content_type_is_an_invalid_request_structure(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/channels",
        data=b"name=x",
        auth=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_REQUEST_STRUCTURE"


async def test_a_json_array_where_an_object_is_expected_is_refused(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(f"/{username}/channels", [1, 2], auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_REQUEST_STRUCTURE"


async def test_wrong_types_name_each_field_in_data(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/channels",
        {"name": 12, "enforceNoEventsOverlap": "maybe", "clientData": []},
        auth=session,
    )
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    assert set(reply.body["data"]) == {"name", "enforceNoEventsOverlap", "clientData"}


async def test_body_over_the_limit_is_payload_too_large(make_api) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(max_body_size=2048)
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/channels", {"name": "x", "clientData": {"blob": "a" * 5000}}, auth=session
    )
    assert reply.status == 413
    assert reply.body["id"] == "PAYLOAD_TOO_LARGE"


async def test_request_id_is_echoed_and_generated(api: Api) -> None:
    reply = await api.get("/", headers={"X-Request-Id": "abc-123"})
    assert reply.headers["X-Request-Id"] == "abc-123"
    reply = await api.get("/")
    assert len(reply.headers["X-Request-Id"]) == 16
