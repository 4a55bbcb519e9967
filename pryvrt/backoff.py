"""Exponential backoff for restarting what crashed (workers, the embedded PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass

# Figures of the README's "Reliability" section.
INITIAL_DELAY = 0.5
MAX_DELAY = 30.0
# A process that ran this long since its (re)start was stable: its next crash starts over.
STABLE_SECONDS = 60.0


@dataclass
class Backoff:
    """Delays of 0.5 s, 1 s, 2 s... up to ``maximum`` for consecutive failures, forever.

    ``failed(ran_for)`` gives the delay before the next attempt; a failure after a stable
    run (``ran_for >= stable``) is treated as the first of a new series.
    """

    initial: float = INITIAL_DELAY
    maximum: float = MAX_DELAY
    stable: float = STABLE_SECONDS
    failures: int = 0

    def failed(self, ran_for: float = 0.0) -> float:
        if ran_for >= self.stable:
            self.failures = 0
        self.failures += 1
        return float(min(self.maximum, self.initial * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0
