"""The messages a bus carries, and their wire format."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CHANNELS_CHANGED = "channelsChanged"
FOLDERS_CHANGED = "foldersChanged"
EVENTS_CHANGED = "eventsChanged"
# Points were added to a series event (API.md §15): ``{channelId, eventId}``; coalesced
# per series (``notify.coalesce``).
SERIES_CHANGED = "seriesChanged"
# To the sharing recipient's sockets (full-access credentials): a share arrived or left.
SHARES_CHANGED = "sharesChanged"
# Internal: sockets authenticated with that credential must be disconnected.
ACCESS_REVOKED = "accessRevoked"
# Internal, from a bus to its listener only: messages for this user may have been lost (Redis
# was unreachable); recheck the sockets' credentials and tell clients to refetch.
RESYNC = "resync"


# Changes after which cached credentials and channels of the user are stale.
INVALIDATING = frozenset({CHANNELS_CHANGED, ACCESS_REVOKED})


@dataclass(frozen=True, slots=True)
class Spot:
    """Where one changed event lies, before or after the change, as far as permissions go
    (API.md §14): its folder then the folder's ancestors (``(None,)``: no folder), its
    time, its end (``time`` for a mark, +inf while running) and its tags. Wire format:
    ``[path, time, end | null, tags]``."""

    path: tuple[str | None, ...]
    time: float
    end: float
    tags: tuple[str, ...]

    def to_wire(self) -> list[Any]:
        return [
            list(self.path),
            self.time,
            None if math.isinf(self.end) else self.end,
            list(self.tags),
        ]

    @classmethod
    def from_wire(cls, data: list[Any]) -> Spot:
        path, at, end, tags = data
        return cls(
            tuple(None if p is None else str(p) for p in path),
            float(at),
            math.inf if end is None else float(end),
            tuple(str(t) for t in tags),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a user's data. Wire format: ``[kind, subject]``, or ``[kind, subject,
    item]`` when it names an item (seriesChanged: the event id), or ``[kind, subject, item,
    spots]`` when it names the events it touched (eventsChanged).

    ``subject`` is the channel id for channel/folder/event changes (sockets that cannot see
    the channel are not told; the id itself is never sent to clients for channelsChanged),
    and the revoked credential for accessRevoked (never sent to clients, never logged).
    ``spots`` (eventsChanged): each touched event before and after the change; a socket
    hears it only when its credential reaches one of them. ``None``: the change touched
    events it does not list (folder deletes and merges): every socket that sees the
    channel hears it.
    """

    kind: str
    subject: str | None = None
    item: str | None = None
    spots: tuple[Spot, ...] | None = None

    def to_wire(self) -> list[Any]:
        if self.spots is not None:
            return [self.kind, self.subject, self.item, [s.to_wire() for s in self.spots]]
        if self.item is None:
            return [self.kind, self.subject]
        return [self.kind, self.subject, self.item]

    @classmethod
    def from_wire(cls, data: list[Any]) -> Change:
        item = data[2] if len(data) > 2 else None
        spots = None
        if len(data) > 3 and data[3] is not None:
            spots = tuple(Spot.from_wire(s) for s in data[3])
        return cls(
            str(data[0]),
            None if data[1] is None else str(data[1]),
            None if item is None else str(item),
            spots,
        )
