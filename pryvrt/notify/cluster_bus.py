"""ClusterBus: the Redis bus on a Redis Cluster, with sharded pub/sub (Redis >= 7).

Same wire format, channels and guarantees as ``RedisBus`` (see ``pryvrt.notify.redis_bus``),
but every channel is a *shard channel*: ``SPUBLISH`` goes to the master owning the channel's
hash slot and travels no further (a plain ``PUBLISH`` on a cluster is copied to every node
over the cluster bus), and ``SSUBSCRIBE`` is sent to that same master. User ids spread the
per-user channels over the slots, hence over the shards; the control channel (cache
invalidations, one small message per credential or channel change) lives on one shard.

How it uses redis-py (>= 8.0, the release whose asyncio client handles ``smessage``):

- ``RedisCluster`` holds the slot map (which master owns a channel), refreshed after a
  failover or a resharding.
- Publishing sends one pipeline of ``SPUBLISH`` per master, concurrently, over a plain
  client of that master (see "publishing" below for why not a ``RedisCluster`` pipeline).
- Subscriptions go through one plain ``PubSub`` connection per master, each read by its own
  task. redis-py's ``ClusterPubSub`` was not used: ``get_sharded_message`` polls the nodes
  one after another with the timeout applied to each (a message on one shard waits while
  another shard's read blocks), and it re-subscribes by itself after a failover, so a bus
  built on it could not tell its listener that messages were lost.

When a master's connection fails (killed, failed over, unreachable) or the server moves a
channel's slot away (it then sends ``sunsubscribe``), the channels held there are lost; a
reconciler task refreshes the slot map and subscribes them again where they now live,
retrying with backoff while the failover lasts, then sends ``RESYNC`` to the listener for
each of these users (their sockets recheck credentials and refetch) and, for the control
channel, invalidates every cache. Notifications for a failed master are retried for
``retry_for`` seconds (then dropped and counted in the log); the other masters' traffic
goes on meanwhile. Writes never wait for any of it: publishing only queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException

from pryvrt.notify.messages import RESYNC, Change
from pryvrt.notify.redis_bus import CONTROL_CHANNEL, PREFIX, REDIS_ERRORS, RedisBus, user_channel

log = logging.getLogger(__name__)

CLUSTER_ERRORS = (*REDIS_ERRORS, RedisClusterException)


class _Shard:
    """One master's pub/sub connection and the channels this worker subscribed there."""

    def __init__(self, name: str, client: redis.Redis) -> None:
        self.name = name
        self.client = client
        self.pubsub: Any = client.pubsub()  # subscribe messages kept: see _read_shard
        self.channels: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        task = self.task
        if task is not None and task is not asyncio.current_task():
            # Cancelled again until it ends: a cancellation that lands as redis-py's read
            # timeout expires can be lost on Python 3.11 (see RedisBus.close).
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            if not task.cancelled():
                task.exception()  # retrieved
        with contextlib.suppress(*CLUSTER_ERRORS):
            await self.pubsub.aclose()
        with contextlib.suppress(*CLUSTER_ERRORS):
            await self.client.aclose()


