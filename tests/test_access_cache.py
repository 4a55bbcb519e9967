"""The per-worker credential and channel cache (pryvrt.auth.cache): writes through the API
take effect at once; only changes made behind the server's back wait for the lifetime."""

from __future__ import annotations

import asyncio
from typing import Any

from pryvrt.app import SERVICES_KEY
from tests.conftest import Api


async def warm(api: Api, path: str, auth: str) -> None:
    for _ in range(2):
        reply = await api.get(path, auth=auth)
        assert reply.status == 200, reply.body


async def test_a_deleted_token_is_refused_on_the_next_call(make_api: Any) -> None:
    api = await make_api(cache_seconds=60)
    username, session = await api.user()
    token = await api.personal_token(username, session)
    await warm(api, f"/{username}/channels", token)
    assert (await api.delete(f"/{username}/tokens/{token}", auth=session)).status == 200
    reply = await api.get(f"/{username}/channels", auth=token)
    assert reply.status == 401
    assert reply.body["id"] == "INVALID_TOKEN"


async def test_a_logged_out_session_is_refused_on_the_next_call(make_api: Any) -> None:
    api = await make_api(cache_seconds=60)
    username, session = await api.user()
    await warm(api, f"/{username}/channels", session)
    assert (await api.post(f"/{username}/logout", {}, auth=session)).status == 200
    assert (await api.get(f"/{username}/channels", auth=session)).status == 401


async def test_narrowed_token_permissions_apply_on_the_next_call(make_api: Any) -> None:
    api = await make_api(cache_seconds=60)
    username, session = await api.user()
    first = await api.channel(username, session)
    second = await api.channel(username, session)
    token = await api.shared_token(username, session, [{"channelId": first, "level": "read"}])
    await warm(api, f"/{username}/{first}/events", token)
    reply = await api.put(
        f"/{username}/tokens/{token}",
        {"permissions": [{"channelId": second, "level": "read"}]},
        auth=session,
    )
    assert reply.status == 200, reply.body
    reply = await api.get(f"/{username}/{first}/events", auth=token)
    assert reply.status == 403
    assert (await api.get(f"/{username}/{second}/events", auth=token)).status == 200


async def test_a_deleted_channel_is_unknown_on_the_next_call(make_api: Any) -> None:
    api = await make_api(cache_seconds=60)
    username, session = await api.user()
    channel = await api.channel(username, session)
    await warm(api, f"/{username}/{channel}/events", session)
    for _ in range(2):  # trash, then delete for good
        assert (await api.delete(f"/{username}/channels/{channel}", auth=session)).status == 200
    reply = await api.get(f"/{username}/{channel}/events", auth=session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_CHANNEL"


async def test_a_later_call_of_the_same_batch_sees_an_earlier_calls_channel_change(
    make_api: Any,
) -> None:
    api = await make_api(cache_seconds=60)
    username, session = await api.user()
    channel = await api.channel(username, session)
    await warm(api, f"/{username}/{channel}/events", session)
    calls = [
        {"method": "channels.delete", "params": {"channelId": channel}},
        {"method": "channels.delete", "params": {"channelId": channel}},
        {"method": "events.get", "params": {"channelId": channel}},
    ]
    reply = await api.post(f"/{username}/", calls, auth=session)
    assert reply.status == 200, reply.body
    assert reply.body[2]["error"]["id"] == "UNKNOWN_CHANNEL"


async def delete_a_warm_token_behind_the_servers_back(
    make_api: Any, cache_seconds: float
) -> tuple[Api, str, str]:
    """A token the server has just checked (cached, unless the cache is off), then deleted
    in SQL, as if its revocation had been lost: (api, username, token)."""
    api = await make_api(cache_seconds=cache_seconds)
    username, session = await api.user()
    token = await api.personal_token(username, session)
    await warm(api, f"/{username}/channels", token)
    storage = api.client.app[SERVICES_KEY].storage
    await storage.pool.execute("DELETE FROM tokens WHERE id = $1", token)
    return api, username, token


async def test_a_token_deleted_behind_the_servers_back_works_at_most_the_cache_lifetime(
    make_api: Any,
) -> None:
    api, username, token = await delete_a_warm_token_behind_the_servers_back(make_api, 0.3)
    await asyncio.sleep(0.35)
    assert (await api.get(f"/{username}/channels", auth=token)).status == 401


async def test_with_the_cache_off_every_call_reads_the_database(make_api: Any) -> None:
    api, username, token = await delete_a_warm_token_behind_the_servers_back(make_api, 0)
    assert (await api.get(f"/{username}/channels", auth=token)).status == 401
