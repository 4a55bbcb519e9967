"""folders.get / create / update / move / delete (API.md §5, permissions §7).

Folder writes need ``manage`` on the folder (root-level folders: on the whole channel) and
run under the channel's row lock (see ``locking``), so moves and deletes see a stable tree.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from pydantic import Field

from pryvrt import errors
from pryvrt.auth.permissions import Level
from pryvrt.ids import new_id
from pryvrt.methods.channels import name_conflict
from pryvrt.methods.context import CallContext
from pryvrt.methods.folder_tree import (
    FolderTree,
    level_on,
    readable_folders,
)
from pryvrt.methods.locking import refuse_trashed_channel, trashed_folder
from pryvrt.methods.params import (
    ChannelParams,
    ClientData,
    ItemRef,
    Name,
    NewItemId,
    State,
    Timestamp,
    merge_client_data,
)
from pryvrt.methods.registry import method
from pryvrt.methods.scope import IfNone, Lock, Need, at_folder
from pryvrt.methods.visibility import visible
from pryvrt.notify.messages import EVENTS_CHANGED, FOLDERS_CHANGED
from pryvrt.storage.base import Conflict
from pryvrt.storage.events import seconds
from pryvrt.storage.folders import Folder


class GetParams(ChannelParams):
    parentId: ItemRef | None = None
    includeHidden: bool = False
    state: State = "default"
    timeCountBase: Timestamp | None = None


@method(
    "folders.get",
    GetParams,
    need=Need(Level.READ, at_folder("parentId", IfNone.ANYWHERE, addressed=True), tree=True),
)
async def get(ctx: CallContext, p: GetParams) -> list[dict[str, Any]]:
    """The folder tree (from the root, or below ``parentId``), sorted by name at every level.

    A folder is shown when the credential reaches it, its state matches (a folder counts
    as trashed when it or an ancestor is: ``trashed`` shows what ``default`` hides) and,
    unless ``includeHidden``, neither it nor an ancestor is hidden. A shown folder whose
    parent is not shown appears at the top level of the answer, with its ``parentId``.
    """
    access = ctx.require_access()
    tree = ctx.require_scope().tree
    folders = tree.folders
    below: set[str] | None = None
    if p.parentId is not None:
        below = set(tree.subtree(p.parentId)) - {p.parentId}
    readable = readable_folders(access, p.channelId, tree)

    def is_shown(folder: Folder) -> bool:
        if below is not None and folder.id not in below:
            return False
        if readable is not None and folder.id not in readable:
            return False
        if p.state != "all" and tree.trashed_in_path(folder.id) != (p.state == "trashed"):
            return False
        return p.includeHidden or not tree.hidden_in_path(folder.id)

    visible = {f.id for f in folders if is_shown(f)}
    counts: dict[str, float] | None = None
    if p.timeCountBase is not None:
        counts = await time_counts(ctx, tree, p.channelId, p.timeCountBase)

    # No recursion (trees may be deep). The answer nests at most PRYVRT_MAX_FOLDER_DEPTH
    # levels: a deeper folder (stored before the limit, or before it was lowered) appears
    # at the top level with its parentId, like a folder whose parent is not shown, so that
    # every answer can be encoded. Nesting is decided parents first (the tree's order)...
    max_depth = ctx.settings.max_folder_depth
    nesting: dict[str, int] = {}
    for folder in tree.order:
        if folder.id in visible:
            above = nesting.get(folder.parent_id, max_depth) if folder.parent_id else max_depth
            nesting[folder.id] = 1 if above >= max_depth else above + 1
    # ... then folders come sorted by name: appending each node to its parent's children
    # in that order sorts every level.
    shown = [f for f in folders if f.id in visible]
    nodes = {f.id: {**f.to_api(), "children": []} for f in shown}
    top: list[dict[str, Any]] = []
    for folder in shown:
        node = nodes[folder.id]
        if counts is not None:
            node["timeCount"] = seconds(counts.get(folder.id, 0.0))
        if nesting[folder.id] == 1:
            top.append(node)
        else:
            nodes[folder.parent_id]["children"].append(node)  # type: ignore[index]
    return top


async def time_counts(
    ctx: CallContext, tree: FolderTree, channel_id: str, since: float
) -> dict[str, float]:
    """Per folder: seconds of its own periods plus those of all its descendants."""
    seen = visible(ctx.require_access(), channel_id, tree)
    own = await ctx.storage.folders.period_seconds(
        ctx.user_id, channel_id, since, time.time(), seen
    )
    totals: dict[str, float] = {}
    # Children before parents: walk the breadth-first order of each root backwards.
    for root in tree.children.get(None, []):
        for folder_id in reversed(tree.subtree(root.id)):
            children = tree.children.get(folder_id, ())
            totals[folder_id] = own.get(folder_id, 0.0) + sum(totals[c.id] for c in children)
    return totals


class CreateParams(ChannelParams):
    id: NewItemId | None = None
    name: Name
    parentId: ItemRef | None = None
    hidden: bool = False
    clientData: ClientData = Field(default_factory=dict)


# The parent of a new or moved folder: root-level folders belong to the whole channel.
PARENT = at_folder("parentId", IfNone.ROOT)


@method(
    "folders.create",
    CreateParams,
    need=Need(Level.MANAGE, PARENT, lock=Lock.EXCLUSIVE, tree=True),
    errors=(
        "ITEM_NAME_ALREADY_EXISTS",
        "ITEM_ID_ALREADY_EXISTS",
        "INVALID_ITEM_ID",
        "INVALID_OPERATION",
    ),
)
async def create(ctx: CallContext, p: CreateParams) -> dict[str, Any]:
    """Create a folder at the root or under ``parentId`` (path or body)."""
    scope = ctx.require_scope()
    channel, conn, tree = scope.channel, scope.conn, scope.tree
    refuse_trashed_channel(channel)
    if p.parentId is not None and tree.trashed_in_path(p.parentId):
        raise trashed_folder(p.parentId)
    check_bounds(ctx, tree, p.parentId, height=1, added=1)
    now = time.time()
    created = Folder(
        id=p.id or new_id(),
        channel_id=channel.id,
        name=p.name,
        parent_id=p.parentId,
        hidden=p.hidden,
        client_data=merge_client_data({}, p.clientData),
        trashed=False,
        modified=now,
        created=now,
        created_by=ctx.writer,
        modified_by=ctx.writer,
    )
    try:
        await ctx.storage.folders.create(conn, ctx.user_id, created)
    except Conflict as exc:
        raise name_conflict(exc, "folder") from None
    ctx.notify(FOLDERS_CHANGED, channel.id)
    return {"id": created.id}


def check_bounds(
    ctx: CallContext, tree: FolderTree, parent_id: str | None, *, height: int, added: int
) -> None:
    """400 INVALID_OPERATION when placing ``height`` levels of folders under ``parent_id``
    would nest deeper than PRYVRT_MAX_FOLDER_DEPTH, or ``added`` new folders would exceed
    PRYVRT_MAX_FOLDERS_PER_CHANNEL. Both keep every call on the tree short, and its
    answer encodable (JSON nesting)."""
    max_depth = ctx.settings.max_folder_depth
    depth = (tree.depth.get(parent_id, 1) if parent_id is not None else 0) + height
    if depth > max_depth:
        raise errors.InvalidOperation(
            f"folders nest at most {max_depth} levels deep (PRYVRT_MAX_FOLDER_DEPTH);"
            f" this would make {depth}",
            {"maxFolderDepth": max_depth, "depth": depth},
        )
    max_folders = ctx.settings.max_folders_per_channel
    if added and len(tree.by_id) + added > max_folders:
        raise errors.InvalidOperation(
            f"a channel holds at most {max_folders} folders (PRYVRT_MAX_FOLDERS_PER_CHANNEL)",
            {"maxFoldersPerChannel": max_folders},
        )


def check_move(ctx: CallContext, tree: FolderTree, moved: Folder, to: str | None) -> None:
    """The folder is not moved inside itself, and its subtree fits under the new parent
    (depth limit). (That the parent exists and is managed: ``open_scope``, ``moves_to``.)"""
    if to is not None and (to == moved.id or moved.id in tree.ancestors(to)):
        raise errors.InvalidOperation(
            "a folder cannot move under itself or one of its descendants",
            {"folderId": moved.id, "parentId": to},
        )
    check_bounds(ctx, tree, to, height=tree.height(moved.id), added=0)


class UpdateParams(ChannelParams):
    id: ItemRef
    name: Name | None = None
    parentId: ItemRef | None = None
    hidden: bool | None = None
    clientData: ClientData | None = None
    trashed: bool | None = None


FOLDER_WRITE_ERRORS = ("ITEM_NAME_ALREADY_EXISTS", "INVALID_OPERATION")
# The addressed folder (404 when missing), moved under PARENT when ``parentId`` is given.
EDIT = Need(
    Level.MANAGE,
    at_folder("id", addressed=True),
    lock=Lock.EXCLUSIVE,
    tree=True,
    moves_to=PARENT,
)


async def _edit(ctx: CallContext, p: UpdateParams | MoveParams) -> None:
    """Shared by update and move: check the move, write."""
    scope = ctx.require_scope()
    current = scope.folder
    assert current is not None
    changed = replace(current, modified=time.time(), modified_by=ctx.writer)
    if "parentId" in p.model_fields_set and p.parentId != current.parent_id:
        check_move(ctx, scope.tree, current, p.parentId)
        changed = replace(changed, parent_id=p.parentId)
    if isinstance(p, UpdateParams):
        if p.clientData is not None:
            changed = replace(
                changed, client_data=merge_client_data(current.client_data, p.clientData)
            )
        changed = replace(
            changed,
            name=current.name if p.name is None else p.name,
            hidden=current.hidden if p.hidden is None else p.hidden,
            trashed=current.trashed if p.trashed is None else p.trashed,
        )
    try:
        await ctx.storage.folders.save(scope.conn, ctx.user_id, changed)
    except Conflict as exc:
        raise name_conflict(exc, "folder") from None
    ctx.notify(FOLDERS_CHANGED, scope.channel.id)


@method("folders.update", UpdateParams, need=EDIT, errors=FOLDER_WRITE_ERRORS)
async def update(ctx: CallContext, p: UpdateParams) -> dict[str, Any]:
    """Change a folder's fields (``clientData`` merged; ``parentId`` moves it; ``trashed:
    false`` restores it from the trash)."""
    await _edit(ctx, p)
    return {}


class MoveParams(ChannelParams):
    id: ItemRef
    parentId: ItemRef | None


@method("folders.move", MoveParams, need=EDIT, errors=FOLDER_WRITE_ERRORS)
async def move(ctx: CallContext, p: MoveParams) -> dict[str, Any]:
    """Move a folder under ``parentId`` (``null``: to the root level)."""
    await _edit(ctx, p)
    return {}


class DeleteParams(ChannelParams):
    id: ItemRef
    mergeEventsWithParent: bool | None = None


@method(
    "folders.delete",
    DeleteParams,
    need=Need(Level.MANAGE, at_folder("id", addressed=True), lock=Lock.EXCLUSIVE, tree=True),
    errors=("MISSING_PARAMETER", "FORBIDDEN"),
)
async def delete(ctx: CallContext, p: DeleteParams) -> dict[str, Any]:
    """Trash a folder; delete it for good with its descendants when already trashed.

    Deleting needs ``mergeEventsWithParent`` when events (any state) refer to the deleted
    folders: ``true`` hands them to the folder's parent (``null`` at the root level), which
    needs ``contribute`` there; ``false`` deletes them with their files. One transaction.
    """
    access = ctx.require_access()
    scope = ctx.require_scope()
    channel, conn, tree, doomed_folder = scope.channel, scope.conn, scope.tree, scope.folder
    assert doomed_folder is not None
    events_changed = False
    now = time.time()
    if not doomed_folder.trashed:
        await ctx.storage.folders.save(
            conn,
            ctx.user_id,
            replace(doomed_folder, trashed=True, modified=now, modified_by=ctx.writer),
        )
    else:
        doomed = tree.subtree(doomed_folder.id)
        events = ctx.storage.events
        if await events.count_in_folders(conn, ctx.user_id, channel.id, doomed):
            if p.mergeEventsWithParent is None:
                raise errors.MissingParameter(
                    "events refer to the deleted folders: say what to do with them"
                    " with mergeEventsWithParent=true|false",
                    {"missing": "mergeEventsWithParent"},
                )
            if p.mergeEventsWithParent:
                # A rule of this method: where the events go must take them.
                target = doomed_folder.parent_id
                # Through unfiltered grants: a filter cannot take events in bulk.
                held = level_on(access.unfiltered(), channel.id, tree, target)
                if held is None or held < Level.CONTRIBUTE:
                    raise errors.Forbidden("merging events needs contribute on the parent")
                await events.move_out_of_folders(
                    conn, ctx.user_id, channel.id, doomed, target, now, ctx.writer
                )
            else:
                await events.delete_in_folders(conn, ctx.user_id, channel.id, doomed)
            events_changed = True
        await ctx.storage.folders.delete(conn, ctx.user_id, channel.id, doomed)
    ctx.notify(FOLDERS_CHANGED, channel.id)
    if events_changed:
        ctx.notify(EVENTS_CHANGED, channel.id)
    return {}
