"""Admin sessions, user info, password changes and login throttling (API.md §9)."""

from __future__ import annotations

import asyncio
import time

import pytest

from pryvrt.app import SERVICES_KEY
from tests.conftest import Api, AppFactory


async def test_login_answers_a_long_random_session_id(api: Api) -> None:
    username = await api.register()
    session = await api.login(username)
    assert len(session) >= 40
    assert session != await api.login(username)


async def test_login_with_a_wrong_password_is_invalid_credentials(api: Api) -> None:
    username = await api.register()
    reply = await api.post(f"/{username}/login", {"userName": username, "password": "nope-nope"})
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_CREDENTIALS"


async def test_login_for_another_username_than_the_path_is_refused(api: Api) -> None:
    alice = await api.register()
    bob = await api.register()
    reply = await api.post(f"/{alice}/login", {"userName": bob, "password": "secret-pw"})
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_CREDENTIALS"


async def test_login_for_an_unknown_user_is_unknown_user(api: Api) -> None:
    reply = await api.post("/nobody-at-all/login", {"userName": "x", "password": "y"})
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_USER"


async def test_login_needs_username_and_password(api: Api) -> None:
    username = await api.register()
    reply = await api.post(f"/{username}/login", {"userName": username})
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    assert "password" in reply.body["data"]


async def test_repeated_failed_logins_answer_429_even_with_the_right_password(
    make_api: AppFactory,
) -> None:
    api = await make_api(login_max_failures=3, login_block_seconds=60)
    username = await api.register()
    for _ in range(3):
        reply = await api.post(f"/{username}/login", {"userName": username, "password": "bad"})
        assert reply.status == 401
    reply = await api.post(f"/{username}/login", {"userName": username, "password": "secret-pw"})
    assert reply.status == 429
    assert reply.body["id"] == "TOO_MANY_REQUESTS"
    assert reply.body["data"]["retryAfter"] > 0


async def test_failures_from_one_ip_throttle_other_usernames_too(make_api: AppFactory) -> None:
    api = await make_api(login_max_failures=5, login_max_failures_per_ip=2, login_block_seconds=60)
    first = await api.register()
    second = await api.register()
    for _ in range(2):
        await api.post(f"/{first}/login", {"userName": first, "password": "bad"})
    reply = await api.post(f"/{second}/login", {"userName": second, "password": "secret-pw"})
    assert reply.status == 429


async def test_throttling_ends_after_the_block_time(make_api: AppFactory) -> None:
    api = await make_api(login_max_failures=1, login_block_seconds=0.5)
    username = await api.register()
    await api.post(f"/{username}/login", {"userName": username, "password": "bad"})
    reply = await api.post(f"/{username}/login", {"userName": username, "password": "secret-pw"})
    assert reply.status == 429
    await asyncio.sleep(0.6)
    reply = await api.post(f"/{username}/login", {"userName": username, "password": "secret-pw"})
    assert reply.status == 200


async def test_logout_ends_the_session(api: Api) -> None:
    username, session = await api.user()
    assert (await api.post(f"/{username}/logout", auth=session)).status == 200
    reply = await api.get(f"/{username}/user-info", auth=session)
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_TOKEN"


async def test_user_info_shows_the_account(api: Api) -> None:
    username, session = await api.user()
    reply = await api.get(f"/{username}/user-info", auth=session)
    assert reply.status == 200
    assert reply.body["username"] == username
    assert reply.body["language"] == "en"
    assert reply.body["created"] > 0


async def test_update_user_info_changes_email_and_language(api: Api) -> None:
    username, session = await api.user()
    reply = await api.put(
        f"/{username}/user-info", {"email": "me@example.org", "language": "fr"}, auth=session
    )
    assert reply.status == 200
    info = (await api.get(f"/{username}/user-info", auth=session)).body
    assert info["email"] == "me@example.org"
    assert info["language"] == "fr"


async def test_update_user_info_refuses_a_taken_email(api: Api) -> None:
    first, s1 = await api.user()
    second, s2 = await api.user()
    await api.put(f"/{first}/user-info", {"email": "taken@example.org"}, auth=s1)
    reply = await api.put(f"/{second}/user-info", {"email": "taken@example.org"}, auth=s2)
    assert reply.status == 400
    assert reply.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


async def test_admin_methods_need_a_session_not_a_token(api: Api) -> None:
    username, session = await api.user()
    personal = await api.personal_token(username, session)
    reply = await api.get(f"/{username}/user-info", auth=personal)
    assert reply.status == 403
    assert reply.body["id"] == "FORBIDDEN"


