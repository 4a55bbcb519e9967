"""After a Redis outage the bus resyncs: every socket's credential is checked again, its
permissions included (a token narrowed while Redis was down lost that news)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.conftest import AppFactory, RedisServer
from tests.processes import own_redis
from tests.sockets import connect

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test alone: it is stopped and started again."""
    with own_redis() as server:
        yield server


async def test_a_token_narrowed_during_a_redis_outage_loses_its_old_notifications_after(
    make_api: AppFactory, redis_server: RedisServer
) -> None:
    api = await make_api(redis_url=redis_server.url)
    base = str(api.client.make_url("/"))
    username, session = await api.user()
    kept = await api.channel(username, session)
    dropped = await api.channel(username, session)
    token = await api.shared_token(
        username,
        session,
        [{"channelId": kept, "level": "read"}, {"channelId": dropped, "level": "read"}],
    )
    async with (
        connect(base, username, token) as narrowed,
        connect(base, username, session) as bystander,
    ):
        assert (await api.post(f"/{username}/{dropped}/events", {}, auth=session)).status == 201
        assert await narrowed.next() == ("eventsChanged", {"channelId": dropped})
        await bystander.drain(0.2)
        redis_server.stop()
        try:
            reply = await api.put(
                f"/{username}/tokens/{token}",
                {"permissions": [{"channelId": kept, "level": "read"}]},
                auth=session,
            )
            assert reply.status == 200, reply
            # Its revocation could not travel: the socket still holds the old permissions.
            await asyncio.sleep(0.5)
            assert not narrowed.disconnected.is_set()
        finally:
            redis_server.start()
        started = time.monotonic()
        # The bus reconnects and resyncs: the narrowed token's socket is dropped, as after
        # a token update (its client reconnects with the new permissions).
        await narrowed.wait_disconnected(within=10)
        resynced = time.monotonic() - started
        assert not bystander.disconnected.is_set()
        assert ("channelsChanged", None) in await bystander.drain(0.5)  # told to refetch
        assert (await api.post(f"/{username}/{dropped}/events", {}, auth=session)).status == 201
        assert await bystander.next(within=3) == ("eventsChanged", {"channelId": dropped})
    assert [e for e in await narrowed.drain(0) if e[0] == "eventsChanged"] == []
    # The token now reads only what it was narrowed to.
    async with connect(base, username, token) as again:
        assert (await api.post(f"/{username}/{dropped}/events", {}, auth=session)).status == 201
        assert (await api.post(f"/{username}/{kept}/events", {}, auth=session)).status == 201
        assert await again.next(within=3) == ("eventsChanged", {"channelId": kept})
        assert await again.drain(0.3) == []
    print(f"\nresync after Redis came back: narrowed socket dropped in {resynced:.2f} s")


async def test_a_socket_whose_token_is_unchanged_stays_connected_through_a_redis_outage(
    make_api: AppFactory, redis_server: RedisServer
) -> None:
    api = await make_api(redis_url=redis_server.url)
    base = str(api.client.make_url("/"))
    username, session = await api.user()
    channel = await api.channel(username, session)
    token = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    async with connect(base, username, token) as sock:
        redis_server.stop()
        await asyncio.sleep(0.5)
        redis_server.start()
        # Told to refetch once the bus is back, and still connected.
        assert await sock.next(within=10) == ("channelsChanged", None)
        assert not sock.disconnected.is_set()
        await sock.drain(0.3)
        assert (await api.post(f"/{username}/{channel}/events", {}, auth=session)).status == 201
        assert await sock.next(within=3) == ("eventsChanged", {"channelId": channel})
