"""channels.* (API.md §5) and who may call them."""

from __future__ import annotations

from tests.conftest import Api
from tests.sockets import connect


async def test_create_then_list_sorted_by_name(api: Api) -> None:
    username, session = await api.user()
    await api.channel(username, session, name="Zeta")
    await api.channel(username, session, name="Alpha", enforceNoEventsOverlap=False)
    reply = await api.get(f"/{username}/channels", auth=session)
    assert reply.status == 200
    assert [c["name"] for c in reply.body] == ["Alpha", "Zeta"]
    alpha = reply.body[0]
    assert alpha["enforceNoEventsOverlap"] is False
    assert reply.body[1]["enforceNoEventsOverlap"] is True
    assert alpha["trashed"] is False
    assert alpha["clientData"] == {}
    assert alpha["modified"] > 0


async def test_create_with_a_client_id(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(f"/{username}/channels", {"id": "diary", "name": "Diary"}, auth=session)
    assert reply.status == 201
    assert reply.body == {"id": "diary"}


async def test_create_with_a_taken_id_or_name_is_refused(api: Api) -> None:
    username, session = await api.user()
    await api.post(f"/{username}/channels", {"id": "diary", "name": "Diary"}, auth=session)
    reply = await api.post(f"/{username}/channels", {"id": "diary", "name": "Other"}, auth=session)
    assert reply.body["id"] == "ITEM_ID_ALREADY_EXISTS"
    reply = await api.post(f"/{username}/channels", {"name": "Diary"}, auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


async def test_invalid_client_ids_are_invalid_item_id(api: Api) -> None:
    username, session = await api.user()
    for bad in ["has space", "*", "null", "channels", "x" * 101, "événement"]:
        reply = await api.post(f"/{username}/channels", {"id": bad, "name": bad}, auth=session)
        assert reply.status == 400, bad
        assert reply.body["id"] == "INVALID_ITEM_ID", bad


async def test_missing_name_is_a_parameter_error(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(f"/{username}/channels", {}, auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    assert "name" in reply.body["data"]


async def test_update_is_partial_and_merges_client_data(api: Api) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session, name="Work", clientData={"a": 1, "b": 2})
    reply = await api.put(
        f"/{username}/channels/{ch}", {"clientData": {"b": None, "c": 3}}, auth=session
    )
    assert reply.status == 200
    [channel] = (await api.get(f"/{username}/channels", auth=session)).body
    assert channel["name"] == "Work"
    assert channel["clientData"] == {"a": 1, "c": 3}
    await api.put(f"/{username}/channels/{ch}", {"name": "Job"}, auth=session)
    [channel] = (await api.get(f"/{username}/channels", auth=session)).body
    assert channel["name"] == "Job"
    assert channel["clientData"] == {"a": 1, "c": 3}


async def test_update_to_a_taken_name_is_refused(api: Api) -> None:
    username, session = await api.user()
    await api.channel(username, session, name="One")
    two = await api.channel(username, session, name="Two")
    reply = await api.put(f"/{username}/channels/{two}", {"name": "One"}, auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


async def test_update_of_an_unknown_channel_is_404(api: Api) -> None:
    username, session = await api.user()
    reply = await api.put(f"/{username}/channels/nope", {"name": "x"}, auth=session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_CHANNEL"


async def test_delete_trashes_then_deletes(api: Api) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session)
    assert (await api.delete(f"/{username}/channels/{ch}", auth=session)).status == 200
    assert (await api.get(f"/{username}/channels", auth=session)).body == []
    trashed = (await api.get(f"/{username}/channels?state=trashed", auth=session)).body
    assert [c["id"] for c in trashed] == [ch]
    assert trashed[0]["trashed"] is True
    assert len((await api.get(f"/{username}/channels?state=all", auth=session)).body) == 1
    assert (await api.delete(f"/{username}/channels/{ch}", auth=session)).status == 200
    assert (await api.get(f"/{username}/channels?state=all", auth=session)).body == []
    reply = await api.delete(f"/{username}/channels/{ch}", auth=session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_CHANNEL"


async def test_invalid_state_is_a_parameter_error(api: Api) -> None:
    username, session = await api.user()
    reply = await api.get(f"/{username}/channels?state=maybe", auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    assert "state" in reply.body["data"]


async def test_personal_token_manages_channels(api: Api) -> None:
    username, session = await api.user()
    personal = await api.personal_token(username, session)
    ch = await api.channel(username, personal, name="From app")
    assert (await api.put(f"/{username}/channels/{ch}", {"name": "x"}, auth=personal)).status == 200
    assert (await api.delete(f"/{username}/channels/{ch}", auth=personal)).status == 200


async def test_shared_token_sees_only_its_channels(api: Api) -> None:
    username, session = await api.user()
    a = await api.channel(username, session, name="A")
    await api.channel(username, session, name="B")
    token = await api.shared_token(username, session, [{"channelId": a, "level": "read"}])
    reply = await api.get(f"/{username}/channels", auth=token)
    assert [c["id"] for c in reply.body] == [a]


async def test_star_permission_sees_every_channel(api: Api) -> None:
    username, session = await api.user()
    await api.channel(username, session, name="A")
    await api.channel(username, session, name="B")
    token = await api.shared_token(username, session, [{"channelId": "*", "level": "read"}])
    reply = await api.get(f"/{username}/channels", auth=token)
    assert [c["name"] for c in reply.body] == ["A", "B"]


async def test_shared_tokens_cannot_create_or_delete_channels(api: Api) -> None:
    username, session = await api.user()
    a = await api.channel(username, session, name="A")
    token = await api.shared_token(username, session, [{"channelId": a, "level": "manage"}])
    reply = await api.post(f"/{username}/channels", {"name": "C"}, auth=token)
    assert reply.status == 403
    assert reply.body["id"] == "FORBIDDEN"
    reply = await api.delete(f"/{username}/channels/{a}", auth=token)
    assert reply.status == 403


async def test_channel_update_needs_manage_on_the_channel(api: Api) -> None:
    username, session = await api.user()
    a = await api.channel(username, session, name="A")
    b = await api.channel(username, session, name="B")
    for level in ("read", "contribute"):
        token = await api.shared_token(username, session, [{"channelId": a, "level": level}])
        reply = await api.put(f"/{username}/channels/{a}", {"name": "A2"}, auth=token)
        assert reply.status == 403, level
    manager = await api.shared_token(username, session, [{"channelId": a, "level": "manage"}])
    assert (await api.put(f"/{username}/channels/{a}", {"name": "A2"}, auth=manager)).status == 200
    reply = await api.put(f"/{username}/channels/{b}", {"name": "B2"}, auth=manager)
    assert reply.status == 403


async def test_another_users_token_is_an_invalid_token(api: Api) -> None:
    alice = await api.register()
    bob, bob_session = await api.user()
    reply = await api.get(f"/{alice}/channels", auth=bob_session)
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_TOKEN"
    bob_token = await api.personal_token(bob, bob_session)
    assert (await api.get(f"/{alice}/channels", auth=bob_token)).status == 401


async def test_missing_credential_is_invalid_token(api: Api) -> None:
    username = await api.register()
    reply = await api.get(f"/{username}/channels")
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_TOKEN"


async def test_credential_may_come_as_bearer_or_query(api: Api) -> None:
    username, session = await api.user()
    assert (await api.get(f"/{username}/channels", auth=f"Bearer {session}")).status == 200
    assert (await api.get(f"/{username}/channels?auth={session}")).status == 200


async def test_a_grant_on_a_channel_deleted_for_good_does_not_reach_a_new_channel_with_its_id(
    api: Api,
) -> None:
    username, session = await api.user()
    await api.channel(username, session, id="diary", name="Diary")
    other = await api.channel(username, session, id="other", name="Other")
    token = await api.shared_token(
        username,
        session,
        [{"channelId": "diary", "level": "manage"}, {"channelId": other, "level": "read"}],
    )
    assert (await api.get(f"/{username}/diary/events", auth=token)).status == 200
    for _ in range(2):  # trash, then delete for good
        assert (await api.delete(f"/{username}/channels/diary", auth=session)).status == 200
    # The grant died with the channel: the token lists only what is left.
    [stored] = [
        t for t in (await api.get(f"/{username}/tokens", auth=session)).body if t["id"] == token
    ]
    assert stored["permissions"] == [{"channelId": other, "level": "read"}]
    await api.channel(username, session, id="diary", name="New diary")
    reply = await api.post(f"/{username}/diary/events", {"folderId": None}, auth=session)
    assert reply.status == 201, reply
    reply = await api.get(f"/{username}/diary/events", auth=token)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN"), reply
    assert [c["id"] for c in (await api.get(f"/{username}/channels", auth=token)).body] == [other]


async def test_trashing_a_channel_keeps_the_grants_on_it(api: Api) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    token = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    assert (await api.delete(f"/{username}/channels/{channel}", auth=session)).status == 200
    [stored] = [
        t for t in (await api.get(f"/{username}/tokens", auth=session)).body if t["id"] == token
    ]
    assert stored["permissions"] == [{"channelId": channel, "level": "read"}]


async def test_a_socket_of_a_token_granted_on_a_channel_deleted_for_good_is_disconnected(
    api: Api,
) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    token = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    async with connect(str(api.client.make_url("/")), username, token) as sock:
        for _ in range(2):
            assert (await api.delete(f"/{username}/channels/{channel}", auth=session)).status == 200
        await sock.wait_disconnected()
