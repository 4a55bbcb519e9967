"""The three ways to address a user (API.md §1) and a restart keeping data."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from pryvrt.app import create_app
from pryvrt.config import Settings
from tests.conftest import Api, AppFactory


async def test_path_form(api: Api) -> None:
    username, session = await api.user()
    assert (await api.get(f"/{username}/channels", auth=session)).status == 200


async def test_username_in_the_path_is_case_insensitive(api: Api) -> None:
    username, session = await api.user()
    assert (await api.get(f"/{username.upper()}/channels", auth=session)).status == 200


async def test_username_query_parameter_replaces_the_path_segment(api: Api) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session, name="Q")
    reply = await api.get(f"/channels?userName={username}", auth=session)
    assert reply.status == 200
    assert [c["id"] for c in reply.body] == [ch]


async def test_subdomain_form_when_a_domain_is_configured(make_api: AppFactory) -> None:
    api = await make_api(domain="example.org")
    username, session = await api.user()
    ch = await api.channel(username, session, name="Sub")
    reply = await api.get("/channels", auth=session, headers={"Host": f"{username}.example.org"})
    assert reply.status == 200
    assert [c["id"] for c in reply.body] == [ch]
    # the path form still works beside it
    assert (await api.get(f"/{username}/channels", auth=session)).status == 200


async def test_username_query_overrides_the_subdomain(make_api: AppFactory) -> None:
    api = await make_api(domain="example.org")
    alice, alice_session = await api.user()
    bob = await api.register()
    reply = await api.get(
        f"/channels?userName={alice}",
        auth=alice_session,
        headers={"Host": f"{bob}.example.org"},
    )
    assert reply.status == 200


async def test_registration_answers_a_subdomain_endpoint_with_a_domain(
    make_api: AppFactory,
) -> None:
    api = await make_api(domain="example.org")
    reply = await api.post("/users", {"username": "sub-user", "password": "secret1"})
    assert reply.body["apiEndpoint"] == "http://sub-user.example.org/"


async def test_unknown_user_is_404_in_every_form(make_api: AppFactory) -> None:
    api = await make_api(domain="example.org")
    for path, headers in (
        ("/nobody-here/channels", {}),
        ("/channels?userName=nobody-here", {}),
        ("/channels", {"Host": "nobody-here.example.org"}),
        ("/x/channels", {}),  # not even a valid username
    ):
        reply = await api.get(path, auth="whatever", headers=headers)
        assert reply.status == 404, path
        assert reply.body["id"] == "UNKNOWN_USER", path


async def test_embedded_database_keeps_data_across_restarts(tmp_path: Path, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "var", password_hash_fast=True)

    client: TestClient = await aiohttp_client(create_app(settings))
    api = Api(client)
    username, session = await api.user()
    await api.channel(username, session, name="Kept")
    await client.close()

    client = await aiohttp_client(create_app(settings))
    api = Api(client)
    reply = await api.get(f"/{username}/channels", auth=session)
    assert reply.status == 200
    assert [c["name"] for c in reply.body] == ["Kept"]
    await client.close()
