"""tokens.* (API.md §7): personal get-or-create, shared tokens and the never-more rule."""

from __future__ import annotations

from tests.conftest import Api


async def test_personal_token_is_created_once_per_app_name(api: Api) -> None:
    username, session = await api.user()
    first = await api.personal_token(username, session, name="my-app")
    again = (await api.get(f"/{username}/tokens/my-app", auth=session)).body["id"]
    assert first == again
    other = await api.personal_token(username, session, name="other-app")
    assert other != first
    assert len(first) >= 40


async def test_personal_tokens_need_a_session(api: Api) -> None:
    username, session = await api.user()
    personal = await api.personal_token(username, session)
    reply = await api.post(f"/{username}/tokens/personal", {"name": "x"}, auth=personal)
    assert reply.status == 403
    assert reply.body["id"] == "FORBIDDEN"


async def test_create_and_list_shared_tokens(api: Api) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session)
    reply = await api.post(
        f"/{username}/tokens",
        {"name": "for-bob", "permissions": [{"channelId": ch, "level": "contribute"}]},
        auth=session,
    )
    assert reply.status == 201
    token_id = reply.body["id"]
    listed = (await api.get(f"/{username}/tokens", auth=session)).body
    [token] = [t for t in listed if t["id"] == token_id]
    assert token["type"] == "shared"
    assert token["name"] == "for-bob"
    assert token["permissions"] == [{"channelId": ch, "level": "contribute"}]
    assert token["created"] > 0


async def test_a_personal_token_lists_only_shared_tokens_without_their_secret(api: Api) -> None:
    username, session = await api.user()
    personal = await api.personal_token(username, session)
    shared = await api.shared_token(username, session, [])
    by_session = {t["id"]: t for t in (await api.get(f"/{username}/tokens", auth=session)).body}
    listed = (await api.get(f"/{username}/tokens", auth=personal)).body
    assert [t["accessId"] for t in listed] == [by_session[shared]["accessId"]]
    assert "id" not in listed[0] and shared not in str(listed)
    # ... and manages them by accessId.
    reply = await api.delete(f"/{username}/tokens/{listed[0]['accessId']}", auth=personal)
    assert reply.status == 200, reply
    assert (await api.get(f"/{username}/channels", auth=shared)).status == 401


async def test_token_names_are_unique(api: Api) -> None:
    username, session = await api.user()
    await api.post(f"/{username}/tokens", {"name": "same"}, auth=session)
    reply = await api.post(f"/{username}/tokens", {"name": "same"}, auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


async def test_bad_permission_levels_are_parameter_errors(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/tokens",
        {"name": "bad", "permissions": [{"channelId": "x", "level": "admin"}]},
        auth=session,
    )
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    assert "permissions.0.level" in reply.body["data"]


async def test_shared_tokens_cannot_create_tokens(api: Api) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session)
    manager = await api.shared_token(username, session, [{"channelId": ch, "level": "manage"}])
    reply = await api.post(
        f"/{username}/tokens",
        {"name": "sub", "permissions": [{"channelId": ch, "level": "read"}]},
        auth=manager,
    )
    assert reply.status == 403
    assert reply.body["id"] == "FORBIDDEN"


async def test_update_renames_and_changes_permissions(api: Api) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session)
    token = await api.shared_token(username, session, [{"channelId": ch, "level": "read"}])
    reply = await api.put(
        f"/{username}/tokens/{token}",
        {"name": "renamed", "permissions": [{"channelId": ch, "level": "manage"}]},
        auth=session,
    )
    assert reply.status == 200
    [listed] = [
        t for t in (await api.get(f"/{username}/tokens", auth=session)).body if t["id"] == token
    ]
    assert listed["name"] == "renamed"
    assert listed["permissions"][0]["level"] == "manage"


async def test_update_or_delete_of_an_unknown_token_is_404(api: Api) -> None:
    username, session = await api.user()
    reply = await api.put(f"/{username}/tokens/nope", {"name": "x"}, auth=session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_TOKEN"
    reply = await api.delete(f"/{username}/tokens/nope", auth=session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_TOKEN"


async def test_deleted_tokens_stop_working(api: Api) -> None:
    username, session = await api.user()
    token = await api.shared_token(username, session, [{"channelId": "*", "level": "read"}])
    assert (await api.get(f"/{username}/channels", auth=token)).status == 200
    assert (await api.delete(f"/{username}/tokens/{token}", auth=session)).status == 200
    reply = await api.get(f"/{username}/channels", auth=token)
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_TOKEN"


async def test_a_personal_token_cannot_touch_personal_tokens(api: Api) -> None:
    username, session = await api.user()
    personal = await api.personal_token(username, session, name="one")
    other = await api.personal_token(username, session, name="two")
    reply = await api.delete(f"/{username}/tokens/{other}", auth=personal)
    assert reply.status == 404
    assert (await api.delete(f"/{username}/tokens/{other}", auth=session)).status == 200


async def test_shared_tokens_cannot_list_tokens(api: Api) -> None:
    username, session = await api.user()
    token = await api.shared_token(username, session, [{"channelId": "*", "level": "manage"}])
    reply = await api.get(f"/{username}/tokens", auth=token)
    assert reply.status == 403
    assert reply.body["id"] == "FORBIDDEN"


async def test_access_info_says_what_each_credential_is_and_may_do_without_its_secret(
    api: Api,
) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session)
    perms = [{"channelId": ch, "level": "read"}]
    shared = await api.shared_token(username, session, perms)
    personal = await api.personal_token(username, session, name="my-app")
    tokens = {t["id"]: t for t in (await api.get(f"/{username}/tokens", auth=session)).body}

    info = (await api.get(f"/{username}/access-info", auth=shared)).body
    assert info == {
        "type": "shared",
        "name": tokens[shared]["name"],
        "accessId": tokens[shared]["accessId"],
        "username": username,
        "permissions": perms,
    }
    for credential, kind in ((session, "session"), (personal, "personal")):
        info = (await api.get(f"/{username}/access-info", auth=credential)).body
        assert info["type"] == kind
        assert info["permissions"] == [{"channelId": "*", "level": "manage"}]
        assert credential not in str(info)
    assert shared not in str((await api.get(f"/{username}/access-info", auth=shared)).body)
    reply = await api.get(f"/{username}/access-info", auth="not-a-token")
    assert reply.status == 401 and reply.body["id"] == "INVALID_TOKEN"
