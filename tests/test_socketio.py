"""Socket.IO transport (API.md §10): connecting, method calls by ack, notifications."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pryvrt.app import SERVICES_KEY, SOCKETIO_KEY
from pryvrt.methods.registry import REGISTRY
from tests.conftest import Api
from tests.sockets import connect, refusal


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


def needs_events() -> None:
    if "events.create" not in REGISTRY:
        pytest.skip("events methods are not built on this branch yet")


# -- connecting ---------------------------------------------------------------------------


async def test_a_token_in_v4_auth_connects_and_calls_answer_through_the_ack(api: Api) -> None:
    username, session = await api.user()
    token = await api.personal_token(username, session)
    async with connect(url(api), username, token) as sock:
        error, result = await sock.call("channels.get", {})
    assert error is None
    assert isinstance(result, list)


async def test_a_token_in_the_auth_query_parameter_connects(api: Api) -> None:
    username, session = await api.user()
    token = await api.personal_token(username, session)
    async with connect(url(api), username, token, in_query=True) as sock:
        error, result = await sock.call("channels.get", {})
    assert error is None and result == []


async def test_long_polling_works_with_a_single_worker(api: Api) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session, transports=["polling"]) as sock:
        error, _ = await sock.call("channels.get")
    assert error is None


@pytest.mark.parametrize("credential", [None, "not-a-token"])
async def test_a_missing_or_unknown_credential_is_refused_with_invalid_token(
    api: Api, credential: str | None
) -> None:
    username = await api.register()
    refused = await refusal(url(api), username, credential)
    assert refused["data"]["id"] == "INVALID_TOKEN"
    assert refused["data"]["message"]


async def test_another_users_token_is_refused_with_invalid_token(api: Api) -> None:
    alice, alice_session = await api.user()
    bob = await api.register()
    token = await api.personal_token(alice, alice_session)
    refused = await refusal(url(api), bob, token)
    assert refused["data"]["id"] == "INVALID_TOKEN"


async def test_an_unknown_user_is_refused_with_unknown_user(api: Api) -> None:
    refused = await refusal(url(api), "nobody-at-all", "whatever")
    assert refused["data"]["id"] == "UNKNOWN_USER"


# -- method calls -------------------------------------------------------------------------


async def test_calls_answer_like_http(api: Api) -> None:
    username, session = await api.user()
    token = await api.personal_token(username, session)
    await api.channel(username, token, name="Diary")
    async with connect(url(api), username, token) as sock:
        # Same results.
        http = await api.get(f"/{username}/channels", auth=token)
        assert await sock.call("channels.get", {}) == [None, http.body]
        http = await api.get(f"/{username}/tokens", auth=token)
        assert await sock.call("tokens.get", {}) == [None, http.body]
        # Same errors.
        http = await api.post(f"/{username}/channels", {"name": "Diary"}, auth=token)
        assert http.status == 400
        assert await sock.call("channels.create", {"name": "Diary"}) == [http.body, None]
        http = await api.post(f"/{username}/channels", {"name": 5}, auth=token)
        assert await sock.call("channels.create", {"name": 5}) == [http.body, None]
        # Same batch answers (both forms: {calls} and the bare array of HTTP).
        calls = [
            {"method": "channels.get", "params": {}},
            {"method": "channels.create", "params": {"name": "Diary"}},
            {"method": "nope.nope", "params": {}},
        ]
        http = await api.post(f"/{username}/", calls, auth=token)
        assert http.status == 200
        assert await sock.call("batch", {"calls": calls}) == [None, http.body]
        assert await sock.call("batch", calls) == [None, http.body]


async def test_permissions_are_those_of_the_sockets_credential(api: Api) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    shared = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    async with connect(url(api), username, shared) as sock:
        error, result = await sock.call("channels.create", {"name": "x"})
        assert result is None and error["id"] == "FORBIDDEN"
        error, result = await sock.call("channels.get")
        assert error is None and [c["id"] for c in result] == [channel]


async def test_an_unknown_method_answers_unknown_method(api: Api) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("nothing.here", {})
    assert result is None
    assert error["id"] == "UNKNOWN_METHOD" and error["message"]


async def test_methods_carrying_files_are_not_callable_over_socketio(api: Api) -> None:
    file_methods = [m for m in REGISTRY.values() if not m.socket]
    if not file_methods:
        pytest.skip("no file-carrying method on this branch yet")
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        error, _ = await sock.call(file_methods[0].id, {})
    assert error["id"] == "UNKNOWN_METHOD"


async def test_params_that_are_not_an_object_answer_invalid_parameters_format(api: Api) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        error, _ = await sock.call("channels.create", ["not", "an", "object"])
    assert error["id"] == "INVALID_PARAMETERS_FORMAT"


async def test_the_seed_command_form_calls_the_method(api: Api) -> None:
    username, session = await api.user()
    await api.channel(username, session, name="Work")
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("command", {"id": "channels.get", "params": {}})
        assert error is None and [c["name"] for c in result] == ["Work"]
        error, _ = await sock.call("command", {"id": "x.nothing.here", "params": {}})
        assert error["id"] == "UNKNOWN_METHOD"
        error, _ = await sock.call("command", "channels.get")
        assert error["id"] == "INVALID_PARAMETERS_FORMAT"


async def test_the_seed_command_form_injects_the_channel_id(api: Api) -> None:
    needs_events()
    username, session = await api.user()
    channel = await api.channel(username, session, id="ch.with.dots")
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("command", {"id": f"{channel}.events.get", "params": {}})
    http = await api.get(f"/{username}/{channel}/events", auth=session)
    assert error is None and result == http.body


async def test_a_call_without_an_ack_does_not_break_the_socket(api: Api) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        await sock.emit("channels.create", {"name": "fire-and-forget"})
        await sock.emit("nothing.here", {})
        await sock.emit("channels.get")
        # The server runs a socket's calls concurrently (python-socketio's async handlers):
        # the create may commit after a later call answers. Ask until it shows (5 s).
        async with asyncio.timeout(5):
            while True:
                error, result = await sock.call("channels.get")
                assert error is None
                if result:
                    break
                await asyncio.sleep(0.02)
    assert [c["name"] for c in result] == ["fire-and-forget"]


async def test_a_credential_that_stopped_working_disconnects_the_socket_on_its_next_check(
    make_api: Any,
) -> None:
    api = await make_api(socket_recheck_seconds=0.0, cache_seconds=0)
    username, session = await api.user()
    token = await api.personal_token(username, session)
    async with connect(url(api), username, token) as sock:
        # Delete the row behind the server's back (as if the revocation was lost).
        storage = api.client.app[SERVICES_KEY].storage
        await storage.pool.execute("DELETE FROM tokens WHERE id = $1", token)
        error, _ = await sock.call("channels.get")
        assert error["id"] == "INVALID_TOKEN"
        await sock.wait_disconnected()


# -- notifications ------------------------------------------------------------------------


async def test_channel_writes_notify_channels_changed_once_without_payload(api: Api) -> None:
    username, session = await api.user()
    token = await api.personal_token(username, session)
    async with connect(url(api), username, token) as sock:
        channel = await api.channel(username, session)
        assert await sock.next() == ("channelsChanged", None)
        reply = await api.put(f"/{username}/channels/{channel}", {"name": "renamed"}, auth=session)
        assert reply.status == 200
        assert await sock.next() == ("channelsChanged", None)
        assert await sock.drain() == []


async def test_a_write_over_the_socket_notifies_the_other_sockets_and_itself(api: Api) -> None:
    username, session = await api.user()
    async with (
        connect(url(api), username, session) as writer,
        connect(url(api), username, session) as watcher,
    ):
        error, _ = await writer.call("channels.create", {"name": "x"})
        assert error is None
        assert await watcher.next() == ("channelsChanged", None)
        assert await writer.next() == ("channelsChanged", None)


async def test_a_batch_notifies_once_for_all_its_writes(api: Api) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        calls = [{"method": "channels.create", "params": {"name": f"c{i}"}} for i in range(3)]
        reply = await api.post(f"/{username}/", calls, auth=session)
        assert reply.status == 200
        assert await sock.drain(0.5) == [("channelsChanged", None)]


async def test_other_users_sockets_get_nothing(api: Api) -> None:
    alice, alice_session = await api.user()
    bob, bob_session = await api.user()
    async with connect(url(api), bob, bob_session) as bob_sock:
        await api.channel(alice, alice_session)
        assert await bob_sock.drain() == []


async def test_events_changed_reaches_only_sockets_that_can_see_the_channel(api: Api) -> None:
    needs_events()
    username, session = await api.user()
    a = await api.channel(username, session)
    b = await api.channel(username, session)
    shared = await api.shared_token(username, session, [{"channelId": a, "level": "read"}])
    personal = await api.personal_token(username, session)
    async with (
        connect(url(api), username, shared) as on_a,
        connect(url(api), username, personal) as on_all,
    ):
        for channel in (a, b):
            reply = await api.post(
                f"/{username}/{channel}/events", {"type": "note/txt", "content": "hi"}, auth=session
            )
            assert reply.status == 201, reply
        assert await on_a.drain(0.5) == [("eventsChanged", {"channelId": a})]
        assert sorted(map(str, await on_all.drain(0.1))) == sorted(
            map(str, [("eventsChanged", {"channelId": a}), ("eventsChanged", {"channelId": b})])
        )


async def test_folder_writes_over_the_socket_notify_folders_changed_for_that_channel(
    api: Api,
) -> None:
    needs_events()
    username, session = await api.user()
    a = await api.channel(username, session)
    b = await api.channel(username, session)
    shared = await api.shared_token(username, session, [{"channelId": b, "level": "read"}])
    async with (
        connect(url(api), username, session) as writer,
        connect(url(api), username, shared) as on_b,
    ):
        error, result = await writer.call("folders.create", {"channelId": a, "name": "Work"})
        assert error is None and result["id"]
        assert await writer.next() == ("foldersChanged", {"channelId": a})
        assert await on_b.drain() == []
        error, _ = await writer.call("folders.create", {"channelId": b, "name": "Home"})
        assert error is None
        assert await on_b.next() == ("foldersChanged", {"channelId": b})
        assert await writer.next() == ("foldersChanged", {"channelId": b})


async def test_deleting_a_token_disconnects_its_sockets_only(api: Api) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    doomed = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    kept = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    async with (
        connect(url(api), username, doomed) as doomed_sock,
        connect(url(api), username, kept) as kept_sock,
    ):
        reply = await api.delete(f"/{username}/tokens/{doomed}", auth=session)
        assert reply.status == 200
        await doomed_sock.wait_disconnected()
        await asyncio.sleep(0.1)
        assert not kept_sock.disconnected.is_set()
        assert (await kept_sock.call("channels.get"))[0] is None


async def test_changing_a_tokens_permissions_disconnects_its_sockets(api: Api) -> None:
    username, session = await api.user()
    a = await api.channel(username, session)
    b = await api.channel(username, session)
    token = await api.shared_token(username, session, [{"channelId": a, "level": "read"}])
    async with connect(url(api), username, token) as sock:
        reply = await api.put(
            f"/{username}/tokens/{token}",
            {"permissions": [{"channelId": b, "level": "read"}]},
            auth=session,
        )
        assert reply.status == 200, reply
        await sock.wait_disconnected()


async def test_logout_disconnects_the_sessions_sockets(api: Api) -> None:
    username, session = await api.user()
    other_session = await api.login(username)
    async with (
        connect(url(api), username, session) as sock,
        connect(url(api), username, other_session) as other,
    ):
        reply = await api.post(f"/{username}/logout", {}, auth=session)
        assert reply.status == 200
        await sock.wait_disconnected()
        await asyncio.sleep(0.1)
        assert not other.disconnected.is_set()


async def test_stopping_the_server_closes_open_sockets_quickly(api: Api) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(api.client.close(), 5)
        await sock.wait_disconnected()
        assert loop.time() - started < 2


async def test_notifications_through_redis_arrive_once(make_api: Any, redis_url: str) -> None:
    api = await make_api(redis_url=redis_url)
    username, session = await api.user()
    async with (
        connect(url(api), username, session) as first,
        connect(url(api), username, session) as second,
    ):
        await api.channel(username, session)
        assert await first.next() == ("channelsChanged", None)
        assert await second.next() == ("channelsChanged", None)
        assert await first.drain() == [] and await second.drain() == []


async def test_pages_of_other_origins_may_connect(api: Api) -> None:
    username, session = await api.user()
    async with connect(
        url(api), username, session, headers={"Origin": "https://app.example"}
    ) as sock:
        error, _ = await sock.call("channels.get")
    assert error is None


async def test_a_server_starts_and_takes_writes_while_redis_is_unreachable(make_api: Any) -> None:
    from tests.conftest import free_port

    api = await make_api(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("channels.create", {"name": "offline"})
        assert error is None and result["id"]
        assert await sock.drain(0.2) == []  # its notification could not travel


async def test_websocket_and_polling_sockets_each_get_one_notification(api: Api) -> None:
    """Websocket sockets take the encode-once path (transports.fanout), polling ones the
    stock emit; a client cannot tell them apart."""
    username, session = await api.user()
    transport = api.client.app[SOCKETIO_KEY]
    async with (
        connect(url(api), username, session) as ws_sock,
        connect(url(api), username, session, transports=["polling"]) as polling_sock,
    ):
        assert len(transport.sio.websockets) == 1  # only the websocket one is recorded
        reply = await api.post(f"/{username}/channels", {"name": "both"}, auth=session)
        assert reply.status == 201
        channel = reply.body["id"]
        reply = await api.post(f"/{username}/{channel}/events", {}, auth=session)
        assert reply.status == 201
        for sock in (ws_sock, polling_sock):
            assert await sock.next(within=2.0) == ("channelsChanged", None)
            assert await sock.next(within=2.0) == ("eventsChanged", {"channelId": channel})
            assert await sock.drain(0.2) == []
    async with asyncio.timeout(2):  # the server notices the disconnect
        while transport.sio.websockets:  # noqa: ASYNC110 - polling server state
            await asyncio.sleep(0.01)
