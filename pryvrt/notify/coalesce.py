"""seriesChanged at most every ``interval`` seconds per series, whatever the point rate.

A series written 50 times a second would otherwise send 50 notifications a second to every
listener, each making it fetch. Per (user, change) this worker sends the first change at
once, then at most one more per ``interval``: changes arriving in between are folded into
one sent when the interval ends, so the last write is always announced (at most
``interval`` late). Other kinds pass through untouched. Each worker coalesces its own
writes: with W workers writing one series, at most W per interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from pryvrt.notify.messages import SERIES_CHANGED, Change

COALESCED = frozenset({SERIES_CHANGED})
DEFAULT_INTERVAL = 0.25
Publish = Callable[[str, Sequence[Change]], Awaitable[None]]


class Coalescer:
    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._sent: dict[tuple[str, Change], float] = {}
        self._due: dict[tuple[str, Change], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def hold(self, user_id: str, changes: Iterable[Change], publish: Publish) -> list[Change]:
        """The changes to publish now; the coalesced ones left out are published later
        through ``publish``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        out: list[Change] = []
        for change in changes:
            if change.kind not in COALESCED:
                out.append(change)
                continue
            key = (user_id, change)
            if key in self._due:
                continue  # one is already due: it will announce this write too
            sent = self._sent.get(key)
            if sent is None or now - sent >= self.interval:
                self._sent[key] = now
                out.append(change)
            else:
                self._due[key] = loop.call_later(
                    sent + self.interval - now, self._fire, key, publish
                )
        if len(self._sent) > 10_000:
            self._forget(now)
        return out

    def _fire(self, key: tuple[str, Change], publish: Publish) -> None:
        self._due.pop(key, None)
        self._sent[key] = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(publish(key[0], [key[1]]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, now: float) -> None:
        """Drop what no longer throttles anything (series quiet for an interval)."""
        for key in [k for k, sent in self._sent.items() if now - sent >= self.interval]:
            del self._sent[key]

    async def close(self) -> None:
        """Cancel what is due (clients refetch on reconnect) and wait for what is sending."""
        for handle in self._due.values():
            handle.cancel()
        self._due.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
