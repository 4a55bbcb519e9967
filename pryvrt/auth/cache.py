"""Per-worker cache of what every call looks up first: its credential and its channel.

Without it, ``events.get`` costs three PostgreSQL round trips (credential, channel, events)
and the first two dominate the CPU of a small read. With it, a warm call costs one.

Freshness, in order of strength:

- The worker that commits a change of a user's credentials or channels (a change carrying
  ``accessRevoked`` or ``channelsChanged``) drops that user's entries at once, before it
  answers the request.
- The bus carries the same invalidation to every other worker (``RedisBus`` on its control
  channel, which every worker subscribes to); a worker drops the user's entries when it
  arrives, typically within a millisecond.
- The cache serves only while the bus says invalidations can reach it
  (``Bus.invalidations_live``): while Redis is unreachable every lookup goes to the
  database, and the whole cache is dropped when the connection comes back.
- Every entry expires after ``PRYVRT_CACHE_SECONDS`` (default 5 s) whatever happens, which
  bounds what a lost message could cost; 0 turns the cache off.

A generation counter stops a lookup that raced an invalidation from storing what it read
before the change.

Concurrent misses of one key share one load: when an entry expires under load, the calls
that find it missing together (every in-flight request of a busy credential) await the
first one's read instead of each sending its own (the p99 spike every ``ttl``). A call
joins a load only if no invalidation happened since that load started, so a call that
arrives after a write's invalidation always reads the database afresh. A shared load that
found nothing or failed answers nobody but its own caller: each waiter then loads for
itself (a wrong credential is counted against each caller's address, as before).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pryvrt.auth.permissions import Access
    from pryvrt.storage.channels import Channel

MAX_USERS = 10_000
V = TypeVar("V")
CREDENTIALS = "credentials"
CHANNELS = "channels"
# What a shared load hands its waiters when it found nothing or failed: load yourself.
_NOT_SHARED: Any = object()


@dataclass(slots=True)
class _UserEntries:
    # table (CREDENTIALS, CHANNELS) -> key -> (value, monotonic expiry)
    tables: dict[str, dict[str, tuple[Any, float]]] = field(default_factory=dict)


class AccessCache:
    """Credentials (as ``Access``) and channels by user, each entry valid ``ttl`` seconds."""

    def __init__(self, ttl: float, live: Callable[[], bool] = lambda: True) -> None:
        self.ttl = ttl
        self._live = live
        self._users: dict[str, _UserEntries] = {}
        # Bumped by every invalidation (they are rare: credential and channel writes).
        self._generation = 0
        # (table, user id, key) -> (generation it started in, its result for waiters).
        self._loading: dict[tuple[str, str, str], tuple[int, asyncio.Future[Any]]] = {}
        # (user id, credential) of the credential writes in flight.
        self._writing: set[tuple[str, str]] = set()
        # For tests and operators: loads run, and calls that awaited another's load.
        self.loads = 0
        self.shared_loads = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self._live()

    def credential(self, user_id: str, credential: str) -> Access | None:
        """The cached ``Access`` (``None``: missing, expired, or the cache cannot be trusted)."""
        return self._get(CREDENTIALS, user_id, credential)

    def channel(self, user_id: str, channel_id: str) -> Channel | None:
        return self._get(CHANNELS, user_id, channel_id)

    async def load_credential(
        self, user_id: str, credential: str, load: Callable[[], Awaitable[Access | None]]
    ) -> Access | None:
        """``load()`` it from the database, and cache what it read."""
        return await self._load(CREDENTIALS, user_id, credential, load)

    async def load_channel(
        self, user_id: str, channel_id: str, load: Callable[[], Awaitable[Channel | None]]
    ) -> Channel | None:
        return await self._load(CHANNELS, user_id, channel_id, load)

    async def write_credential(
        self, user_id: str, credential: str, access: Access, write: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``write`` (which makes ``access`` true in the database), then cache it.

        While one runs for a credential, concurrent calls skip theirs: a session's expiry
        slides once a minute, and every call in flight at that moment would otherwise write
        the same slide (the credential is valid for each of them either way)."""
        slot = (user_id, credential)
        if slot in self._writing:
            return
        self._writing.add(slot)
        try:
            generation = self._generation
            await write()
            self._put(CREDENTIALS, user_id, credential, access, generation)
        finally:
            self._writing.discard(slot)

    def _get(self, table: str, user_id: str, key: str) -> Any:
        entries = self._users.get(user_id)
        hit = None if entries is None else entries.tables.get(table, {}).get(key)
        if hit is None or hit[1] < time.monotonic() or not self._live():
            return None
        return hit[0]

    async def _load(
        self, table: str, user_id: str, key: str, load: Callable[[], Awaitable[V | None]]
    ) -> V | None:
        """The one read-through: a lookup that raced an invalidation stores nothing, and
        concurrent misses of a key share one load (see the module docstring)."""
        if not self.enabled:
            self.loads += 1
            return await load()
        slot = (table, user_id, key)
        while (running := self._loading.get(slot)) is not None:
            if running[0] != self._generation:
                break  # started before an invalidation: what it reads may be stale
            self.shared_loads += 1
            shared = await asyncio.shield(running[1])
            if shared is None:
                break  # found nothing: each caller checks for itself
            if shared is not _NOT_SHARED:
                return shared
            # It failed: the first waiter to resume loads again, the others share that.
        generation = self._generation
        entry = (generation, asyncio.get_running_loop().create_future())
        self._loading[slot] = entry
        self.loads += 1
        loaded: Any = _NOT_SHARED
        try:
            loaded = await load()
            if loaded is not None:
                self._put(table, user_id, key, loaded, generation)
        finally:
            entry[1].set_result(loaded)
            if self._loading.get(slot) is entry:
                del self._loading[slot]
        return loaded

    def _put(self, table: str, user_id: str, key: str, value: Any, generation: int) -> None:
        if generation != self._generation or not self.enabled:
            return  # invalidated while the caller was reading the database
        entries = self._users.get(user_id)
        if entries is None:
            if len(self._users) >= MAX_USERS:
                self.invalidate(None)
            entries = self._users[user_id] = _UserEntries()
        entries.tables.setdefault(table, {})[key] = (value, time.monotonic() + self.ttl)

    def invalidate(self, user_id: str | None) -> None:
        """Forget one user's entries (``None``: everyone's) and fence off racing lookups."""
        self._generation += 1
        if user_id is None:
            self._users.clear()
        else:
            self._users.pop(user_id, None)
