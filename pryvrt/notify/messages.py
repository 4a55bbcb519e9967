"""The messages a bus carries, and their wire format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHANNELS_CHANGED = "channelsChanged"
FOLDERS_CHANGED = "foldersChanged"
EVENTS_CHANGED = "eventsChanged"
# Points were added to a series event (API.md §15): ``{channelId, eventId}``; coalesced
# per series (``notify.coalesce``).
SERIES_CHANGED = "seriesChanged"
# Internal: sockets authenticated with that credential must be disconnected.
ACCESS_REVOKED = "accessRevoked"
# Internal, from a bus to its listener only: messages for this user may have been lost (Redis
# was unreachable); recheck the sockets' credentials and tell clients to refetch.
RESYNC = "resync"


# Changes after which cached credentials and channels of the user are stale.
INVALIDATING = frozenset({CHANNELS_CHANGED, ACCESS_REVOKED})


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a user's data. Wire format: ``[kind, subject]``, or
    ``[kind, subject, item]`` when it names an item (seriesChanged: the event id).

    ``subject`` is the channel id for channel/folder/event changes (sockets that cannot see
    the channel are not told; the id itself is never sent to clients for channelsChanged),
    and the revoked credential for accessRevoked (never sent to clients, never logged).
    """

    kind: str
    subject: str | None = None
    item: str | None = None

    def to_wire(self) -> list[Any]:
        if self.item is None:
            return [self.kind, self.subject]
        return [self.kind, self.subject, self.item]

    @classmethod
    def from_wire(cls, data: list[Any]) -> Change:
        item = data[2] if len(data) > 2 else None
        return cls(
            str(data[0]),
            None if data[1] is None else str(data[1]),
            None if item is None else str(item),
        )
