"""A channel's folder tree in memory, and what a credential reaches in it (API.md §5, §7).

A call loads the channel's folders once and answers every ancestry, subtree and permission
question from memory. Every question about all the folders (trash and hidden state,
levels, depths) is answered by one pass from the root level down, parents before
children: linear in the number of folders whatever the shape of the tree. Depth and the
number of folders are bounded by settings (``PRYVRT_MAX_FOLDER_DEPTH``,
``PRYVRT_MAX_FOLDERS_PER_CHANNEL``), checked by the folder writes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from pryvrt import errors
from pryvrt.auth.permissions import Access, Level
from pryvrt.storage.folders import Folder


class FolderTree:
    """The folders of one channel, any state; children keep the store's name order."""

    def __init__(self, folders: Sequence[Folder]) -> None:
        self.folders = folders
        self.by_id: dict[str, Folder] = {f.id: f for f in folders}
        self.children: dict[str | None, list[Folder]] = {}
        for folder in folders:
            self.children.setdefault(folder.parent_id, []).append(folder)
        self._trashed: dict[str, bool] = {}
        self._hidden: dict[str, bool] = {}
        # The levels of one credential (calls use one): its folders so far, and whether all.
        self._levels: tuple[Access, str, dict[str, Level | None]] | None = None
        self._all_levels = False

    @functools.cached_property
    def _walk(self) -> tuple[list[Folder], dict[str, int]]:
        """Every folder, parents before children, and its depth (1 = root level). A folder
        whose parent is missing, or a cycle (a bug: the writes refuse it), is taken as a
        root: never loop forever."""
        order: list[Folder] = []
        depth: dict[str, int] = {}
        roots = [f for f in self.folders if f.parent_id is None or f.parent_id not in self.by_id]
        for start in [*roots, *self.folders]:
            if start.id in depth:
                continue
            depth[start.id] = 1
            index = len(order)
            order.append(start)
            while index < len(order):  # grows while walking: breadth first
                folder = order[index]
                index += 1
                below = depth[folder.id] + 1
                for child in self.children.get(folder.id, ()):
                    if child.id not in depth:
                        depth[child.id] = below
                        order.append(child)
        return order, depth

    @property
    def order(self) -> list[Folder]:
        """Every folder, parents before children (computed once, on first use)."""
        return self._walk[0]

    @property
    def depth(self) -> dict[str, int]:
        """Each folder's depth, 1 for the root level (computed once, on first use)."""
        return self._walk[1]

    def get(self, folder_id: str) -> Folder | None:
        return self.by_id.get(folder_id)

    def ancestors(self, folder_id: str) -> list[str]:
        """Ids from the parent up to the root level."""
        path: list[str] = []
        folder = self.by_id.get(folder_id)
        for _ in range(len(self.by_id)):  # a cycle (a bug) ends here
            if folder is None or folder.parent_id is None or folder.parent_id == folder_id:
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
        depth = self.depth
        top = depth.get(folder_id, 1)
        return max(depth.get(f, top) for f in self.subtree(folder_id)) - top + 1

    def _in_path(self, folder_id: str, flag: str, known: dict[str, bool]) -> bool:
        """Whether ``flag`` is set on the folder or an ancestor. Each folder's answer is
        kept: one question costs its path, all of them together one pass over the tree."""
        path: list[str] = []
        found = False
        current: str | None = folder_id
        while current is not None and len(path) <= len(self.by_id):
            if current in known:
                found = known[current]
                break
            folder = self.by_id.get(current)
            if folder is None:
                break
            path.append(current)
            if getattr(folder, flag):
                found = True
                break
            current = folder.parent_id
        for passed in path:
            known[passed] = found
        return found

    def trashed_in_path(self, folder_id: str) -> bool:
        """True when the folder or one of its ancestors is in the trash."""
        return self._in_path(folder_id, "trashed", self._trashed)

    def hidden_in_path(self, folder_id: str) -> bool:
        return self._in_path(folder_id, "hidden", self._hidden)

    def _known_levels(self, access: Access, channel_id: str) -> dict[str, Level | None]:
        cached = self._levels
        if cached is None or cached[0] is not access or cached[1] != channel_id:
            cached = self._levels = (access, channel_id, {})
            self._all_levels = False
        return cached[2]

    def level(self, access: Access, channel_id: str, folder_id: str) -> Level | None:
        """The credential's level on one folder: the highest granted along its path."""
        known = self._known_levels(access, channel_id)
        if folder_id not in known:
            ancestors = self.ancestors(folder_id)
            known[folder_id] = access.folder_level(channel_id, folder_id, ancestors)
        return known[folder_id]

    def levels(self, access: Access, channel_id: str) -> dict[str, Level | None]:
        """The credential's level on every folder, in one pass from the root level."""
        known = self._known_levels(access, channel_id)
        if not self._all_levels:
            for folder in self.order:
                own = access.folder_level(channel_id, folder.id)  # channel's or direct grant
                parent = folder.parent_id
                above = known.get(parent) if parent is not None and parent != folder.id else None
                known[folder.id] = (
                    above if own is None or (above is not None and above > own) else own
                )
            self._all_levels = True
        return known


def level_on(
    access: Access, channel_id: str, tree: FolderTree, folder_id: str | None
) -> Level | None:
    """The credential's level on a folder (``None``: the events with no folder)."""
    if access.is_full:
        return Level.MANAGE
    if folder_id is None or folder_id not in tree.by_id:
        return access.folder_level(channel_id, folder_id)
    return tree.level(access, channel_id, folder_id)


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
