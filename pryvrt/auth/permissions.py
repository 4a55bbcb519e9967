"""The permission model of API.md §7, as data.

A credential is an ``Access``: a session or personal token (full access), or a shared/app
token holding ``ChannelPermission``s. A channel permission either covers the whole channel
(no ``folders``), or only some folders and their descendants (``folders``), where a folder
id of ``None`` stands for the events with no folder. A folder inherits its ancestors'
levels; when several permissions reach an item, the highest level wins.

A permission, and each folder grant in it, may be narrowed by an ``EventFilter`` (API.md
§14: tags and/or a time frame). A filter narrows which *events* a grant reaches, never the
folders: the folder tree is seen through the folder levels (``folder_level``), each event
through ``event_level``, which counts only the grants whose filter the event passes. Every
check of an event (reads, writes, notifications, SQL) derives from ``grants`` below.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any


class Level(IntEnum):
    READ = 1
    CONTRIBUTE = 2
    MANAGE = 3

    @classmethod
    def parse(cls, name: str) -> Level:
        return cls[name.upper()]

    @property
    def api_name(self) -> str:
        return self.name.lower()


ALL_CHANNELS = "*"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The events a narrowed grant reaches (API.md §14): having one tag of *each* of
    ``tag_sets`` (one set when the grant names ``tags``; two when a folder grant and its
    permission both do) and overlapping ``[from_time, to_time]`` (``None``: unbounded), as
    a period overlaps an events.get window."""

    tag_sets: tuple[frozenset[str], ...] = ()
    from_time: float | None = None
    to_time: float | None = None

    def matches(self, time: float, end: float, tags: Iterable[str]) -> bool:
        """``end``: ``time`` for a mark, +inf while running."""
        if self.to_time is not None and time > self.to_time:
            return False
        if self.from_time is not None and end < self.from_time:
            return False
        if self.tag_sets:
            have = set(tags)
            return all(not have.isdisjoint(wanted) for wanted in self.tag_sets)
        return True

    def within(self, other: EventFilter | None) -> bool:
        """True when every event this filter passes, ``other`` passes too (``None``: no
        filter, passes everything). Sufficient, not necessary: used to refuse widening."""
        if other is None:
            return True
        low = -math.inf if self.from_time is None else self.from_time
        high = math.inf if self.to_time is None else self.to_time
        if other.from_time is not None and low < other.from_time:
            return False
        if other.to_time is not None and high > other.to_time:
            return False
        return all(any(mine <= theirs for mine in self.tag_sets) for theirs in other.tag_sets)

    def both(self, other: EventFilter | None) -> EventFilter:
        """The events both filters pass."""
        if other is None:
            return self
        froms = [t for t in (self.from_time, other.from_time) if t is not None]
        tos = [t for t in (self.to_time, other.to_time) if t is not None]
        return EventFilter(
            tuple(dict.fromkeys((*self.tag_sets, *other.tag_sets))),
            max(froms) if froms else None,
            min(tos) if tos else None,
        )


def parse_filter(raw: dict[str, Any]) -> EventFilter | None:
    """The filter fields of a stored permission or folder grant (``None`` when it has none)."""
    tags, from_time, to_time = raw.get("tags"), raw.get("fromTime"), raw.get("toTime")
    if tags is None and from_time is None and to_time is None:
        return None
    return EventFilter((frozenset(tags),) if tags is not None else (), from_time, to_time)


@dataclass(frozen=True, slots=True)
class FolderPermission:
    folder_id: str | None
    level: Level
    filter: EventFilter | None = None


@dataclass(frozen=True, slots=True)
class ChannelPermission:
    channel_id: str
    level: Level
    folders: tuple[FolderPermission, ...] | None = None
    filter: EventFilter | None = None

    def matches(self, channel_id: str) -> bool:
        return self.channel_id == ALL_CHANNELS or self.channel_id == channel_id


@dataclass(frozen=True, slots=True)
class Grant:
    """One reach of a credential in a channel: the whole channel (``whole``) or a folder and
    its descendants (``folder_id``, ``None`` = the events with no folder), at ``level``,
    for the events ``filter`` passes (``None``: all of them)."""

    whole: bool
    folder_id: str | None
    level: Level
    filter: EventFilter | None

    def reaches(self, path: Sequence[str | None]) -> bool:
        """``path``: the event's folder then its ancestors (``(None,)``: no folder)."""
        return self.whole or self.folder_id in path


def parse_permissions(raw: Iterable[dict[str, Any]]) -> tuple[ChannelPermission, ...]:
    """Permissions as stored (the API's JSON shape, already validated) → data."""
    result = []
    for perm in raw:
        folders = perm.get("folderPermissions")
        result.append(
            ChannelPermission(
                perm["channelId"],
                Level.parse(perm["level"]),
                None
                if folders is None
                else tuple(
                    FolderPermission(f.get("folderId"), Level.parse(f["level"]), parse_filter(f))
                    for f in folders
                ),
                parse_filter(perm),
            )
        )
    return tuple(result)


FULL_ACCESS_KINDS = frozenset({"session", "personal"})
# What a full access holds in any channel (built once: asked at every call).
FULL_GRANTS = (Grant(True, None, Level.MANAGE, None),)


