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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pryvrt.storage.channels import Channel
    from pryvrt.storage.tokens import CredentialRow

MAX_USERS = 10_000
V = TypeVar("V")


@dataclass(slots=True)
class _UserEntries:
    credentials: dict[str, tuple[CredentialRow, float]] = field(default_factory=dict)
    channels: dict[str, tuple[Channel, float]] = field(default_factory=dict)


class AccessCache:
    """Credentials and channels by user, each entry valid for ``ttl`` seconds."""

    def __init__(self, ttl: float, live: Callable[[], bool] = lambda: True) -> None:
        self.ttl = ttl
        self._live = live
        self._users: dict[str, _UserEntries] = {}
        # Bumped by every invalidation (they are rare: credential and channel writes).
        self._generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self._live()

    @property
    def generation(self) -> int:
        """Read before a lookup in the database; pass to ``put_*`` after it."""
        return self._generation

    def credential(self, user_id: str, credential: str) -> CredentialRow | None:
        entries = self._users.get(user_id)
        return None if entries is None else self._fresh(entries.credentials.get(credential))

    def put_credential(
        self, user_id: str, credential: str, row: CredentialRow, generation: int
    ) -> None:
        entries = self._entries(user_id, generation)
        if entries is not None:
            entries.credentials[credential] = (row, time.monotonic() + self.ttl)

    def channel(self, user_id: str, channel_id: str) -> Channel | None:
        entries = self._users.get(user_id)
        return None if entries is None else self._fresh(entries.channels.get(channel_id))

    def _fresh(self, hit: tuple[V, float] | None) -> V | None:
        """The cached value, unless missing, expired, or the cache cannot be trusted now."""
        if hit is None or hit[1] < time.monotonic() or not self.enabled:
            return None
        return hit[0]

    def put_channel(self, user_id: str, channel: Channel, generation: int) -> None:
        entries = self._entries(user_id, generation)
        if entries is not None:
            entries.channels[channel.id] = (channel, time.monotonic() + self.ttl)

    def invalidate(self, user_id: str | None) -> None:
        """Forget one user's entries (``None``: everyone's) and fence off racing lookups."""
        self._generation += 1
        if user_id is None:
            self._users.clear()
        else:
            self._users.pop(user_id, None)

    def _entries(self, user_id: str, generation: int) -> _UserEntries | None:
        if generation != self._generation or not self.enabled:
            return None  # invalidated while the caller was reading the database
        entries = self._users.get(user_id)
        if entries is None:
            if len(self._users) >= MAX_USERS:
                self.invalidate(None)
            entries = self._users[user_id] = _UserEntries()
        return entries
