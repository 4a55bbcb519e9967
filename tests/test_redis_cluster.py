"""Notifications through a real Redis Cluster (3 masters + 3 replicas of Debian's
redis-server 7 on loopback) with sharded pub/sub: ``pryvrt serve`` processes started with
``REDIS_URL`` naming one node and ``PRYVRT_REDIS_CLUSTER=1``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from pryvrt.notify.redis_bus import CONTROL_CHANNEL, user_channel
from tests.processes import Http, Worker, running, worker_env
from tests.redis_cluster import RedisClusterNodes, unavailable
from tests.sockets import Socket, connect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(masters=3, replicas=1)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def cluster_env(database_url: str, url: str, data_dir: Path) -> dict[str, str]:
    env = worker_env(database_url, url, data_dir)
    env["PRYVRT_REDIS_CLUSTER"] = "1"
    return env


@pytest.fixture(scope="module")
def workers(
    database_url: str, cluster: RedisClusterNodes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, ...]]:
    """Three separate servers sharing one PostgreSQL and the cluster."""
    logs = tmp_path_factory.mktemp("cluster")
    env = cluster_env(database_url, cluster.url, logs)
    with running(Worker(env, logs), Worker(env, logs), Worker(env, logs)) as started:
        yield started


def shard_subscribers(cluster: RedisClusterNodes, channel: str) -> int:
    """SUBSCRIBERS of a shard channel, asked of the master that owns it."""
    out = cluster.cli(cluster.owner(channel), "pubsub", "shardnumsub", channel).split()
    return int(out[1])


def shard_channels_of(cluster: RedisClusterNodes, pid: int) -> int:
    """How many shard channels the process ``pid`` holds over all masters (CLIENT LIST)."""
    total = 0
    for port in cluster.masters():
        for line in cluster.cli(port, "client", "list").splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if fields.get("name") == f"pryvrt-bus-{pid}":
                total += int(fields.get("ssub", "0"))
    return total


async def user_id(database_url: str, username: str) -> str:
    """The internal id that names the user's bus channel."""
    conn = await asyncpg.connect(database_url)
    try:
        return str(await conn.fetchval("SELECT user_id FROM users WHERE username = $1", username))
    finally:
        await conn.close()


async def users_on_every_master(
    http: Http, cluster: RedisClusterNodes, database_url: str
) -> list[tuple[str, str]]:
    """New users (with sessions) until every master owns at least one's channel."""
    users: list[tuple[str, str]] = []
    owners: set[int] = set()
    while len(owners) < 3 or len(users) < 4:
        username, session = await http.user()
        users.append((username, session))
        owners.add(cluster.owner(user_channel(await user_id(database_url, username))))
        assert len(users) < 40
    return users


async def collect(sock: Socket, count: int, within: float = 10.0) -> list[tuple[str, Any]]:
    """The next ``count`` notifications, then whatever else arrives within 0.3 s."""
    got = [await sock.next(within=within) for _ in range(count)]
    return got + await sock.drain(0.3)


async def test_every_entitled_socket_on_every_worker_gets_every_notification(
    workers: tuple[Worker, ...], cluster: RedisClusterNodes, database_url: str
) -> None:
    rounds = 3
    async with aiohttp.ClientSession() as session, contextlib.AsyncExitStack() as stack:
        http = Http(session, workers[0].url)
        users = await users_on_every_master(http, cluster, database_url)
        plan: list[tuple[str, str, str, str]] = []  # username, session, seen, hidden
        sockets: dict[tuple[str, int], tuple[Socket, Socket]] = {}  # (owner's, token's)
        for username, auth in users:
            seen = await http.channel(username, auth)
            hidden = await http.channel(username, auth)
            status, body = await http.call(
                "POST",
                f"/{username}/tokens",
                {"name": "one", "permissions": [{"channelId": seen, "level": "read"}]},
                auth,
            )
            assert status == 201, body
            plan.append((username, auth, seen, hidden))
            for index, worker in enumerate(workers):
                sockets[(username, index)] = (
                    await stack.enter_async_context(connect(worker.url, username, auth)),
                    await stack.enter_async_context(connect(worker.url, username, body["id"])),
                )
        # Writes through each worker in turn, to both channels of every user.
        for round_ in range(rounds):
            for n, (username, auth, seen, hidden) in enumerate(plan):
                writer = Http(session, workers[(round_ + n) % len(workers)].url)
                for channel in (seen, hidden):
                    status, _ = await writer.call("POST", f"/{username}/{channel}/events", {}, auth)
                    assert status == 201
        for username, _auth, seen, hidden in plan:
            for index in range(len(workers)):
                owners, tokens = sockets[(username, index)]
                heard = sorted(e[1]["channelId"] for e in await collect(owners, 2 * rounds))
                assert heard == sorted([seen, hidden] * rounds), (username, index)
                heard = [e[1]["channelId"] for e in await collect(tokens, rounds)]
                assert heard == [seen] * rounds, (username, index)  # never the hidden one
    print(
        f"\n{len(plan)} users over {len(cluster.masters())} masters, {len(sockets) * 2} sockets"
        f" on {len(workers)} servers: every notification reached every entitled socket"
    )