@dataclass(frozen=True, slots=True)
class Access:
    """What a credential may do. ``secret`` is the credential itself: never log it."""

    kind: str  # "session" | "personal" | "shared" | "app"
    secret: str
    name: str
    permissions: tuple[ChannelPermission, ...] = ()
    # A session's expiry as last read (sliding: it only moves later); None for tokens.
    expires: float | None = None
    # The credential's public id (API.md §12): what readTokens are bound to.
    access_id: str = ""

    @property
    def is_full(self) -> bool:
        """Sessions and personal tokens reach all of the user's data."""
        return self.kind in FULL_ACCESS_KINDS

    @property
    def is_session(self) -> bool:
        return self.kind == "session"

    def grants(self, channel_id: str) -> tuple[Grant, ...]:
        """Every reach of the access in the channel (a full access: the whole, unfiltered)."""
        if self.is_full:
            return FULL_GRANTS
        return _grants(self.permissions, channel_id)

    def is_filtered(self, channel_id: str) -> bool:
        """True when some grant in the channel is narrowed by tags or a time frame."""
        return any(g.filter is not None for g in self.grants(channel_id))

    def reads_whole_channel(self, channel_id: str) -> bool:
        """True when an unfiltered channel-wide grant reads every event of the channel."""
        return any(g.whole and g.filter is None for g in self.grants(channel_id))

    def has_folder_grants(self, channel_id: str) -> bool:
        """True when some grant reaches only a folder (answers need the folder tree)."""
        return not self.is_full and any(not g.whole for g in self.grants(channel_id))

    def unfiltered(self) -> Access:
        """This access without its narrowed grants (rules that move events in bulk)."""
        if self.is_full:
            return self
        kept = []
        for perm in self.permissions:
            if perm.filter is not None:
                continue
            if perm.folders is not None:
                perm = replace(perm, folders=tuple(f for f in perm.folders if f.filter is None))
            kept.append(perm)
        return replace(self, permissions=tuple(kept))

    def event_level(
        self,
        channel_id: str,
        path: Sequence[str | None],
        time: float,
        end: float,
        tags: Iterable[str],
    ) -> Level | None:
        """The level on one event: the highest of the grants that reach its folder
        (``path``: its folder then its ancestors, ``(None,)`` for no folder) and whose
        filter it passes. The one answer behind every check of an event."""
        if self.is_full:
            return Level.MANAGE
        tag_list = list(tags)
        best: Level | None = None
        for grant in self.grants(channel_id):
            if best is not None and grant.level <= best:
                continue
            if not grant.reaches(path):
                continue
            if grant.filter is not None and not grant.filter.matches(time, end, tag_list):
                continue
            best = grant.level
        return best

    def channel_level(self, channel_id: str) -> Level | None:
        """The level granted on the channel as a whole (folder-restricted grants excluded)."""
        if self.is_full:
            return Level.MANAGE
        levels = [p.level for p in self.permissions if p.folders is None and p.matches(channel_id)]
        return max(levels) if levels else None

    def best_level_in(self, channel_id: str) -> Level | None:
        """The highest level held on anything in the channel (whole, or some folder)."""
        best = self.channel_level(channel_id)
        for perm in self.permissions:
            if perm.folders and perm.matches(channel_id):
                for folder in perm.folders:
                    if best is None or folder.level > best:
                        best = folder.level
        return best

    def can_see_channel(self, channel_id: str) -> bool:
        """True when the access reads something in the channel (a grant of no folder,
        ``folderPermissions: []``, reads nothing: the channel stays out of sight)."""
        return self.is_full or self.best_level_in(channel_id) is not None

    def is_folder_restricted(self, channel_id: str) -> bool:
        """True when the access reaches the channel only through some of its folders."""
        return self.channel_level(channel_id) is None

    def folder_level(
        self, channel_id: str, folder_id: str | None, ancestors: Sequence[str] = ()
    ) -> Level | None:
        """The level on a folder (``None`` = events with no folder), given its ancestors' ids."""
        best = self.channel_level(channel_id)
        path = (folder_id, *ancestors) if folder_id is not None else (None,)
        for perm in self.permissions:
            if not perm.folders or not perm.matches(channel_id):
                continue
            for grant in perm.folders:
                if grant.folder_id in path and (best is None or grant.level > best):
                    best = grant.level
        return best

    def covers(self, other: Access) -> bool:
        """True when this access holds at least everything ``other`` grants (§7 rule, with
        filters: §14). Each of ``other``'s grants must be held by one grant of this access
        that reaches as far (channel, whole or the same folder: ancestors are unknown
        here), at a level as high, with a filter no narrower."""
        if self.is_full:
            return True
        if other.is_full:
            return False
        for perm in other.permissions:
            mine = [p for p in self.permissions if p.channel_id in (ALL_CHANNELS, perm.channel_id)]
            if perm.channel_id == ALL_CHANNELS:
                mine = [p for p in mine if p.channel_id == ALL_CHANNELS]
            wanted = Access("shared", "", "", (perm,)).grants(perm.channel_id)
            held = Access("shared", "", "", tuple(mine)).grants(perm.channel_id)
            for want in wanted:
                if not any(_holds(have, want) for have in held):
                    return False
        return True


@functools.lru_cache(maxsize=4096)
def _grants(permissions: tuple[ChannelPermission, ...], channel_id: str) -> tuple[Grant, ...]:
    found: list[Grant] = []
    for perm in permissions:
        if not perm.matches(channel_id):
            continue
        if perm.folders is None:
            found.append(Grant(True, None, perm.level, perm.filter))
            continue
        for grant in perm.folders:
            narrowed = grant.filter.both(perm.filter) if grant.filter else perm.filter
            found.append(Grant(False, grant.folder_id, grant.level, narrowed))
    return tuple(found)


def _holds(have: Grant, want: Grant) -> bool:
    if have.level < want.level:
        return False
    if not have.whole and (want.whole or have.folder_id != want.folder_id):
        return False
    if have.filter is None:
        return True
    return want.filter is not None and want.filter.within(have.filter)
