"""The permission model of API.md §7, as data.

A credential is an ``Access``: a session or personal token (full access), or a shared/app
token holding ``ChannelPermission``s. A channel permission either covers the whole channel
(no ``folders``), or only some folders and their descendants (``folders``), where a folder
id of ``None`` stands for the events with no folder. A folder inherits its ancestors'
levels; when several permissions reach an item, the highest level wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
class FolderPermission:
    folder_id: str | None
    level: Level


@dataclass(frozen=True, slots=True)
class ChannelPermission:
    channel_id: str
    level: Level
    folders: tuple[FolderPermission, ...] | None = None

    def matches(self, channel_id: str) -> bool:
        return self.channel_id == ALL_CHANNELS or self.channel_id == channel_id


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
                    FolderPermission(f.get("folderId"), Level.parse(f["level"])) for f in folders
                ),
            )
        )
    return tuple(result)


FULL_ACCESS_KINDS = frozenset({"session", "personal"})


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
        """True when this access holds at least everything ``other`` grants (§7 rule)."""
        if self.is_full:
            return True
        if other.is_full:
            return False
        for perm in other.permissions:
            if perm.folders is None:
                if perm.channel_id == ALL_CHANNELS:
                    mine = [
                        p.level
                        for p in self.permissions
                        if p.channel_id == ALL_CHANNELS and p.folders is None
                    ]
                    if not mine or max(mine) < perm.level:
                        return False
                else:
                    level = self.channel_level(perm.channel_id)
                    if level is None or level < perm.level:
                        return False
            else:
                for grant in perm.folders:
                    # Ancestors are unknown here: only direct grants and channel grants count.
                    level = self.folder_level(perm.channel_id, grant.folder_id)
                    if level is None or level < grant.level:
                        return False
        return True
