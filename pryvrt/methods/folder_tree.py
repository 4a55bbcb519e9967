"""A channel's folder tree in memory, and what a credential reaches in it (API.md §5, §7).

A call loads the channel's folders once and answers every ancestry, subtree and permission
question from memory. Every question about all the folders (trash and hidden state,
levels, depths) is answered by one pass from the root level down, parents before
children: linear in the number of folders whatever the shape of the tree. Depth and the
number of folders are bounded by settings (``PRYVRT_MAX_FOLDER_DEPTH``,
``PRYVRT_MAX_FOLDERS_PER_CHANNEL``), checked by the folder writes.
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
        # Parents before children; depth 1 = root level. A folder whose parent is missing,
        # or a cycle (a bug: the writes refuse it), is taken as a root: never loop forever.
        self.order: list[Folder] = []
        self.depth: dict[str, int] = {}
        roots = [f for f in folders if f.parent_id is None or f.parent_id not in self.by_id]
        self._walk(roots)
        if len(self.order) < len(self.by_id):
            self._walk([f for f in folders if f.id not in self.depth])
        self._trashed: set[str] | None = None
        self._hidden: set[str] | None = None
        self._levels: tuple[Access, str, dict[str, Level | None]] | None = None

    def _walk(self, starts: Iterable[Folder]) -> None:
        for start in starts:
            if start.id in self.depth:
                continue
            self.depth[start.id] = 1
            index = len(self.order)
            self.order.append(start)
            while index < len(self.order):  # grows while walking: breadth first
                folder = self.order[index]
                index += 1
                below = self.depth[folder.id] + 1
                for child in self.children.get(folder.id, ()):
                    if child.id not in self.depth:
                        self.depth[child.id] = below
                        self.order.append(child)

    def get(self, folder_id: str) -> Folder | None:
        return self.by_id.get(folder_id)

    def ancestors(self, folder_id: str) -> list[str]:
        """Ids from the parent up to the root level."""
        path: list[str] = []
        folder = self.by_id.get(folder_id)
        for _ in range(self.depth.get(folder_id, 1) - 1):  # depth bounds the walk: no cycle
            if folder is None or folder.parent_id is None:
                break
            path.append(folder.parent_id)
            folder = self.by_id.get(folder.parent_id)
        return path

    def subtree(self, folder_id: str) -> list[str]:
        """The folder's id and the ids of all its descendants, breadth first."""
        return self._below([folder_id], set())

    def subtrees(self, folder_ids: Iterable[str]) -> set[str]:
        """The folders and all their descendants (each folder visited once)."""
        seen: set[str] = set()
        for folder_id in folder_ids:
            if folder_id not in seen:
                self._below([folder_id], seen)
        return seen

    def _below(self, result: list[str], seen: set[str]) -> list[str]:
        seen.update(result)
        for current in result:  # grows while iterating: a breadth-first walk
            for child in self.children.get(current, ()):
                if child.id not in seen:
                    seen.add(child.id)
                    result.append(child.id)
        return result

    def height(self, folder_id: str) -> int:
        """Levels of the folder's subtree: 1 for a folder with no children."""
        top = self.depth.get(folder_id, 1)
        return max(self.depth.get(f, top) for f in self.subtree(folder_id)) - top + 1

    def _inherited(self, flag: str) -> set[str]:
        """Folders where ``flag`` is set on the folder or on one of its ancestors."""
        found: set[str] = set()
        for folder in self.order:
            if getattr(folder, flag) or folder.parent_id in found:
                found.add(folder.id)
        return found

    def trashed_in_path(self, folder_id: str) -> bool:
        """True when the folder or one of its ancestors is in the trash."""
        if self._trashed is None:
            self._trashed = self._inherited("trashed")
        return folder_id in self._trashed

    def hidden_in_path(self, folder_id: str) -> bool:
        if self._hidden is None:
            self._hidden = self._inherited("hidden")
        return folder_id in self._hidden

    def levels(self, access: Access, channel_id: str) -> dict[str, Level | None]:
        """The credential's level on every folder (the highest along its path), computed
        once per tree and credential."""
        cached = self._levels
        if cached is not None and cached[0] is access and cached[1] == channel_id:
            return cached[2]
        levels: dict[str, Level | None] = {}
        for folder in self.order:
            own = access.folder_level(channel_id, folder.id)  # the channel's or a direct grant
            above = levels.get(folder.parent_id) if folder.parent_id is not None else None
            levels[folder.id] = above if own is None or (above is not None and above > own) else own
        self._levels = (access, channel_id, levels)
        return levels


def level_on(
    access: Access, channel_id: str, tree: FolderTree, folder_id: str | None
) -> Level | None:
    """The credential's level on a folder (``None``: the events with no folder)."""
    if access.is_full:
        return Level.MANAGE
    if folder_id is None or folder_id not in tree.by_id:
        return access.folder_level(channel_id, folder_id)
    return tree.levels(access, channel_id)[folder_id]


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
    return {f for f, level in tree.levels(access, channel_id).items() if level is not None}


def check_folder_refs(tree: FolderTree, folder_ids: Iterable[str]) -> None:
    """400 UNKNOWN_FOLDER naming every id in a body or query that is not a folder here."""
    unknown = sorted({f for f in folder_ids if f not in tree.by_id})
    if unknown:
        raise errors.UnknownFolderParam(
            f"unknown folder{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            {"unknownIds": unknown},
        )
