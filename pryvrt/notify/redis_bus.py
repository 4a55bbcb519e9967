"""RedisBus: changes cross workers through Redis pub/sub, one Redis channel per user.

Wire format: channel ``pryvrt:u:{user_id}``, message = JSON ``[[kind, subject], ...]`` (one
message per committed write, see ``Change.to_wire``).

- A worker subscribes to a user's channel only while it holds one of their sockets
  (reference counted), so it never decodes other users' traffic.
- Every change goes through Redis exactly once, the writing worker included (no direct
  local delivery), so a socket never gets a change twice.
- ``publish`` only queues: a single publisher task sends the queue in order (pipelining
  what piled up), so an HTTP write never waits for Redis. While Redis is unreachable,
  messages are dropped and logged; delivery is at most once.
- The reader task reconnects with backoff, re-subscribes every current user, then tells
  the listener (``RESYNC`` per user) that messages may have been lost meanwhile.
- Cache invalidations (a user's credentials or channels changed) go to every worker on
  the control channel, message = the user id. While the pub/sub connection is down
  ``invalidations_live()`` is false, and on reconnection every cache is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from pryvrt.notify.bus import InvalidationHandler, Listener, invalidates
from pryvrt.notify.messages import RESYNC, Change

log = logging.getLogger(__name__)

PREFIX = "pryvrt:u:"
# Every worker's reader subscribes to it for its whole life (so its connection exists, and
# is watched, even while the worker holds no socket); it carries cache invalidations.
CONTROL_CHANNEL = "pryvrt:control"
CONTROL_CHANNEL_BYTES = CONTROL_CHANNEL.encode()
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def user_channel(user_id: str) -> str:
    return PREFIX + user_id


class RedisBus:
    """The bus across workers (see the module docstring for its guarantees)."""

    # The publishing command (``ClusterBus`` uses sharded pub/sub's SPUBLISH).
    PUBLISH = "publish"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 1.0,
        ping_interval: float = 5.0,
        max_backoff: float = 2.0,
        queue_size: int = 10_000,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self._client: Any = None  # publishing: redis.Redis (RedisCluster for ClusterBus)
        self._sub_client: redis.Redis | None = None  # the pub/sub connection
        self._listener: Listener | None = None
        self._invalidate: InvalidationHandler | None = None
        self._subscriptions: dict[str, int] = {}
        self._pubsub: Any = None  # redis.asyncio.client.PubSub while connected
        self._lock = asyncio.Lock()  # orders SUBSCRIBE/UNSUBSCRIBE with re-subscription
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._publish_down_until = 0.0
        self._publish_backoff = 0.0
        self._dropped = 0

    async def start(self) -> None:
        options: dict[str, Any] = {
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
        }
        # One immediate retry on a fresh connection (a pooled one may predate a Redis restart).
        self._client = redis.Redis.from_url(self._url, retry=Retry(NoBackoff(), 1), **options)
        # None for pub/sub: redis-py would reconnect and re-subscribe silently; the reader
        # must know, to re-subscribe the current users and resync their sockets.
        self._sub_client = redis.Redis.from_url(self._url, retry=Retry(NoBackoff(), 0), **options)
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="redis-bus-reader"),
            asyncio.create_task(self._publish_forever(), name="redis-bus-publisher"),
        ]

    async def close(self) -> None:
        """Send what is queued (briefly), stop both tasks, close the connections."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout):
                await self._queue.join()
        pending = set(self._tasks)
        while pending:
            # Cancelled again until they end: on Python 3.11, a cancellation that lands as
            # redis-py's read timeout expires is turned into that timeout and lost (seen
            # when a worker stopped right after starting: its shutdown hung forever).
            for task in pending:
                task.cancel()
            done, pending = await asyncio.wait(pending, timeout=0.1)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved, as gather(return_exceptions=True) did
        self._tasks = []
        await self._close_pubsub()
        for client in (self._client, self._sub_client):
            if client is not None:
                await client.aclose()
        self._client = self._sub_client = None
        self._subscriptions.clear()

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    def set_invalidation_handler(self, handler: InvalidationHandler) -> None:
        self._invalidate = handler

    def invalidations_live(self) -> bool:
        return self._pubsub is not None

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, user_id: str, changes: Sequence[Change]) -> None:
        if not changes:
            return
        payload = orjson.dumps([change.to_wire() for change in changes])
        self._enqueue(user_channel(user_id), payload)
        if invalidates(changes):
            self._enqueue(CONTROL_CHANNEL, user_id.encode())

    def _enqueue(self, channel: str, payload: bytes) -> None:
        try:
            self._queue.put_nowait((channel, payload))
        except asyncio.QueueFull:
            self._drop(1)

    async def _publish_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 512:
                batch.append(self._queue.get_nowait())
            try:
                await self._send(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        """One PUBLISH, or a pipeline of them; on failure drop the batch and back off."""
        assert self._client is not None
        if time.monotonic() < self._publish_down_until:
            self._drop(len(batch))
            return
        try:
            async with asyncio.timeout(self._timeout):
                if len(batch) == 1:
                    await getattr(self._client, self.PUBLISH)(*batch[0])
                else:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for channel, payload in batch:
                            getattr(pipe, self.PUBLISH)(channel, payload)
                        await pipe.execute()
        except REDIS_ERRORS as exc:
            self._publish_backoff = min(max(self._publish_backoff * 2, 0.1), self._max_backoff)
            self._publish_down_until = time.monotonic() + self._publish_backoff
            if self._dropped == 0:
                log.warning("redis publish failed, dropping notifications: %r", exc)
            self._drop(len(batch))
        else:
            if self._dropped:
                log.warning("redis publish works again (%d notifications lost)", self._dropped)
                self._dropped = 0
            self._publish_backoff = 0.0

    def _drop(self, count: int) -> None:
        self._dropped += count

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe(self, user_id: str) -> None:
        count = self._subscriptions.get(user_id, 0)
        self._subscriptions[user_id] = count + 1
        if count == 0:
            await self._send_subscription("subscribe", user_id)

    async def unsubscribe(self, user_id: str) -> None:
        count = self._subscriptions.get(user_id, 0) - 1
        if count > 0:
            self._subscriptions[user_id] = count
            return
        self._subscriptions.pop(user_id, None)
        await self._send_subscription("unsubscribe", user_id)

    async def _send_subscription(self, command: str, user_id: str) -> None:
        """SUBSCRIBE/UNSUBSCRIBE now if connected; else the reader does it on reconnect."""
        async with self._lock:
            pubsub = self._pubsub
            wanted = user_id in self._subscriptions
            if pubsub is None or wanted != (command == "subscribe"):
                return  # not connected, or the count changed while we waited for the lock
            try:
                async with asyncio.timeout(self._timeout):
                    await getattr(pubsub, command)(user_channel(user_id))
            except REDIS_ERRORS as exc:
                # The reader notices the broken connection and re-subscribes everyone.
                log.warning("redis %s failed: %r", command, exc)

    # -- reading ----------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        backoff = 0.0
        lost = False  # a connection was lost (or never made): messages may be missing
        while True:
            try:
                await self._connect()
                if lost:
                    log.warning("redis pub/sub reconnected")
                    if self._invalidate is not None:
                        self._invalidate(None)
                    await self._resync()
                backoff = 0.0
                await self._read()
            except REDIS_ERRORS as exc:
                if not lost:
                    log.warning("redis pub/sub unavailable, retrying: %r", exc)
                lost = True
            await self._close_pubsub()
            backoff = min(max(backoff * 2, 0.1), self._max_backoff)
            await asyncio.sleep(backoff)

    async def _connect(self) -> None:
        assert self._sub_client is not None
        pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
        async with self._lock:
            try:
                channels = [CONTROL_CHANNEL, *map(user_channel, self._subscriptions)]
                async with asyncio.timeout(self._timeout * 2):
                    await pubsub.subscribe(*channels)
            except BaseException:
                await pubsub.aclose()
                raise
            self._pubsub = pubsub

    async def _read(self) -> None:
        """Dispatch messages until the connection fails; PING when idle to detect a hang."""
        pubsub = self._pubsub
        assert pubsub is not None
        waiting_pong_since: float | None = None
        while True:
            message = await pubsub.get_message(timeout=self._ping_interval)
            now = time.monotonic()
            if message is None or message["type"] != "message":
                if message is not None and message["type"] == "pong":
                    waiting_pong_since = None
                elif waiting_pong_since is None:
                    waiting_pong_since = now
                    await pubsub.ping()
                elif now - waiting_pong_since > self._ping_interval + self._timeout:
                    raise TimeoutError("redis did not answer PING")
                continue
            waiting_pong_since = None
            await self._dispatch(message["channel"], message["data"])

    async def _dispatch(self, channel: bytes, data: bytes) -> None:
        if channel == CONTROL_CHANNEL_BYTES:
            if self._invalidate is not None:
                self._invalidate(data.decode())
            return
        user_id = channel.decode()[len(PREFIX) :]
        if self._listener is None or user_id not in self._subscriptions:
            return
        try:
            changes = [Change.from_wire(item) for item in orjson.loads(data)]
        except (ValueError, TypeError, IndexError):
            log.warning("malformed bus message on %s", channel.decode())
            return
        try:
            await self._listener(user_id, changes)
        except Exception:
            log.exception("notification listener failed")

    async def _resync(self) -> None:
        for user_id in list(self._subscriptions):
            if self._listener is not None and user_id in self._subscriptions:
                try:
                    await self._listener(user_id, [Change(RESYNC)])
                except Exception:
                    log.exception("notification listener failed")

    async def _close_pubsub(self) -> None:
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()
