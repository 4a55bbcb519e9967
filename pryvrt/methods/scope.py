"""What a channel method declares it works on, and how ``registry.call`` opens it.

A channel method declares a ``Need``: the level it needs, on which ``Target`` (the whole
channel, anything in it, the folder a parameter names, the addressed event...), the
channel lock it takes, whether it writes in a transaction, and whether it needs the
folder tree. ``open_scope`` then does, once and in this order, what every handler used to
repeat, inside the transaction ``registry.call`` opened for it: it locks the channel row,
loads the tree, finds the addressed item and checks the level on the declared target. The handler gets it all in
``ctx.scope`` (connection, channel, tree, addressed event or folder) and keeps only its
own rules.

Before the scope opens, a credential that holds the level nowhere in the channel is
refused at once (``FORBIDDEN``): the declared check, answered with what is known before
anything is read, so that the answer never tells whether the addressed item exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from pryvrt import errors
from pryvrt.auth.permissions import Access, Level
from pryvrt.methods.folder_tree import (
    FolderTree,
    check_folder_refs,
    require_level,
    require_root_level,
)
from pryvrt.methods.locking import lock_channel
from pryvrt.methods.visibility import require_event_level

if TYPE_CHECKING:
    import asyncpg

    from pryvrt.methods.context import CallContext
    from pryvrt.storage.channels import Channel
    from pryvrt.storage.events import Event
    from pryvrt.storage.folders import Folder


class Lock(Enum):
    """The channel row lock a method takes (see ``locking``)."""

    NONE = "none"
    SHARE = "share"  # writes that cannot touch periods: in parallel with each other
    EXCLUSIVE = "exclusive"  # period rules, folder moves and deletes


class Reach(Enum):
    """Where the declared level must be held."""

    CHANNEL = "the whole channel"  # a channel-wide grant (folder grants do not count)
    ANYWHERE = "something in the channel"  # lists: the answer is filtered to what is held
    FOLDER = "the folder a parameter names"
    FOLDERS = "each folder a list parameter names"
    ITEMS = "the folder of each item of a list parameter"
    EVENT = "the addressed event's folder"


class IfNone(Enum):
    """What a folder parameter left out (or null) addresses."""

    NO_FOLDER = "the events with no folder"
    ROOT = "the root level: the whole channel"
    ANYWHERE = "nothing in particular: the channel as the credential sees it"
    MISSING = "nothing: the parameter is required (MISSING_FOLDER)"


@dataclass(frozen=True, slots=True)
class Target:
    reach: Reach
    # The parameter naming the folder / event / list of items.
    param: str | None = None
    if_none: IfNone = IfNone.NO_FOLDER
    # A folder that is the call's item answers 404 UNKNOWN_FOLDER when missing; a folder
    # merely referred to answers 400 UNKNOWN_FOLDER naming it.
    addressed: bool = False
    # ITEMS: the field of each item holding its folder, and the one naming it in errors.
    item_field: str = "folderId"
    item_label: str = "clientId"
    # EVENT: row-lock the event (when the channel is not locked); find it when the
    # parameter is left out (``None``: nothing to act on, no check).
    for_update: bool = False
    locate: Callable[[CallContext, Scope, Any], Awaitable[Event | None]] | None = None


def whole_channel() -> Target:
    return Target(Reach.CHANNEL)


def anywhere() -> Target:
    return Target(Reach.ANYWHERE)


def at_folder(param: str, if_none: IfNone = IfNone.NO_FOLDER, *, addressed: bool = False) -> Target:
    return Target(Reach.FOLDER, param, if_none, addressed)


def at_folders(param: str) -> Target:
    return Target(Reach.FOLDERS, param, IfNone.ANYWHERE)


def at_items(param: str, item_field: str = "folderId", item_label: str = "clientId") -> Target:
    return Target(Reach.ITEMS, param, item_field=item_field, item_label=item_label)


def at_event(
    param: str = "id",
    *,
    for_update: bool = False,
    locate: Callable[[CallContext, Scope, Any], Awaitable[Event | None]] | None = None,
) -> Target:
    return Target(Reach.EVENT, param, for_update=for_update, locate=locate)


@dataclass(frozen=True, slots=True)
class Need:
    """What a channel method needs; see the module docstring."""

    level: Level
    target: Target
    # The lock, or a function of the params and the call (events.create: marks, periods).
    lock: Lock | Callable[[Any, CallContext], Lock] = Lock.NONE
    # Run in a transaction (implied by a lock).
    transaction: bool = False
    # Load the tree even when the target check does not need it (the handler uses it).
    tree: bool = False
    # The rows the transaction writes (a function of the params and the call: a large
    # batch runs on a bulk connection, see ``Storage.transaction``).
    rows: Callable[[Any, CallContext], int] | None = None
    # Answers and errors name items filtered to what the credential reads (events a
    # period rule met): the tree is loaded for a credential with folder grants.
    filtered: bool = False
    # A folder the call moves its item to (checked at the same level when the parameter is
    # given and differs from the item's current folder or parent).
    moves_to: Target | None = None

    def lock_for(self, p: Any, ctx: CallContext) -> Lock:
        return self.lock(p, ctx) if callable(self.lock) else self.lock

    def rows_for(self, p: Any, ctx: CallContext) -> int:
        return 1 if self.rows is None else self.rows(p, ctx)

    def in_transaction(self, lock: Lock) -> bool:
        return self.transaction or lock is not Lock.NONE

    def implied_errors(self) -> tuple[str, ...]:
        """The error ids ``open_scope`` may answer with."""
        found = ["UNKNOWN_CHANNEL", "FORBIDDEN"]
        for target in (self.target, self.moves_to):
            if target is None:
                continue
            if target.reach in (Reach.FOLDER, Reach.FOLDERS, Reach.ITEMS):
                found.append("UNKNOWN_FOLDER")
            if target.reach is Reach.EVENT:
                found.append("UNKNOWN_EVENT")
            if target.if_none is IfNone.MISSING:
                found.append("MISSING_FOLDER")
        return tuple(dict.fromkeys(found))


@dataclass(eq=False, slots=True)
class Scope:
    """What ``open_scope`` hands the handler (``ctx.scope``)."""

    channel: Channel
    # The transaction's connection (None: the method runs without one).
    conn: asyncpg.Connection | None = None
    tree: FolderTree = field(default_factory=lambda: FolderTree(()))
    # The addressed item, when the target names one.
    event: Event | None = None
    folder: Folder | None = None


def refuse_early(access: Access, channel_id: str, level: Level) -> None:
    """The declared check before anything is read: the level held nowhere → FORBIDDEN."""
    best = access.best_level_in(channel_id)
    if best is None or best < level:
        raise errors.Forbidden(f"this credential has no {level.api_name} permission here")


def _needs_tree(need: Need, p: Any, access: Access, channel_id: str) -> bool:
    if need.tree or need.moves_to is not None:
        return True
    target = need.target
    if target.reach in (Reach.EVENT, Reach.ITEMS):
        return True
    if target.reach in (Reach.FOLDER, Reach.FOLDERS) and getattr(p, target.param or ""):
        return True
    # Lists and filtered answers: what a credential with folder grants reads.
    anywhere = target.reach is Reach.ANYWHERE or target.if_none is IfNone.ANYWHERE
    return (anywhere or need.filtered) and access.has_folder_grants(channel_id)


def _check_folder(
    access: Access, scope: Scope, target: Target, folder_id: str | None, level: Level
) -> None:
    channel_id = scope.channel.id
    if folder_id is None:
        if target.if_none is IfNone.NO_FOLDER:
            require_level(access, channel_id, scope.tree, None, level)
        elif target.if_none is IfNone.ROOT:
            require_root_level(access, channel_id, level)
        elif target.if_none is IfNone.MISSING:
            raise errors.MissingFolder(f"{target.param} is required")
        return
    if target.addressed:
        if scope.tree.get(folder_id) is None:
            raise errors.UnknownFolder(f"unknown folder {folder_id!r}")
    else:
        check_folder_refs(scope.tree, [folder_id])
    require_level(access, channel_id, scope.tree, folder_id, level)


async def _check_target(ctx: CallContext, scope: Scope, need: Need, p: Any) -> None:
    access = ctx.require_access()
    target, level = need.target, need.level
    value = getattr(p, target.param) if target.param else None
    if target.reach is Reach.CHANNEL:
        held = access.channel_level(scope.channel.id)
        if held is None or held < level:
            raise errors.Forbidden(f"this needs {level.api_name} permission on the whole channel")
    elif target.reach is Reach.FOLDER:
        _check_folder(access, scope, target, value, level)
        scope.folder = None if value is None else scope.tree.get(value)
    elif target.reach is Reach.FOLDERS:
        if value:
            check_folder_refs(scope.tree, value)
            for folder_id in value:
                require_level(access, scope.channel.id, scope.tree, folder_id, level)
    elif target.reach is Reach.ITEMS:
        for item in value or ():
            try:
                _check_folder(access, scope, target, getattr(item, target.item_field), level)
            except errors.ApiError as exc:
                exc.data = {**(exc.data or {}), target.item_label: getattr(item, target.item_label)}
                raise
    elif target.reach is Reach.EVENT:
        found = None
        if value is not None:
            found = await ctx.storage.events.get(
                ctx.user_id,
                scope.channel.id,
                value,
                scope.conn,
                for_update=target.for_update and scope.conn is not None,
            )
            if found is None:
                raise errors.UnknownEvent(f"unknown event {value!r}")
        elif target.locate is not None:
            found = await target.locate(ctx, scope, p)
        if found is not None:
            # Its folder and the filters of narrowed grants (API.md §14), with one answer.
            require_event_level(access, scope.channel.id, scope.tree, found, level)
        scope.event = found
    destination = need.moves_to
    if destination is not None and destination.param in p.model_fields_set:
        to = getattr(p, destination.param or "")
        if scope.event is not None:
            current = scope.event.folder_id
        else:
            current = None if scope.folder is None else scope.folder.parent_id
        if to != current:
            _check_folder(access, scope, destination, to, level)


async def open_scope(
    ctx: CallContext, need: Need, p: Any, lock: Lock, conn: asyncpg.Connection | None
) -> Scope:
    """Lock, tree, addressed item, level check, inside the call's transaction ``conn``
    (``registry.call`` opens it when ``Need.in_transaction``): see the module docstring.
    ``ctx.channel`` is the channel as last read (cached); ``registry.call`` read it."""
    access = ctx.require_access()
    channel = ctx.require_channel()
    if lock is not Lock.NONE:
        channel = await lock_channel(ctx, conn, exclusive=lock is Lock.EXCLUSIVE)
    scope = Scope(channel, conn)
    if _needs_tree(need, p, access, channel.id):
        scope.tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, channel.id, conn))
    await _check_target(ctx, scope, need, p)
    return scope