async def test_change_password_checks_the_old_one(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/change-password",
        {"oldPassword": "wrong-one", "newPassword": "new-secret"},
        auth=session,
    )
    assert reply.status == 400
    assert reply.body["id"] == "WRONG_PASSWORD"


async def test_change_password_refuses_a_too_short_new_one(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/change-password",
        {"oldPassword": "secret-pw", "newPassword": "123"},
        auth=session,
    )
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_NEW_PASSWORD"


async def test_change_password_ends_the_other_sessions_and_takes_effect(api: Api) -> None:
    username, session = await api.user()
    other = await api.login(username)
    reply = await api.post(
        f"/{username}/change-password",
        {"oldPassword": "secret-pw", "newPassword": "brand-new-pw"},
        auth=session,
    )
    assert reply.status == 200
    assert (await api.get(f"/{username}/user-info", auth=other)).status == 401
    assert (await api.get(f"/{username}/user-info", auth=session)).status == 200
    api.passwords[username] = "brand-new-pw"
    assert await api.login(username)


async def test_sessions_expire_after_the_idle_time(make_api: AppFactory) -> None:
    api = await make_api(session_ttl=0.5)
    username, session = await api.user()
    assert (await api.get(f"/{username}/user-info", auth=session)).status == 200
    await asyncio.sleep(0.7)
    reply = await api.get(f"/{username}/user-info", auth=session)
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_TOKEN"


async def test_a_session_in_use_slides_its_expiry_cached_or_not(
    make_api: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pryvrt.auth import identity

    monkeypatch.setattr(identity, "SLIDE_EVERY", 0.05)  # (60 s in service)
    api = await make_api(cache_seconds=60)
    username, session = await api.user()
    pool = api.client.app[SERVICES_KEY].storage.pool
    expiry = "SELECT expires FROM sessions WHERE id = $1"
    for _ in range(3):  # a cache miss, then hits
        before = await pool.fetchval(expiry, session)
        await asyncio.sleep(0.1)
        assert (await api.get(f"/{username}/user-info", auth=session)).status == 200
        assert await pool.fetchval(expiry, session) > before


async def test_expired_sessions_are_deleted_from_the_database(make_api: AppFactory) -> None:
    """An expiry is no write: a periodic purge deletes the rows (each worker runs it)."""
    api = await make_api(session_ttl=1.0, session_purge_seconds=0.05)
    username, expired = await api.user()
    pool = api.client.app[SERVICES_KEY].storage.pool
    count = "SELECT count(*) FROM sessions WHERE id = $1"
    assert await pool.fetchval(count, expired) == 1
    await asyncio.sleep(1.1)
    live = await api.login(username)
    deadline = time.monotonic() + 5
    while await pool.fetchval(count, expired) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert await pool.fetchval(count, expired) == 0
    assert await pool.fetchval(count, live) == 1, "a live session is kept"


async def test_bookmarks_are_created_listed_renamed_and_deleted(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/bookmarks",
        {"name": "Bob's diary", "url": "https://bob.example/", "accessToken": "tok"},
        auth=session,
    )
    assert reply.status == 201
    bookmark_id = reply.body["id"]
    listed = (await api.get(f"/{username}/bookmarks", auth=session)).body
    assert listed == [
        {
            "id": bookmark_id,
            "name": "Bob's diary",
            "url": "https://bob.example/",
            "accessToken": "tok",
        }
    ]
    reply = await api.put(f"/{username}/bookmarks/{bookmark_id}", {"name": "Bob"}, auth=session)
    assert reply.status == 200
    assert (await api.get(f"/{username}/bookmarks", auth=session)).body[0]["name"] == "Bob"
    assert (await api.delete(f"/{username}/bookmarks/{bookmark_id}", auth=session)).status == 200
    assert (await api.get(f"/{username}/bookmarks", auth=session)).body == []


async def test_bookmark_names_are_unique(api: Api) -> None:
    username, session = await api.user()
    body = {"name": "same", "url": "https://x.example/", "accessToken": "t"}
    await api.post(f"/{username}/bookmarks", body, auth=session)
    reply = await api.post(f"/{username}/bookmarks", body, auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


async def test_bookmark_url_and_token_cannot_change(api: Api) -> None:
    username, session = await api.user()
    created = await api.post(
        f"/{username}/bookmarks",
        {"name": "b", "url": "https://x.example/", "accessToken": "t"},
        auth=session,
    )
    reply = await api.put(
        f"/{username}/bookmarks/{created.body['id']}",
        {"url": "https://evil.example/"},
        auth=session,
    )
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_OPERATION"


async def test_unknown_bookmark_is_404(api: Api) -> None:
    username, session = await api.user()
    reply = await api.delete(f"/{username}/bookmarks/nope", auth=session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_BOOKMARK"
