"""Notifications obey the permission matrix (API.md §7, §10): a socket hears about a channel
only when its credential can read that channel, never about another user's data, and a
revoked credential loses its socket. Same credential kinds as ``test_permission_matrix``.

``eventsChanged`` reaches a socket only when the change touches an event its credential can
read, before or after the change (API.md §14): a folder-scoped token does not hear about
events of other folders of its channel. The notification still carries only the channel id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pryvrt.app import SERVICES_KEY
from tests.conftest import Api, AppFactory
from tests.sockets import Socket, connect, refusal
from tests.test_permission_matrix import (
    COLUMNS,
    UNKNOWN_CREDENTIALS,
    World,
    build_credentials,
    build_world,
)

LIVE = [c for c in COLUMNS if c not in UNKNOWN_CREDENTIALS]
FULL = {"session", "personal", "all-read", "all-manage"}
ON_A = {c for c in LIVE if c.startswith(("channel-", "folder-"))}
FOLDER = {c for c in LIVE if c.startswith("folder-")}


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


async def checked(reply: Awaitable[Any]) -> Any:
    result = await reply
    assert 200 <= result.status < 300, result
    return result.body


def writes(api: Api, owner: World, other: World) -> list[tuple[Callable[[], Any], Any, set[str]]]:
    """(a write, the notification it causes, the columns whose socket must receive it)."""
    o, auth = owner, owner.personal

    def event(user: World, channel: str, folder: str | None) -> Callable[[], Any]:
        body = {"folderId": folder, "time": time.time() - 5}
        path = f"/{user.username}/{channel}/events"
        return lambda: checked(api.post(path, body, auth=user.personal))

    return [
        (event(o, o.a, o.f1), ("eventsChanged", {"channelId": o.a}), FULL | ON_A),
        # Outside the folder tokens' folders: only channel-wide grants hear it.
        (event(o, o.a, o.g), ("eventsChanged", {"channelId": o.a}), FULL | ON_A - FOLDER),
        (event(o, o.b, o.fb), ("eventsChanged", {"channelId": o.b}), FULL | {"no-permission"}),
        (
            lambda: checked(api.post(f"/{o.username}/{o.b}/folders", {"name": "n"}, auth=auth)),
            ("foldersChanged", {"channelId": o.b}),
            FULL | {"no-permission"},
        ),
        # A new channel: only credentials reaching every channel can see it.
        (lambda: api.channel(o.username, auth), ("channelsChanged", None), FULL),
        (
            lambda: checked(
                api.put(f"/{o.username}/channels/{o.a}", {"clientData": {}}, auth=auth)
            ),
            ("channelsChanged", None),
            FULL | ON_A,
        ),
        (
            lambda: checked(
                api.put(f"/{o.username}/channels/{o.b}", {"clientData": {}}, auth=auth)
            ),
            ("channelsChanged", None),
            FULL | {"no-permission"},
        ),
        # Another user's write reaches none of the owner's sockets.
        (event(other, other.a, other.f1), ("eventsChanged", {"channelId": other.a}), set()),
    ]


@pytest.mark.parametrize("bus", ["local", "redis"])
async def test_a_socket_hears_only_about_channels_its_credential_can_read(
    make_api: AppFactory, redis_url: str, bus: str
) -> None:
    api = await (make_api(redis_url=redis_url) if bus == "redis" else make_api())
    owner, other = await build_world(api), await build_world(api)
    credentials = await build_credentials(api, owner, other, None)
    plan = writes(api, owner, other)
    async with contextlib.AsyncExitStack() as stack:
        sockets: dict[str, Socket] = {}
        for column in LIVE:
            sockets[column] = await stack.enter_async_context(
                connect(url(api), owner.username, credentials[column])
            )
        stranger = await stack.enter_async_context(
            connect(url(api), other.username, other.personal)
        )
        for write, _, _ in plan:
            await write()
        received = await asyncio.gather(*(s.drain(0.6) for s in (*sockets.values(), stranger)))
    got = dict(zip([*LIVE, "stranger"], received, strict=True))
    for column in LIVE:
        want = [note for _, note, columns in plan if column in columns]
        assert got[column] == want, column
    # The other user's socket hears of its own write only.
    assert got["stranger"] == [("eventsChanged", {"channelId": other.a})]


async def test_a_revoked_credential_loses_its_socket_and_cannot_connect_again(api: Api) -> None:
    owner, other = await build_world(api), await build_world(api)
    credentials = await build_credentials(api, owner, other, None)
    second_session = await api.login(owner.username)
    base, user = url(api), owner.username
    deleted, narrowed = credentials["channel-read"], credentials["channel-contribute"]
    async with (
        connect(base, user, deleted) as deleted_sock,
        connect(base, user, narrowed) as narrowed_sock,
        connect(base, user, second_session) as logged_out_sock,
        connect(base, user, credentials["channel-manage"]) as bystander,
    ):
        await checked(api.delete(f"/{user}/tokens/{deleted}", auth=owner.personal))
        await deleted_sock.wait_disconnected()
        perms = {"permissions": [{"channelId": owner.b, "level": "read"}]}
        await checked(api.put(f"/{user}/tokens/{narrowed}", perms, auth=owner.personal))
        await narrowed_sock.wait_disconnected()
        await checked(api.post(f"/{user}/logout", auth=second_session))
        await logged_out_sock.wait_disconnected()
        # The others keep their socket and their notifications.
        await checked(api.post(f"/{user}/{owner.a}/events", {}, auth=owner.personal))
        assert await bystander.next() == ("eventsChanged", {"channelId": owner.a})
        assert not bystander.disconnected.is_set()
    for gone in (deleted, second_session):
        assert (await refusal(base, user, gone))["data"]["id"] == "INVALID_TOKEN"
    # The narrowed token connects again, now seeing channel B only.
    async with connect(base, user, narrowed) as again:
        error, channels = await again.call("channels.get")
        assert error is None and [c["id"] for c in channels] == [owner.b]


async def test_logging_out_over_socketio_answers_the_call_then_disconnects(api: Api) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("admin.logout")
        assert (error, result) == (None, {})
        await sock.wait_disconnected()
    assert (await refusal(url(api), username, session))["data"]["id"] == "INVALID_TOKEN"


async def test_a_socket_whose_session_expires_is_disconnected_without_any_call(
    make_api: AppFactory,
) -> None:
    api = await make_api(session_ttl=1.0, socket_recheck_seconds=0.2)
    username, session = await api.user()
    token = await api.personal_token(username, session)
    async with (
        connect(url(api), username, session) as expiring,
        connect(url(api), username, token) as lasting,
    ):
        await expiring.wait_disconnected(within=5)
        assert not lasting.disconnected.is_set()
    assert (await refusal(url(api), username, session))["data"]["id"] == "INVALID_TOKEN"


async def test_a_session_slid_later_elsewhere_keeps_its_socket(make_api: AppFactory) -> None:
    """The sweep rereads a session past the expiry it last saw: use elsewhere (another
    worker, say) may have slid it later."""
    api = await make_api(session_ttl=1.0, socket_recheck_seconds=0.2)
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        storage = api.client.app[SERVICES_KEY].storage
        await storage.pool.execute(
            "UPDATE sessions SET expires = expires + 60 WHERE id = $1", session
        )
        await asyncio.sleep(2.0)  # twice the lifetime the socket saw at connect
        assert not sock.disconnected.is_set()
        error, _ = await sock.call("channels.get")
        assert error is None


async def test_changing_the_password_disconnects_the_other_sessions_sockets(api: Api) -> None:
    username, session = await api.user()
    other_session = await api.login(username)
    async with (
        connect(url(api), username, other_session) as other,
        connect(url(api), username, session) as mine,
    ):
        body = {"oldPassword": "secret-pw", "newPassword": "secret-pw-2"}
        await checked(api.post(f"/{username}/change-password", body, auth=session))
        await other.wait_disconnected()
        error, _ = await mine.call("channels.get")
        assert error is None
