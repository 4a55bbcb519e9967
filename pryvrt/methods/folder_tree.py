"""A channel's folder tree in memory, and what a credential reaches in it (API.md §5, §7).

Channels hold at most a few thousand folders, so a call loads the whole tree once and
answers every ancestry, subtree and permission question from memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pryvrt import errors
from pryvrt.auth.permissions import Access, Level
from pryvrt.storage.folders import Folder


class FolderTree:
    """The folders of one channel, any state; children keep the store's name order."""

    def __init__(self, folders: Sequence[Folder]) -> None:
        self.by_id: dict[str, Folder] = {f.id: f for f in folders}
        self.children: dict[str | None, list[Folder]] = {}
        for folder in folders:
            self.children.setdefault(folder.parent_id, []).append(folder)

    def get(self, folder_id: str) -> Folder | None:
        return self.by_id.get(folder_id)

    def ancestors(self, folder_id: str) -> list[str]:
        """Ids from the parent up to the root level."""
        path: list[str] = []
        folder = self.by_id.get(folder_id)
        while folder is not None and folder.parent_id is not None:
            if folder.parent_id in path:  # a cycle would be a bug: never loop forever
                break
            path.append(folder.parent_id)
            folder = self.by_id.get(folder.parent_id)
        return path

    def subtree(self, folder_id: str) -> list[str]:
        """The folder's id and the ids of all its descendants."""
        result = [folder_id]
        seen = {folder_id}
        for current in result:  # grows while iterating: a breadth-first walk
            for child in self.children.get(current, ()):
                if child.id not in seen:  # a cycle would be a bug: never loop forever
                    seen.add(child.id)
                    result.append(child.id)
        return result

    def subtrees(self, folder_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for folder_id in folder_ids:
            if folder_id not in found:
                found.update(self.subtree(folder_id))
        return found

    def path(self, folder_id: str) -> list[Folder]:
        """The folder and its ancestors."""
        ids = [folder_id, *self.ancestors(folder_id)]
        return [self.by_id[i] for i in ids if i in self.by_id]

    def trashed_in_path(self, folder_id: str) -> bool:
        """True when the folder or one of its ancestors is in the trash."""
        return any(f.trashed for f in self.path(folder_id))

    def hidden_in_path(self, folder_id: str) -> bool:
        return any(f.hidden for f in self.path(folder_id))


def level_on(
    access: Access, channel_id: str, tree: FolderTree, folder_id: str | None
) -> Level | None:
    """The credential's level on a folder (``None``: the events with no folder)."""
    if access.is_full:
        return Level.MANAGE
    ancestors = tree.ancestors(folder_id) if folder_id is not None else ()
    return access.folder_level(channel_id, folder_id, ancestors)


def require_level(
    access: Access, channel_id: str, tree: FolderTree, folder_id: str | None, level: Level
) -> None:
    """403 FORBIDDEN unless the credential holds ``level`` on that folder. The message never
    names the folder: when the caller named an event, its folder may be out of its sight."""
    held = level_on(access, channel_id, tree, folder_id)
    if held is None or held < level:
        where = "the events with no folder" if folder_id is None else "this folder"
        raise errors.Forbidden(f"this credential has no {level.api_name} permission on {where}")


def require_root_level(access: Access, channel_id: str, level: Level) -> None:
    """Root-level folders belong to the channel as a whole: a channel-wide grant is needed."""
    held = access.channel_level(channel_id)
    if held is None or held < level:
        raise errors.Forbidden(
            f"root-level folders need {level.api_name} permission on the whole channel"
        )


def readable_folders(access: Access, channel_id: str, tree: FolderTree) -> set[str] | None:
    """The folders a folder-restricted credential can read; ``None`` when it reads them all."""
    if not access.is_folder_restricted(channel_id):
        return None
    return {f for f in tree.by_id if level_on(access, channel_id, tree, f) is not None}


def check_folder_refs(tree: FolderTree, folder_ids: Iterable[str]) -> None:
    """400 UNKNOWN_FOLDER naming every id in a body or query that is not a folder here."""
    unknown = sorted({f for f in folder_ids if f not in tree.by_id})
    if unknown:
        raise errors.UnknownFolderParam(
            f"unknown folder{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            {"unknownIds": unknown},
        )
