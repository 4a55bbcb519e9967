"""Change notifications published after every committed write (API.md §10).

``Change`` is the message; a bus carries it from the worker that took the write to every
worker holding sockets of that user: ``LocalBus`` in one process, ``RedisBus`` across
processes (see ``pryvrt.notify.redis_bus``).
"""

from __future__ import annotations

from pryvrt.notify.bus import Bus, Listener, LocalBus
from pryvrt.notify.messages import Change

__all__ = ["Bus", "Change", "Listener", "LocalBus"]