async def test_a_worker_subscribes_only_to_the_users_it_serves(
    workers: tuple[Worker, ...], cluster: RedisClusterNodes, database_url: str
) -> None:
    first, second, third = workers
    async with aiohttp.ClientSession() as session:
        http = Http(session, first.url)
        (alice, alice_auth), (bob, bob_auth), (carol, _) = [await http.user() for _ in range(3)]
        channel = {u: user_channel(await user_id(database_url, u)) for u in (alice, bob, carol)}
        before = {w.process.pid: shard_channels_of(cluster, w.process.pid) for w in workers}
        # every server holds the control channel for its whole life, and nothing else now
        assert set(before.values()) == {1}, before
        assert shard_subscribers(cluster, CONTROL_CHANNEL) == len(workers)
        async with (
            connect(first.url, alice, alice_auth),
            connect(first.url, alice, alice_auth),
            connect(second.url, bob, bob_auth),
        ):
            await asyncio.sleep(0.2)
            assert shard_subscribers(cluster, channel[alice]) == 1  # one SSUBSCRIBE: first
            assert shard_subscribers(cluster, channel[bob]) == 1
            assert shard_subscribers(cluster, channel[carol]) == 0
            assert shard_channels_of(cluster, first.process.pid) == 2
            assert shard_channels_of(cluster, second.process.pid) == 2
            assert shard_channels_of(cluster, third.process.pid) == 1
        deadline = time.monotonic() + 5
        while shard_subscribers(cluster, channel[alice]) != 0:  # the last socket left
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert shard_subscribers(cluster, channel[bob]) == 0
        assert shard_channels_of(cluster, first.process.pid) == 1


async def write_for(
    http: Http, path: str, auth: str, stop: asyncio.Event, acked: list[float], failed: list[Any]
) -> None:
    """Create events back to back until ``stop``: the ack times, and any failure."""
    while not stop.is_set():
        try:
            status, body = await http.call("POST", path, {}, auth)
        except (aiohttp.ClientError, TimeoutError) as exc:
            failed.append(repr(exc))
            continue
        if status == 201:
            acked.append(time.monotonic())
        else:
            failed.append((status, body))


