"""The per-worker credential and channel cache (pryvrt.auth.cache): writes through the API
take effect at once; only changes made behind the server's back wait for the lifetime."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pryvrt.app import SERVICES_KEY
from pryvrt.auth.cache import AccessCache
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


# Concurrent misses of one key share one load (pryvrt.auth.cache._load). These drive the
# cache directly: each load is a coroutine the test holds open until it chooses.


class Loads:
    """Loads that each wait for ``release`` and answer ``value`` (counted)."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.started = 0
        self.release = asyncio.Event()

    async def __call__(self) -> object:
        self.started += 1
        await self.release.wait()
        return self.value


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_misses_of_one_key_share_one_load() -> None:
    cache = AccessCache(60)
    load = Loads("the channel")
    calls = [asyncio.create_task(cache.load_channel("u", "c", load)) for _ in range(32)]
    await settle()
    load.release.set()
    assert await asyncio.gather(*calls) == ["the channel"] * 32
    assert load.started == 1
    assert (cache.loads, cache.shared_loads) == (1, 31)
    assert cache.channel("u", "c") == "the channel"


async def test_other_keys_do_not_share_a_load() -> None:
    cache = AccessCache(60)
    load = Loads("x")
    calls = [
        asyncio.create_task(cache.load_channel("u", "c1", load)),
        asyncio.create_task(cache.load_channel("u", "c2", load)),
        asyncio.create_task(cache.load_channel("v", "c1", load)),
        asyncio.create_task(cache.load_credential("u", "c1", load)),  # type: ignore[arg-type]
    ]
    await settle()
    load.release.set()
    await asyncio.gather(*calls)
    assert load.started == 4


async def test_a_call_after_an_invalidation_does_not_join_a_load_that_started_before_it() -> None:
    cache = AccessCache(60)
    before, after = Loads("as before the write"), Loads("as after the write")
    first = asyncio.create_task(cache.load_channel("u", "c", before))
    await settle()
    cache.invalidate("u")  # a write committed while the first load was reading
    second = asyncio.create_task(cache.load_channel("u", "c", after))
    await settle()
    assert after.started == 1  # its own read, not the first one's
    after.release.set()
    assert await second == "as after the write"
    before.release.set()
    assert await first == "as before the write"
    # The load that started before the invalidation did not overwrite what came after it.
    assert cache.channel("u", "c") == "as after the write"


async def test_a_load_that_raced_an_invalidation_stores_nothing() -> None:
    cache = AccessCache(60)
    load = Loads("stale")
    waiters = [asyncio.create_task(cache.load_channel("u", "c", load)) for _ in range(3)]
    await settle()
    cache.invalidate(None)
    load.release.set()
    # Those already waiting get what the load read (they asked before the write's answer).
    assert await asyncio.gather(*waiters) == ["stale"] * 3
    assert cache.channel("u", "c") is None


async def test_waiters_of_a_load_that_found_nothing_load_for_themselves() -> None:
    """A wrong credential: each caller checks it itself (each counted by the throttle)."""
    cache = AccessCache(60)
    load = Loads(None)
    calls = [asyncio.create_task(cache.load_credential("u", "bad", load)) for _ in range(4)]
    await settle()
    load.release.set()
    assert await asyncio.gather(*calls) == [None] * 4
    assert load.started == 4


async def test_waiters_of_a_failed_load_load_for_themselves() -> None:
    cache = AccessCache(60)
    attempts = 0
    release = asyncio.Event()

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await release.wait()
        await asyncio.sleep(0)  # a database read always yields
        if attempts == 1:
            raise ConnectionError("the database went away")
        return "read"

    first = asyncio.create_task(cache.load_channel("u", "c", flaky))  # type: ignore[arg-type]
    await settle()
    others = [asyncio.create_task(cache.load_channel("u", "c", flaky)) for _ in range(3)]  # type: ignore[arg-type]
    await settle()
    release.set()
    with pytest.raises(ConnectionError):
        await first
    assert await asyncio.gather(*others) == ["read"] * 3
    assert attempts == 2  # the first waiter to retry loads; the others share its read


async def a_load_and_a_waiter(
    cache: AccessCache, load: Loads
) -> tuple[asyncio.Task[Any], asyncio.Task[Any]]:
    """A call loading channel ("u", "c") and a second call waiting for its load."""
    first = asyncio.create_task(cache.load_channel("u", "c", load))
    await settle()
    waiter = asyncio.create_task(cache.load_channel("u", "c", load))
    await settle()
    return first, waiter


async def test_a_cancelled_waiter_leaves_the_shared_load_running() -> None:
    cache = AccessCache(60)
    load = Loads("value")
    first, waiter = await a_load_and_a_waiter(cache, load)
    waiter.cancel()
    await settle()
    load.release.set()
    assert await first == "value"
    assert waiter.cancelled()
    assert cache.channel("u", "c") == "value"


async def test_with_the_cache_off_loads_are_not_shared() -> None:
    cache = AccessCache(0)
    load = Loads("x")
    calls = [asyncio.create_task(cache.load_channel("u", "c", load)) for _ in range(3)]
    await settle()
    load.release.set()
    await asyncio.gather(*calls)
    assert load.started == 3


async def test_when_the_loading_call_is_cancelled_a_waiter_loads_in_its_place() -> None:
    cache = AccessCache(60)
    load = Loads("value")
    first, waiter = await a_load_and_a_waiter(cache, load)
    first.cancel()  # e.g. its client went away
    await settle()
    assert load.started == 2
    load.release.set()
    assert await waiter == "value"
    assert first.cancelled()
    assert cache.channel("u", "c") == "value"


async def test_concurrent_slides_of_one_session_write_once() -> None:
    """Every call in flight when a session's expiry is due to slide: one write."""
    from pryvrt.auth.permissions import Access

    cache = AccessCache(60)
    writes = 0
    release = asyncio.Event()

    async def touch() -> None:
        nonlocal writes
        writes += 1
        await release.wait()

    access = Access("session", "s", "session", expires=123.0)
    calls = [asyncio.create_task(cache.write_credential("u", "s", access, touch)) for _ in range(8)]
    await settle()
    release.set()
    await asyncio.gather(*calls)
    assert writes == 1
    assert cache.credential("u", "s") == access
    # The next slide, once this one is done, writes again.
    await cache.write_credential("u", "s", access, touch)
    assert writes == 2
