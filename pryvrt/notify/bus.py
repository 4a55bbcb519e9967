"""The bus interface and its in-process implementation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from pryvrt.notify.messages import INVALIDATING, Change

log = logging.getLogger(__name__)

# Called with (user_id, changes) for each published batch of changes of a subscribed user.
Listener = Callable[[str, Sequence[Change]], Awaitable[None]]
# Called with a user id whose cached credentials/channels are stale (None: everyone's).
InvalidationHandler = Callable[[str | None], None]


def invalidates(changes: Iterable[Change]) -> bool:
    return any(change.kind in INVALIDATING for change in changes)


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, user_id: str, changes: Sequence[Change]) -> None:
        """Deliver to every subscriber of the user, on every worker. Never raises."""

    async def subscribe(self, user_id: str) -> None:
        """Start receiving the user's changes on this worker (reference counted)."""

    async def unsubscribe(self, user_id: str) -> None: ...

    def set_listener(self, listener: Listener) -> None: ...

    def set_invalidation_handler(self, handler: InvalidationHandler) -> None:
        """Called for every change published by another worker that makes caches stale, and
        with ``None`` when some may have been missed. (The publishing worker invalidates its
        own cache itself, before answering.)"""

    def invalidations_live(self) -> bool:
        """Whether invalidations published elsewhere reach this worker right now."""


class LocalBus:
    """Single-process bus: publish calls the listener directly for subscribed users."""

    def __init__(self) -> None:
        self._listener: Listener | None = None
        self._subscriptions: dict[str, int] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscriptions.clear()

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    def set_invalidation_handler(self, handler: InvalidationHandler) -> None:
        return None  # one process: there is no other worker to hear from

    def invalidations_live(self) -> bool:
        return True

    async def subscribe(self, user_id: str) -> None:
        self._subscriptions[user_id] = self._subscriptions.get(user_id, 0) + 1

    async def unsubscribe(self, user_id: str) -> None:
        count = self._subscriptions.get(user_id, 0) - 1
        if count > 0:
            self._subscriptions[user_id] = count
        else:
            self._subscriptions.pop(user_id, None)

    async def publish(self, user_id: str, changes: Sequence[Change]) -> None:
        if self._listener is None or user_id not in self._subscriptions:
            return
        try:
            await self._listener(user_id, changes)
        except Exception:
            log.exception("notification listener failed")