class ClusterBus(RedisBus):
    """The bus across workers on a Redis Cluster (see the module docstring)."""

    PUBLISH = "spublish"

    def __init__(self, url: str, *, retry_for: float = 10.0, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        # How long a notification whose master failed is retried (a failover takes about
        # cluster-node-timeout plus an election); then it is dropped.
        self._retry_for = retry_for
        self._retry: list[tuple[str, bytes, float]] = []  # (channel, payload, give up at)
        self._publishers: dict[str, redis.Redis] = {}  # node name -> publishing client
        self._topology_stale = False
        self._topology_lock = asyncio.Lock()
        self._shards: dict[str, _Shard] = {}  # node name ("host:port") -> its connection
        self._home: dict[str, _Shard] = {}  # subscribed channel -> where
        self._dirty = asyncio.Event()  # some wanted channel is not subscribed anywhere
        # Set after the first reconciliation that found nothing wrong: channels placed by
        # the very first one (at start) missed nothing, later ones may have.
        self._settled = False

    async def start(self) -> None:
        self._client = RedisCluster.from_url(
            self._url,
            retry=Retry(NoBackoff(), 1),
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
        )
        self._dirty.set()
        self._tasks = [
            asyncio.create_task(self._reconcile_forever(), name="redis-cluster-bus-reconciler"),
            asyncio.create_task(self._publish_forever(), name="redis-bus-publisher"),
        ]

    async def close(self) -> None:
        shards = list(self._shards.values())
        self._shards.clear()
        self._home.clear()
        await super().close()
        for shard in shards:
            await shard.close()
        for client in self._publishers.values():
            with contextlib.suppress(*CLUSTER_ERRORS):
                await client.aclose()
        self._publishers.clear()
        if self._retry:
            self._drop(len(self._retry))
            self._retry = []

    async def _refresh_topology(self) -> None:
        """Read the slot map again (a failover or a resharding changed it)."""
        assert self._client is not None
        async with self._topology_lock, asyncio.timeout(self._timeout * 2):
            await self._client.nodes_manager.initialize()

    def _node_client(self, node: ClusterNode, **extra: Any) -> redis.Redis:
        """A plain client of one node, with the credentials and TLS of REDIS_URL."""
        options: dict[str, Any] = dict(parse_url(self._url))
        options.update(
            host=node.host,
            port=node.port,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            # None: redis-py would reconnect (and re-subscribe) silently; the bus decides.
            retry=Retry(NoBackoff(), 0),
            client_name=f"pryvrt-bus-{os.getpid()}",
            **extra,
        )
        return redis.Redis(connection_pool=redis.ConnectionPool(**options))

    # -- publishing -------------------------------------------------------------------------
    #
    # One pipeline per master, concurrently: a master that fails holds up and loses nothing
    # of the others (one RedisCluster pipeline fails whole when one of its nodes fails, and
    # its subscribers elsewhere, whose connections are fine, would never learn of the loss).
    # What a failed master did not take is retried, in order, after reading the slot map
    # again, for ``retry_for`` seconds: a failover's notifications arrive late, not never.
    # A retried pipeline may have been half taken: a few notifications may come twice (they
    # are hints to refetch, so a duplicate costs one read).

    async def _publish_forever(self) -> None:
        pause = 0.0
        while True:
            batch: list[tuple[str, bytes]] = []
            if self._retry:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        batch.append(await self._queue.get())
            else:
                batch.append(await self._queue.get())
            while not self._queue.empty() and len(batch) < 512:
                batch.append(self._queue.get_nowait())
            try:
                failed = await self._send_cluster(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
            pause = min(max(pause * 2, 0.05), self._max_backoff) if failed else 0.0

    async def _send_cluster(self, batch: list[tuple[str, bytes]]) -> bool:
        """Publish the retried then the new notifications; whether some master failed."""
        now = time.monotonic()
        items = self._retry + [(channel, data, now + self._retry_for) for channel, data in batch]
        self._retry = []
        groups: dict[str, tuple[ClusterNode, list[tuple[str, bytes, float]]]] = {}
        failed: list[tuple[str, bytes, float]] = []
        error: BaseException | None = None
        try:
            assert self._client is not None
            if self._topology_stale:
                await self._refresh_topology()
                self._topology_stale = False
            else:
                async with asyncio.timeout(self._timeout * 2):
                    await self._client.initialize()  # a no-op once the slot map is known
            for item in items:
                node = self._client.get_node_from_key(item[0])
                groups.setdefault(node.name, (node, []))[1].append(item)
        except CLUSTER_ERRORS as exc:
            failed, error = items, exc
        else:
            results = await asyncio.gather(
                *(self._publish_to(node, its) for node, its in groups.values()),
                return_exceptions=True,
            )
            for (_node, its), result in zip(groups.values(), results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, CLUSTER_ERRORS):
                        raise result
                    failed.extend(its)
                    error = result
        if not failed:
            if self._dropped:
                log.warning("redis publish works again (%d notifications lost)", self._dropped)
                self._dropped = 0
            return False
        self._topology_stale = True
        self._retry = [item for item in failed if item[2] > now][-self._queue.maxsize :]
        given_up = len(failed) - len(self._retry)
        if given_up:
            if self._dropped == 0:
                log.warning("redis publish failed, dropping notifications: %r", error)
            self._drop(given_up)
        return True

    async def _publish_to(self, node: ClusterNode, items: list[tuple[str, bytes, float]]) -> None:
        client = self._publishers.get(node.name)
        if client is None:
            client = self._publishers[node.name] = self._node_client(node)
        try:
            async with asyncio.timeout(self._timeout), client.pipeline(transaction=False) as pipe:
                for channel, payload, _ in items:
                    pipe.spublish(channel, payload)
                await pipe.execute()
        except BaseException:
            # A fresh connection next time (this one may be half-used or dead).
            self._publishers.pop(node.name, None)
            with contextlib.suppress(*CLUSTER_ERRORS):
                await client.aclose()
            raise

    def invalidations_live(self) -> bool:
        return CONTROL_CHANNEL in self._home

    def subscribed_channels(self) -> dict[str, set[str]]:
        """Node name -> the channels this worker holds there (for tests and diagnostics)."""
        return {name: set(shard.channels) for name, shard in self._shards.items()}

    # -- subscriptions ----------------------------------------------------------------------

    def _wanted(self) -> set[str]:
        return {CONTROL_CHANNEL, *map(user_channel, self._subscriptions)}

    async def _send_subscription(self, command: str, user_id: str) -> None:
        channel = user_channel(user_id)
        async with self._lock:
            if (user_id in self._subscriptions) != (command == "subscribe"):
                return  # the count changed while we waited for the lock
            if command == "subscribe":
                if channel in self._home or self._client is None:
                    return
                try:
                    await self._place(channel)
                except CLUSTER_ERRORS as exc:
                    # The reconciler subscribes it later, then resyncs the user's sockets.
                    log.warning("redis cluster ssubscribe failed: %r", exc)
                    self._dirty.set()
                return
            shard = self._home.pop(channel, None)
            if shard is None:
                return
            shard.channels.discard(channel)
            try:
                async with asyncio.timeout(self._timeout):
                    await shard.pubsub.sunsubscribe(channel)
            except CLUSTER_ERRORS as exc:
                log.warning("redis cluster sunsubscribe failed: %r", exc)  # its reader notices

    async def _place(self, channel: str) -> None:
        """SSUBSCRIBE on the master that owns the channel's slot (under ``_lock``)."""
        assert self._client is not None
        async with asyncio.timeout(self._timeout * 2):
            await self._client.initialize()  # a no-op once the slot map is known
            node = self._client.get_node_from_key(channel)
            shard = self._shards.get(node.name)
            if shard is None:
                shard = self._open_shard(node)
            try:
                await shard.pubsub.ssubscribe(channel)
            except BaseException:
                if not shard.channels:  # nothing else there: a dead node, or never reached
                    self._shards.pop(shard.name, None)
                    await shard.close()
                raise
        shard.channels.add(channel)
        self._home[channel] = shard

    def _open_shard(self, node: ClusterNode) -> _Shard:
        shard = _Shard(node.name, self._node_client(node))
        self._shards[node.name] = shard
        shard.task = asyncio.create_task(self._read_shard(shard), name=f"redis-shard-{node.name}")
        return shard

    async def _lose(self, shard: _Shard, channels: set[str] | None = None) -> None:
        """Forget ``channels`` of the shard (all of them, and the shard, when None)."""
        async with self._lock:
            lost = set(shard.channels) if channels is None else channels & shard.channels
            for channel in lost:
                shard.channels.discard(channel)
                if self._home.get(channel) is shard:
                    del self._home[channel]
            if channels is None and self._shards.get(shard.name) is shard:
                del self._shards[shard.name]
        if channels is None:
            await shard.close()
        self._dirty.set()

    # -- reading ----------------------------------------------------------------------------

    async def _read_shard(self, shard: _Shard) -> None:
        """Dispatch one master's messages until its connection fails; PING when idle."""
        waiting_pong_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            # Nothing to read before the first SSUBSCRIBE opened the connection.
            while shard.pubsub.connection is None:  # noqa: ASYNC110 - set by ssubscribe
                await asyncio.sleep(0.01)
            while True:
                message = await shard.pubsub.get_message(timeout=self._ping_interval)
                now = loop.time()
                kind = None if message is None else message["type"]
                if kind == "smessage":
                    waiting_pong_since = None
                    await self._dispatch(message["channel"], message["data"])
                elif kind == "sunsubscribe":
                    # Ours (the channel left _home first) or the server's: the slot moved.
                    channel = message["channel"].decode()
                    if self._home.get(channel) is shard:
                        log.warning("redis cluster moved %s away from %s", channel, shard.name)
                        await self._lose(shard, {channel})
                elif kind == "pong":
                    waiting_pong_since = None
                elif kind is None:
                    if waiting_pong_since is None:
                        waiting_pong_since = now
                        await shard.pubsub.ping()
                    elif now - waiting_pong_since > self._ping_interval + self._timeout:
                        raise TimeoutError("redis did not answer PING")
        except CLUSTER_ERRORS as exc:
            log.warning("redis cluster node %s lost: %r", shard.name, exc)
            await self._lose(shard)

    async def _reconcile_forever(self) -> None:
        """Subscribe every wanted channel not subscribed anywhere; resync what was lost."""
        backoff = 0.0
        failing = False
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            placed, error = await self._place_missing()
            if self._settled or failing or error is not None:
                await self._after_placing(placed)
            if error is None:
                self._settled = True
                if failing:
                    log.warning("redis cluster subscriptions restored")
                failing = False
                backoff = 0.0
                continue
            if not failing:
                log.warning("redis cluster unavailable, retrying: %r", error)
            failing = True
            self._dirty.set()
            backoff = min(max(backoff * 2, 0.1), self._max_backoff)
            await asyncio.sleep(backoff)

    async def _place_missing(self) -> tuple[list[str], BaseException | None]:
        placed: list[str] = []
        async with self._lock:
            missing = self._wanted() - self._home.keys()
            if not missing:
                return placed, None
            try:
                await self._refresh_topology()
                for channel in sorted(missing, key=lambda c: c != CONTROL_CHANNEL):
                    await self._place(channel)
                    placed.append(channel)
            except CLUSTER_ERRORS as exc:
                return placed, exc
        return placed, None

    async def _after_placing(self, placed: list[str]) -> None:
        """Channels subscribed by the reconciler may have missed messages meanwhile."""
        for channel in placed:
            if channel == CONTROL_CHANNEL:
                if self._invalidate is not None:
                    self._invalidate(None)
                continue
            user_id = channel[len(PREFIX) :]
            if self._listener is not None and user_id in self._subscriptions:
                try:
                    await self._listener(user_id, [Change(RESYNC)])
                except Exception:
                    log.exception("notification listener failed")
