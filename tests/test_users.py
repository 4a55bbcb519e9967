"""Registration (API.md §8) and the CLI that creates users."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.conftest import Api, AppFactory


async def test_register_answers_username_and_api_endpoint(api: Api) -> None:
    reply = await api.post("/users", {"username": "Alice-01", "password": "secret1"})
    assert reply.status == 201
    assert reply.body["username"] == "alice-01"
    assert reply.body["apiEndpoint"].endswith("/alice-01/")


async def test_usernames_are_case_insensitive_and_unique(api: Api) -> None:
    await api.post("/users", {"username": "bob-smith", "password": "secret1"})
    reply = await api.post("/users", {"username": "BOB-SMITH", "password": "secret1"})
    assert reply.status == 400
    assert reply.body["id"] == "ITEM_ID_ALREADY_EXISTS"


async def test_email_taken_is_item_name_already_exists(api: Api) -> None:
    await api.post("/users", {"username": "carol1", "password": "secret1", "email": "c@x.org"})
    reply = await api.post(
        "/users", {"username": "carol2", "password": "secret1", "email": "C@x.org"}
    )
    assert reply.status == 400
    assert reply.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


@pytest.mark.parametrize(
    "username",
    ["abcd", "a" * 24, "-abcde", "abcde-", "ab_cde", "chann els", "channels", "socket.io"],
)
async def test_bad_usernames_are_refused_with_a_field_error(api: Api, username: str) -> None:
    reply = await api.post("/users", {"username": username, "password": "secret1"})
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    assert "username" in reply.body["data"]


@pytest.mark.parametrize("password", ["12345", "x" * 101])
async def test_passwords_need_6_to_100_characters(api: Api, password: str) -> None:
    reply = await api.post("/users", {"username": "dave-1", "password": password})
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    assert "password" in reply.body["data"]


async def test_closed_registration_is_forbidden(make_api: AppFactory) -> None:
    api = await make_api(registration="closed")
    reply = await api.post("/users", {"username": "erin-1", "password": "secret1"})
    assert reply.status == 403
    assert reply.body["id"] == "FORBIDDEN"


async def test_key_registration_needs_the_admin_key(make_api: AppFactory) -> None:
    api = await make_api(registration="key", admin_key="k3y-for-admins")
    reply = await api.post("/users", {"username": "frank-1", "password": "secret1"})
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_CREDENTIALS"
    reply = await api.post(
        "/users", {"username": "frank-1", "password": "secret1"}, auth="wrong-key"
    )
    assert reply.status == 401
    reply = await api.post(
        "/users", {"username": "frank-1", "password": "secret1"}, auth="k3y-for-admins"
    )
    assert reply.status == 201


async def test_passwords_are_stored_only_as_argon2_hashes(api: Api, database_url: str) -> None:
    import asyncpg

    await api.post("/users", {"username": "hash-check", "password": "plain-secret"})
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            "SELECT password_hash FROM users WHERE username = 'hash-check'"
        )
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$")
    assert "plain-secret" not in stored


def test_cli_creates_a_user_that_can_log_in(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "DATABASE_URL": database_url, "PRYVRT_REGISTRATION": "closed"}
    done = subprocess.run(
        [sys.executable, "-m", "pryvrt", "user", "create", "cli-user", "--password", "pw-123456"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "created user cli-user" in done.stdout
    again = subprocess.run(
        [sys.executable, "-m", "pryvrt", "user", "create", "cli-user", "--password", "pw-123456"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert "ITEM_ID_ALREADY_EXISTS" in again.stderr


async def test_cli_user_can_log_in_over_http(make_api: AppFactory, database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "pryvrt", "user", "create", "cli-login"],
        *["--password", "pw-654321"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    api = await make_api(registration="closed")
    reply = await api.post("/cli-login/login", {"userName": "cli-login", "password": "pw-654321"})
    assert reply.status == 200
    assert reply.body["sessionID"]


async def test_registration_and_login_each_take_username_and_username_camel_case(api: Api) -> None:
    """``POST /users`` spells it ``username``, ``login`` ``userName`` (seed form): both take
    either spelling, and refuse both at once."""
    assert (
        await api.post("/users", {"userName": "camel-one", "password": "pw-secret"})
    ).status == 201
    assert (
        await api.post("/users", {"username": "lower-one", "password": "pw-secret"})
    ).status == 201
    for name, key in (("camel-one", "username"), ("lower-one", "userName")):
        reply = await api.post(f"/{name}/login", {key: name, "password": "pw-secret"})
        assert reply.status == 200, reply
        assert reply.body["sessionID"]
    both = await api.post(
        "/camel-one/login",
        {"userName": "camel-one", "username": "camel-one", "password": "pw-secret"},
    )
    assert (both.status, both.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")
