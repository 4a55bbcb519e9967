"""In-app sharing (API.md §14, seeds 001/002): ``tokens.create`` with ``shareWith`` delivers
a shared token to another user of the server, who sees it in ``GET /shares``, hears
``sharesChanged`` on their sockets (on every worker), accepts it as a bookmark or declines
it; deleting the token withdraws it. And the default structure: a new user's ``diary``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from pryvrt.config import ConfigError, Settings
from tests.conftest import Api, AppFactory
from tests.sockets import Socket, connect


async def sharer_and_recipient(api: Api) -> tuple[dict[str, str], dict[str, str]]:
    out = []
    for _ in range(2):
        username, session = await api.user()
        personal = await api.personal_token(username, session)
        out.append({"username": username, "session": session, "personal": personal})
    alice, bob = out
    alice["channel"] = await api.channel(alice["username"], alice["personal"], name="Garden")
    return alice, bob


async def share(api: Api, alice: dict[str, str], to: str, name: str = "garden", **extra: Any):
    body = {
        "name": name,
        "permissions": [{"channelId": alice["channel"], "level": "read", "tags": ["roses"]}],
        "shareWith": to,
        **extra,
    }
    return await api.post(f"/{alice['username']}/tokens", body, auth=alice["personal"])


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


async def shares_of(api: Api, who: dict[str, str]) -> list[dict[str, Any]]:
    reply = await api.get(f"/{who['username']}/shares", auth=who["session"])
    assert reply.status == 200, reply
    return list(reply.body)


async def test_a_token_shared_with_a_user_reaches_their_list_and_opens_the_sharers_data(
    api: Api,
) -> None:
    alice, bob = await sharer_and_recipient(api)
    reply = await share(api, alice, bob["username"])
    assert reply.status == 201, reply
    token = reply.body["id"]
    [got] = await shares_of(api, bob)
    assert set(got) == {"id", "fromUsername", "name", "url", "token", "created"}
    assert (got["fromUsername"], got["name"], got["token"]) == (alice["username"], "garden", token)
    assert got["url"] == f"{url(api).rstrip('/')}/{alice['username']}/"
    # The token opens alice's channel, narrowed to its filter.
    base = f"/{alice['username']}/{alice['channel']}/events"
    for tags in (["roses"], ["weeds"]):
        reply = await api.post(base, {"tags": tags}, auth=alice["personal"])
        assert reply.status == 201
    reply = await api.get(base, auth=got["token"])
    assert [e["tags"] for e in reply.body] == [["roses"]]
    # Nobody else sees it: not the sharer's list of shares, not a third user.
    assert await shares_of(api, alice) == []


async def test_accepting_a_share_makes_it_a_bookmark_and_takes_it_off_the_list(api: Api) -> None:
    alice, bob = await sharer_and_recipient(api)
    await share(api, alice, bob["username"])
    [pending] = await shares_of(api, bob)
    taken = await api.post(
        f"/{bob['username']}/bookmarks",
        {"name": "garden", "url": "https://x.example/", "accessToken": "x"},
        auth=bob["session"],
    )
    assert taken.status == 201
    path = f"/{bob['username']}/shares/{pending['id']}/accept"
    reply = await api.post(path, {}, auth=bob["session"])
    assert (reply.status, reply.body["id"]) == (400, "ITEM_NAME_ALREADY_EXISTS"), reply
    assert await shares_of(api, bob) == [pending], "a failed accept keeps the share"
    reply = await api.post(path, {"name": "alice's garden"}, auth=bob["session"])
    assert reply.status == 200, reply
    bookmark = reply.body["bookmark"]
    assert {k: bookmark[k] for k in ("name", "url", "accessToken")} == {
        "name": "alice's garden",
        "url": pending["url"],
        "accessToken": pending["token"],
    }
    listed = (await api.get(f"/{bob['username']}/bookmarks", auth=bob["session"])).body
    assert bookmark in listed
    assert await shares_of(api, bob) == []
    reply = await api.post(path, {}, auth=bob["session"])
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_SHARE")


async def test_two_concurrent_accepts_make_one_bookmark(api: Api) -> None:
    alice, bob = await sharer_and_recipient(api)
    await share(api, alice, bob["username"])
    [pending] = await shares_of(api, bob)
    path = f"/{bob['username']}/shares/{pending['id']}/accept"
    replies = await asyncio.gather(
        *(api.post(path, {"name": f"copy {i}"}, auth=bob["session"]) for i in range(4))
    )
    assert sorted(r.status for r in replies) == [200, 404, 404, 404], replies
    bookmarks = (await api.get(f"/{bob['username']}/bookmarks", auth=bob["session"])).body
    assert len(bookmarks) == 1


async def test_declining_a_share_removes_it_and_leaves_the_token_working(api: Api) -> None:
    alice, bob = await sharer_and_recipient(api)
    token = (await share(api, alice, bob["username"])).body["id"]
    [pending] = await shares_of(api, bob)
    reply = await api.delete(f"/{bob['username']}/shares/{pending['id']}", auth=bob["session"])
    assert (reply.status, reply.body) == (200, {})
    assert await shares_of(api, bob) == []
    reply = await api.get(f"/{alice['username']}/channels", auth=token)
    assert reply.status == 200
    reply = await api.delete(f"/{bob['username']}/shares/{pending['id']}", auth=bob["session"])
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_SHARE")


async def test_deleting_the_token_withdraws_the_share(api: Api) -> None:
    alice, bob = await sharer_and_recipient(api)
    token = (await share(api, alice, bob["username"])).body["id"]
    await share(api, alice, bob["username"], name="other")
    reply = await api.delete(f"/{alice['username']}/tokens/{token}", auth=alice["personal"])
    assert reply.status == 200
    assert [s["name"] for s in await shares_of(api, bob)] == ["other"]


async def test_shares_are_for_the_recipients_session_only_and_share_with_is_checked(
    api: Api,
) -> None:
    alice, bob = await sharer_and_recipient(api)
    reply = await api.get(f"/{bob['username']}/shares", auth=bob["personal"])
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")
    for target, extra in (
        ("nobody-here", {}),
        (alice["username"], {}),  # oneself
        (bob["username"], {"type": "app"}),
    ):
        reply = await share(api, alice, target, name=f"n-{target}-{len(extra)}", **extra)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
        assert "shareWith" in reply.body["data"]
    # Nothing was created by the refused calls.
    tokens = (await api.get(f"/{alice['username']}/tokens", auth=alice["session"])).body
    assert [t["name"] for t in tokens if t["type"] != "personal"] == []
    # Never more than its creator: a shared token cannot share at all (personal only).
    token = (await share(api, alice, bob["username"])).body["id"]
    reply = await share(api, alice | {"personal": token}, bob["username"], name="again")
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")


@pytest.mark.parametrize("bus", ["local", "redis"])
async def test_the_recipients_sockets_hear_shares_changed_on_every_worker(
    make_api: AppFactory, redis_url: str, bus: str
) -> None:
    """Two servers on one database and one Redis stand for two workers: the share is
    created on one, the recipient's session socket is held by the other."""
    first = await (make_api(redis_url=redis_url) if bus == "redis" else make_api())
    second = await make_api(redis_url=redis_url) if bus == "redis" else first
    alice, bob = await sharer_and_recipient(first)
    bob_token = await first.shared_token(
        bob["username"], bob["personal"], [{"channelId": "*", "level": "read"}]
    )
    async with contextlib.AsyncExitStack() as stack:

        async def sock(api: Api, who: dict[str, str], credential: str) -> Socket:
            return await stack.enter_async_context(connect(url(api), who["username"], credential))

        listeners = {
            "bob-session": await sock(second, bob, bob["session"]),
            "bob-personal": await sock(second, bob, bob["personal"]),
            "bob-shared-token": await sock(second, bob, bob_token),
            "alice-session": await sock(second, alice, alice["session"]),
        }

        async def heard() -> set[str]:
            """Who heard sharesChanged within the next 0.6 s (all listen at once)."""
            got = await asyncio.gather(*(s.drain(0.6) for s in listeners.values()))
            return {
                n
                for n, items in zip(listeners, got, strict=True)
                if ("sharesChanged", None) in items
            }

        full = {"bob-session", "bob-personal"}
        token = (await share(first, alice, bob["username"])).body["id"]
        assert await heard() == full
        [pending] = await shares_of(first, bob)
        reply = await first.delete(
            f"/{bob['username']}/shares/{pending['id']}", auth=bob["session"]
        )
        assert reply.status == 200
        assert await heard() == full
        await share(first, alice, bob["username"], name="again")
        assert await heard() == full
        await first.delete(f"/{alice['username']}/tokens/{token}", auth=alice["personal"])
        assert await heard() == set(), "withdrawing a share already declined: nothing to hear"
        [pending] = await shares_of(first, bob)
        reply = await first.post(
            f"/{bob['username']}/shares/{pending['id']}/accept", {}, auth=bob["session"]
        )
        assert reply.status == 200
        assert await heard() == full


