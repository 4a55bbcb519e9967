"""Login throttling: too many failures for a username or an IP → 429 for a while.

Counts live in the worker's memory: with N workers, a client may get up to N times the
limit before every worker blocks it. Good enough against password guessing, no extra service.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    max_failures: int
    block_seconds: float
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def blocked(self, *keys: str) -> float:
        """Seconds left before any of the keys may try again (0 when none is blocked)."""
        now = time.monotonic()
        left = 0.0
        for key in keys:
            count, since = self._failures.get(key, (0, now))
            if now - since >= self.block_seconds:
                self._failures.pop(key, None)
            elif count >= self.max_failures:
                left = max(left, self.block_seconds - (now - since))
        return left

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            count, since = self._failures.get(key, (0, now))
            if now - since >= self.block_seconds:
                count, since = 0, now
            self._failures[key] = (count + 1, since)
        if len(self._failures) > 100_000:  # bound memory under a spray of usernames
            self._failures.clear()

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
