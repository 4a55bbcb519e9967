"""Who hears what: a user's committed changes and their connected listeners → deliveries.

Pure functions, no I/O: the Socket.IO transport feeds them the listeners it holds and sends
what they answer (``transports/fanout.py`` writes the frames). The rules (API.md §10):

- ``channelsChanged`` (no payload) reaches, once per publish, the listeners that can see
  one of the changed channels (a change without a channel id reaches everyone);
- ``foldersChanged {channelId}`` reaches the listeners that can see the channel;
- ``eventsChanged {channelId}`` reaches, once per channel and publish, the listeners whose
  credential reaches one of the touched events, before or after the change (``Spot``s:
  folder, filters of API.md §14); a change that lists no events reaches every listener that
  can see the channel;
- ``seriesChanged {channelId, eventId}`` reaches the listeners that can see the channel
  (without ``eventId`` to listeners that do not read the whole channel unfiltered: some
  folders, or narrowed grants);
- ``sharesChanged`` (no payload) reaches the full-access listeners (session, personal);
- ``accessRevoked`` (internal) names a credential: its listeners hear nothing more and are
  disconnected; the credential is compared in constant time and never sent;
- ``resync`` (internal, from the bus: messages may have been lost) asks the transport to
  recheck every listener's credential, then to send ``refetch_all``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pryvrt.auth.permissions import Access
from pryvrt.notify.messages import (
    ACCESS_REVOKED,
    CHANNELS_CHANGED,
    EVENTS_CHANGED,
    FOLDERS_CHANGED,
    RESYNC,
    SERIES_CHANGED,
    SHARES_CHANGED,
    Change,
    Spot,
)


class Listener(Protocol):
    """A connected socket, as routing sees it: what its credential may see."""

    @property
    def access(self) -> Access: ...


L = TypeVar("L", bound=Listener)


@dataclass(frozen=True, slots=True)
class Send(Generic[L]):
    """One client-visible message and who gets it."""

    event: str
    data: dict[str, Any] | None
    to: tuple[L, ...]


@dataclass(slots=True)
class Deliveries(Generic[L]):
    sends: list[Send[L]] = field(default_factory=list)
    # Listeners whose credential was revoked: disconnect them (they got nothing above).
    revoked: list[L] = field(default_factory=list)
    # The bus may have lost messages: recheck the listeners, then ``refetch_all``.
    resync: bool = False


def route(changes: Sequence[Change], listeners: Iterable[L]) -> Deliveries[L]:
    """What each listener of the user hears about ``changes`` (one publish, in order)."""
    out: Deliveries[L] = Deliveries()
    present = list(listeners)
    channels_done = shares_done = False
    events_done: set[str] = set()
    for change in changes:
        if change.kind == ACCESS_REVOKED:
            revoked = (change.subject or "").encode()
            # Constant time, like every comparison of a credential.
            gone = [x for x in present if hmac.compare_digest(x.access.secret.encode(), revoked)]
            out.revoked.extend(gone)
            present = [x for x in present if x not in gone]
        elif change.kind == CHANNELS_CHANGED:
            if channels_done:
                continue
            channels_done = True
            changed = {c.subject for c in changes if c.kind == CHANNELS_CHANGED}
            hearing = tuple(
                x
                for x in present
                if None in changed or any(x.access.can_see_channel(c) for c in changed if c)
            )
            out.sends.append(Send(CHANNELS_CHANGED, None, hearing))
        elif change.kind == FOLDERS_CHANGED and change.subject:
            channel_id = change.subject
            hearing = tuple(x for x in present if x.access.can_see_channel(channel_id))
            out.sends.append(Send(change.kind, {"channelId": channel_id}, hearing))
        elif change.kind == SERIES_CHANGED and change.subject:
            channel_id = change.subject
            seeing = [x for x in present if x.access.can_see_channel(channel_id)]
            # The event id only to listeners that read the whole channel, unfiltered: one
            # reaching some folders, or narrowed (§14), may not see that event.
            whole = tuple(x for x in seeing if x.access.reads_whole_channel(channel_id))
            some = tuple(x for x in seeing if not x.access.reads_whole_channel(channel_id))
            data = {"channelId": channel_id, "eventId": change.item}
            out.sends.append(Send(SERIES_CHANGED, data, whole))
            out.sends.append(Send(SERIES_CHANGED, {"channelId": channel_id}, some))
        elif change.kind == EVENTS_CHANGED and change.subject:
            channel_id = change.subject
            if channel_id in events_done:
                continue
            events_done.add(channel_id)
            same = [c for c in changes if c.kind == EVENTS_CHANGED and c.subject == channel_id]
            spots: list[Spot] | None = []
            for other in same:
                if other.spots is None or spots is None:
                    spots = None
                else:
                    spots.extend(other.spots)
            hearing = tuple(x for x in present if hears_events(x.access, channel_id, spots))
            out.sends.append(Send(change.kind, {"channelId": channel_id}, hearing))
        elif change.kind == SHARES_CHANGED:
            if shares_done:
                continue
            shares_done = True
            out.sends.append(
                Send(SHARES_CHANGED, None, tuple(x for x in present if x.access.is_full))
            )
        elif change.kind == RESYNC:
            out.resync = True
    out.sends = [s for s in out.sends if s.to]
    return out


def hears_events(access: Access, channel_id: str, spots: Sequence[Spot] | None) -> bool:
    """Whether a credential hears an eventsChanged of the channel touching ``spots``
    (``None``: events not listed, the channel decides)."""
    if not access.can_see_channel(channel_id):
        return False
    if spots is None or access.is_full:
        return True
    return any(
        access.event_level(channel_id, s.path, s.time, s.end, s.tags) is not None for s in spots
    )


def refetch_all(listeners: Sequence[L], channel_ids: Iterable[str]) -> list[Send[L]]:
    """After lost messages: everyone refetches channels, and each channel's folders and
    events go to the listeners that can see it."""
    if not listeners:
        return []
    sends: list[Send[L]] = [Send(CHANNELS_CHANGED, None, tuple(listeners))]
    for channel_id in channel_ids:
        hearing = tuple(x for x in listeners if x.access.can_see_channel(channel_id))
        if hearing:
            for kind in (FOLDERS_CHANGED, EVENTS_CHANGED):
                sends.append(Send(kind, {"channelId": channel_id}, hearing))
    return sends


def past_expiry(listeners: Iterable[L], now: float) -> list[L]:
    """Listeners whose session expired as last read (it may have slid since: reread)."""
    return [x for x in listeners if x.access.expires is not None and x.access.expires <= now]