# -- the default structure ---------------------------------------------------------------------


async def test_a_new_user_starts_with_the_default_channels(make_api: AppFactory) -> None:
    api = await make_api(default_channels=(("diary", "Diary"),))
    username, session = await api.user()
    reply = await api.get(f"/{username}/channels", auth=session)
    assert [(c["id"], c["name"]) for c in reply.body] == [("diary", "Diary")]
    # A usable channel like any other.
    reply = await api.post(f"/{username}/diary/events", {"description": "day one"}, auth=session)
    assert reply.status == 201


async def test_no_default_channels_when_disabled(make_api: AppFactory) -> None:
    api = await make_api(default_channels=())
    username, session = await api.user()
    assert (await api.get(f"/{username}/channels", auth=session)).body == []


def test_default_channels_come_from_the_environment() -> None:
    assert Settings.from_env({}).default_channels == (("diary", "Diary"),)
    assert Settings.from_env({"PRYVRT_DEFAULT_CHANNELS": ""}).default_channels == ()
    got = Settings.from_env({"PRYVRT_DEFAULT_CHANNELS": "diary:My diary, mood:Mood"})
    assert got.default_channels == (("diary", "My diary"), ("mood", "Mood"))
    for bad in ("diary", "bad id:Name", "a:A,a:B", "a:", "channels:Channels"):
        with pytest.raises(ConfigError):
            Settings.from_env({"PRYVRT_DEFAULT_CHANNELS": bad})