async def test_a_killed_master_fails_over_notifications_resume_and_writes_never_fail(
    database_url: str, tmp_path: Path
) -> None:
    """Alice's channel lives on the master killed, Bob's on another: Bob's socket hears every
    write throughout; Alice's is told to refetch, then hears every write again."""
    nodes = RedisClusterNodes(masters=3, replicas=1)
    try:
        nodes.start()
        env = cluster_env(database_url, nodes.url, tmp_path)
        with running(Worker(env, tmp_path), Worker(env, tmp_path)) as (writer, listener):
            async with aiohttp.ClientSession() as session:
                http = Http(session, writer.url)
                alice, alice_auth = await http.user()
                master = nodes.owner(user_channel(await user_id(database_url, alice)))
                while True:
                    bob, bob_auth = await http.user()
                    if nodes.owner(user_channel(await user_id(database_url, bob))) != master:
                        break
                alice_path = f"/{alice}/{await http.channel(alice, alice_auth)}/events"
                bob_path = f"/{bob}/{await http.channel(bob, bob_auth)}/events"
                async with (
                    connect(listener.url, alice, alice_auth) as alice_sock,
                    connect(listener.url, bob, bob_auth) as bob_sock,
                ):
                    assert (await http.call("POST", alice_path, {}, alice_auth))[0] == 201
                    assert (await alice_sock.next(within=5))[0] == "eventsChanged"
                    stop = asyncio.Event()
                    alice_acked: list[float] = []
                    bob_acked: list[float] = []
                    failed: list[Any] = []
                    load = [
                        asyncio.create_task(write_for(http, path, auth, stop, acked, failed))
                        for path, auth, acked in (
                            (alice_path, alice_auth, alice_acked),
                            (alice_path, alice_auth, alice_acked),
                            (bob_path, bob_auth, bob_acked),
                        )
                    ]
                    try:
                        await asyncio.sleep(0.5)
                        nodes.kill(master)  # SIGKILL the master of Alice's channel
                        killed = time.monotonic()
                        heard: list[tuple[float, tuple[str, Any]]] = []
                        while time.monotonic() - killed < 30:
                            event = await alice_sock.next(within=30)
                            heard.append((time.monotonic(), event))
                            told_to_refetch = any(e[0] == "channelsChanged" for _, e in heard)
                            if told_to_refetch and event[0] == "eventsChanged":
                                break
                        resumed = heard[-1][0] - killed
                        await asyncio.sleep(1.0)
                    finally:
                        stop.set()
                        await asyncio.gather(*load)
                    # the replica took over the slots; no write failed meanwhile
                    assert master not in nodes.masters()
                    assert failed == []
                    during = sum(1 for t in alice_acked if killed <= t <= killed + resumed)
                    assert during > 0
                    # Bob's master never failed: every write reached his socket, no refetch
                    bob_heard = [await bob_sock.next(within=10) for _ in bob_acked]
                    assert bob_heard[0][0] == "eventsChanged"
                    assert all(e == bob_heard[0] for e in bob_heard)
                    assert await bob_sock.drain(0.5) == []
                    # Alice's messages were lost for at most the failover window: her socket
                    # was told to refetch, and every write after it is heard, one by one
                    assert any(e == ("channelsChanged", None) for _, e in heard)
                    assert resumed < 15
                    await alice_sock.drain(0.5)
                    for _ in range(5):
                        assert (await http.call("POST", alice_path, {}, alice_auth))[0] == 201
                        assert (await alice_sock.next(within=3))[0] == "eventsChanged"
                assert await event_count(database_url, alice) == len(alice_acked) + 6
                assert await event_count(database_url, bob) == len(bob_acked)
        print(
            f"\nmaster SIGKILLed under load: {len(alice_acked) + len(bob_acked)} writes answered"
            f" 201 and stored ({during} of Alice's during the failover); her notifications"
            f" resumed {resumed:.2f} s after the kill; Bob (other master) heard all"
            f" {len(bob_acked)}"
        )
    finally:
        nodes.stop()


async def event_count(database_url: str, username: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM events e JOIN users u USING (user_id) WHERE u.username = $1",
                username,
            )
        )
    finally:
        await conn.close()


async def test_a_channel_whose_slot_moves_to_another_master_follows_it(
    cluster: RedisClusterNodes,
) -> None:
    """Resharding: the master gives the slot away (CLUSTER SETSLOT), tells its subscribers
    (``sunsubscribe``); the bus subscribes where the slot now lives and resyncs the user, and
    the publisher, answered MOVED, sends again there: nothing published is lost."""
    from pryvrt.notify.cluster_bus import ClusterBus
    from pryvrt.notify.messages import RESYNC, Change

    heard: asyncio.Queue[tuple[str, list[Change]]] = asyncio.Queue()

    async def listener(user_id: str, changes: Any) -> None:
        heard.put_nowait((user_id, list(changes)))

    publisher, subscriber = ClusterBus(cluster.url), ClusterBus(cluster.url)
    for bus in (publisher, subscriber):
        bus.set_listener(listener)
        await bus.start()
    try:
        await subscriber.subscribe("mover")
        channel = user_channel("mover")
        source = cluster.owner(channel)
        assert channel in subscriber.subscribed_channels()[f"127.0.0.1:{source}"]
        await publisher.publish("mover", [Change("eventsChanged", "before")])
        assert await asyncio.wait_for(heard.get(), 5) == (
            "mover",
            [Change("eventsChanged", "before")],
        )
        slot = cluster.cli(source, "cluster", "keyslot", channel).strip()
        target = next(port for port in cluster.masters() if port != source)
        ids = {port: cluster.cli(port, "cluster", "myid").strip() for port in (source, target)}
        for port, args in (
            (target, ("importing", ids[source])),
            (source, ("migrating", ids[target])),
            (target, ("node", ids[target])),
            (source, ("node", ids[target])),
        ):
            assert cluster.cli(port, "cluster", "setslot", slot, *args).strip() == "OK"
        await publisher.publish("mover", [Change("eventsChanged", "after")])
        got = [await asyncio.wait_for(heard.get(), 10) for _ in range(2)]
        assert ("mover", [Change(RESYNC)]) in got  # its sockets refetch: it may have missed some
        assert ("mover", [Change("eventsChanged", "after")]) in got  # and nothing was lost
        assert channel in subscriber.subscribed_channels()[f"127.0.0.1:{target}"]
        assert shard_subscribers(cluster, channel) == 1
    finally:
        for bus in (publisher, subscriber):
            await bus.close()
