"""events.get / create / start / stop / getRunning / update / delete (API.md §6, §7).

Writes need ``contribute`` on the event's folder (``folderId: null``: on the events with
no folder). Writes of periods follow ``periods`` under the channel's row lock.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any

import orjson

from pryvrt import errors
from pryvrt.auth.permissions import Level
from pryvrt.ids import new_id
from pryvrt.methods.attachments import store_files, with_read_tokens
from pryvrt.methods.context import CallContext
from pryvrt.methods.event_fields import (
    Description,
    Duration,
    EventFields,
    EventTime,
    ValueForms,
    check_target_folder,
    event_for_write,
    new_event,
    unique_tags,
)
from pryvrt.methods.folder_tree import (
    FolderTree,
    check_folder_refs,
    level_on,
    readable_folders,
    require_level,
)
from pryvrt.methods.locking import lock_channel, refuse_trashed_channel
from pryvrt.methods.params import (
    ChannelParams,
    ClientData,
    Count,
    ItemRef,
    State,
    StrList,
    TagList,
    Timestamp,
    merge_client_data,
)
from pryvrt.methods.periods import place_period
from pryvrt.methods.registry import method
from pryvrt.methods.uploads import Upload, received_files
from pryvrt.notify.messages import EVENTS_CHANGED
from pryvrt.storage.base import Conflict
from pryvrt.storage.events import ChannelUnavailable, Event, EventQuery

DAY = 24 * 3600.0
DEFAULT_LIMIT = 20


class GetParams(ChannelParams):
    onlyFolders: StrList | None = None
    tags: TagList | None = None
    fromTime: Timestamp | None = None
    toTime: Timestamp | None = None
    state: State = "default"
    sortAscending: bool = False
    skip: Count = 0
    limit: Count | None = None
    modifiedSince: Timestamp | None = None


async def scope_query(ctx: CallContext, only_folders: list[str] | None) -> EventQuery:
    """The folder part of a query: what the credential reads, narrowed to ``only_folders``
    (each with its descendants). Filtering in SQL keeps ``skip``/``limit`` exact."""
    access = ctx.require_access()
    channel_id = ctx.require_channel().id
    restricted = access.is_folder_restricted(channel_id)
    if not only_folders and not restricted:
        return EventQuery()
    tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, channel_id))
    if only_folders:
        check_folder_refs(tree, only_folders)
        for folder_id in only_folders:
            require_level(access, channel_id, tree, folder_id, Level.READ)
        return EventQuery(folder_ids=sorted(tree.subtrees(only_folders)), no_folder=False)
    readable = readable_folders(access, channel_id, tree) or set()
    no_folder = level_on(access, channel_id, tree, None) is not None
    return EventQuery(folder_ids=sorted(readable), no_folder=no_folder)


@method(
    "events.get",
    GetParams,
    channel_level=Level.READ,
    errors=("UNKNOWN_CHANNEL", "UNKNOWN_FOLDER", "FORBIDDEN"),
)
async def get(ctx: CallContext, p: GetParams) -> list[dict[str, Any]] | orjson.Fragment:
    """Events overlapping a time window, newest first unless ``sortAscending``.

    No ``fromTime`` nor ``toTime``: no time bound and ``limit`` defaults to 20. Otherwise
    ``toTime`` defaults to now and ``fromTime`` to ``toTime`` - 24 h, and ``limit`` to
    the server's maximum. ``limit`` is capped at ``PRYVRT_MAX_EVENTS_LIMIT``.
    """
    scope = await scope_query(ctx, p.onlyFolders)
    cap = ctx.settings.max_events_limit
    from_time = to_time = None
    limit = p.limit
    if p.fromTime is None and p.toTime is None:
        limit = DEFAULT_LIMIT if limit is None else limit
    else:
        to_time = p.toTime if p.toTime is not None else time.time()
        from_time = p.fromTime if p.fromTime is not None else to_time - DAY
    query = replace(
        scope,
        from_time=from_time,
        to_time=to_time,
        tags=p.tags,
        state=p.state,
        modified_since=p.modifiedSince,
        ascending=p.sortAscending,
        skip=p.skip,
        limit=cap if limit is None else min(limit, cap),
    )
    if query.folder_ids == [] and not query.no_folder:
        return []
    # Pre-encoded: every transport serialises with orjson, which embeds a Fragment as is.
    found = await ctx.storage.events.query_json(ctx.user_id, p.channelId, query)
    return orjson.Fragment(with_read_tokens(ctx, found))


@method("events.getRunning", ChannelParams, channel_level=Level.READ)
async def get_running(ctx: CallContext, p: ChannelParams) -> orjson.Fragment:
    """The running periods the credential can read, latest first."""
    query = replace(await scope_query(ctx, None), running_only=True)
    found = await ctx.storage.events.query_json(ctx.user_id, p.channelId, query)
    return orjson.Fragment(with_read_tokens(ctx, found))


class CreateParams(EventFields, ChannelParams):
    duration: Duration | None = None


async def record(
    ctx: CallContext, fields: EventFields, *, is_period: bool, duration: float | None
) -> dict[str, Any]:
    """Record a new event under the channel's lock (exclusive for periods: ``periods``).

    Files sent with it (multipart) are received whole on disk first, before any transaction
    opens. A mark with no folder and no file needs nothing but the channel to be there and
    not trashed: it opens no transaction here, and the store's insert checks the channel
    under the same share lock in its own statement (the hot path: one round trip)."""
    if ctx.uploads is not None:  # multipart events.create: the files first, whole on disk
        async with received_files(ctx) as files:
            return await record_with(ctx, fields, is_period, duration, files)
    return await record_with(ctx, fields, is_period, duration, [])


async def record_with(
    ctx: CallContext,
    fields: EventFields,
    is_period: bool,
    duration: float | None,
    files: list[Upload],
) -> dict[str, Any]:
    """``record``, with the files already received (``files``)."""
    access = ctx.require_access()
    plain = not is_period and fields.folderId is None and ctx.uploads is None
    async with contextlib.AsyncExitStack() as stack:
        conn = None if plain else await stack.enter_async_context(ctx.storage.transaction())
        if conn is None:
            channel = ctx.require_channel()
            tree = FolderTree([])  # events with no folder need no tree (no ancestors)
        else:
            channel = await lock_channel(ctx, conn, exclusive=is_period)
            tree = FolderTree(
                []
                if fields.folderId is None
                else await ctx.storage.folders.list_all(ctx.user_id, channel.id, conn)
            )
        check_target_folder(access, channel.id, tree, fields.folderId)
        if conn is not None:
            refuse_trashed_channel(channel)
        # Read the clock once the lock is held: concurrent starts then get increasing times.
        now = time.time()
        at = now if fields.time is None else fields.time
        event = new_event(
            fields,
            fields.id or new_id(),
            channel.id,
            at=at,
            is_period=is_period,
            duration=duration,
            now=now,
        )
        stopped = None
        if is_period:
            assert conn is not None
            end = None if duration is None else at + duration
            stopped = await place_period(ctx, conn, channel, event.id, at, end, now)
        try:
            await ctx.storage.events.insert(ctx.user_id, event, conn)
        except Conflict:
            raise errors.ItemIdAlreadyExists("an event with this id already exists") from None
        except ChannelUnavailable as exc:  # deleted or trashed since the call began
            if not exc.trashed:
                raise errors.UnknownChannel(f"unknown channel {channel.id!r}") from None
            refuse_trashed_channel(channel, trashed=True)
        if files:
            await ctx.storage.events.set_attachments(
                conn, ctx.user_id, await store_files(ctx, conn, event, files)
            )
    ctx.notify(EVENTS_CHANGED, channel.id)
    return {"id": event.id, "stoppedId": stopped} if stopped else {"id": event.id}


RECORD_ERRORS = (
    "UNKNOWN_FOLDER",
    "INVALID_OPERATION",
    "PERIODS_OVERLAP",
    "ITEM_ID_ALREADY_EXISTS",
    "INVALID_ITEM_ID",
    "FORBIDDEN",
)


@method(
    "events.create",
    CreateParams,
    channel_level=Level.CONTRIBUTE,
    errors=(*RECORD_ERRORS, "PAYLOAD_TOO_LARGE", "TOO_MANY_REQUESTS"),
)
async def create(ctx: CallContext, p: CreateParams) -> dict[str, Any]:
    """Record a mark (no ``duration``) or a finished period; 201 ``{id, stoppedId?}``."""
    if "duration" in p.model_fields_set and p.duration is None:
        raise errors.InvalidOperation(
            "events.create records finished events: use events.start for a running period"
        )
    return await record(ctx, p, is_period=p.duration is not None, duration=p.duration)


class StartParams(EventFields, ChannelParams):
    pass


@method(
    "events.start",
    StartParams,
    channel_level=Level.CONTRIBUTE,
    errors=("MISSING_FOLDER", *RECORD_ERRORS),
)
async def start(ctx: CallContext, p: StartParams) -> dict[str, Any]:
    """Start a running period in ``folderId`` (required); 201 ``{id, stoppedId?}``."""
    if p.folderId is None:
        raise errors.MissingFolder("events.start needs a folderId")
    return await record(ctx, p, is_period=True, duration=None)


class StopParams(ChannelParams):
    id: ItemRef | None = None
    time: EventTime | None = None


@method(
    "events.stop",
    StopParams,
    channel_level=Level.CONTRIBUTE,
    errors=("MISSING_PARAMETER", "UNKNOWN_EVENT", "INVALID_TIME", "FORBIDDEN"),
)
async def stop(ctx: CallContext, p: StopParams) -> dict[str, Any]:
    """Stop the running period named by ``id`` (needed in non-strict channels), else the
    channel's one, at ``time`` (default now); ``{stoppedId}`` is null when nothing ran."""
    access = ctx.require_access()
    async with ctx.storage.transaction() as conn:
        channel = await lock_channel(ctx, conn)
        if p.id is not None:
            event = await ctx.storage.events.get(ctx.user_id, channel.id, p.id, conn)
            if event is None:
                raise errors.UnknownEvent(f"unknown event {p.id!r}")
            target = event if event.running and not event.trashed else None
        elif not channel.enforce_no_events_overlap:
            raise errors.MissingParameter(
                "several periods may run in this channel: name the one to stop with id",
                {"missing": "id"},
            )
        else:
            running = await ctx.storage.periods.running(conn, ctx.user_id, channel.id)
            target = running[-1] if running else None
            event = target
        if event is not None:
            tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, channel.id, conn))
            if p.id is None and level_on(access, channel.id, tree, event.folder_id) is None:
                # The channel's running period lies out of the credential's sight: left out,
                # as lists leave it out (API.md §7), so the answer is that of "none runs".
                return {"stoppedId": None}
            require_level(access, channel.id, tree, event.folder_id, Level.CONTRIBUTE)
        if target is None:
            return {"stoppedId": None}
        now = time.time()
        at = now if p.time is None else p.time
        if at < target.time:
            raise errors.InvalidTime(
                "a period cannot stop before it started", {"id": target.id, "time": target.time}
            )
        await ctx.storage.periods.stop(conn, ctx.user_id, channel.id, target.id, at, now)
    ctx.notify(EVENTS_CHANGED, channel.id)
    return {"stoppedId": target.id}


class UpdateParams(ValueForms, ChannelParams):
    id: ItemRef
    time: EventTime | None = None
    duration: Duration | None = None
    folderId: ItemRef | None = None
    tags: TagList | None = None
    description: Description | None = None
    clientData: ClientData | None = None
    trashed: bool | None = None


def updated_event(current: Event, p: UpdateParams, now: float) -> Event:
    """The event after a partial update (``duration: null`` makes it running)."""
    given = p.model_fields_set
    kind, content = p.typed_content(current)
    event = replace(current, type=kind, content=content, modified=now)
    if p.time is not None:
        event = replace(event, time=p.time)
    if "duration" in given:
        event = replace(event, is_period=True, duration=p.duration)
    if "folderId" in given:
        event = replace(event, folder_id=p.folderId)
    if p.tags is not None:
        event = replace(event, tags=unique_tags(p.tags))
    if "description" in given:
        event = replace(event, description=p.description)
    if p.clientData is not None:
        event = replace(event, client_data=merge_client_data(current.client_data, p.clientData))
    if p.trashed is not None:
        event = replace(event, trashed=p.trashed)
    return event


@method(
    "events.update",
    UpdateParams,
    channel_level=Level.CONTRIBUTE,
    errors=("UNKNOWN_EVENT", "UNKNOWN_FOLDER", "INVALID_OPERATION", "PERIODS_OVERLAP", "FORBIDDEN"),
)
async def update(ctx: CallContext, p: UpdateParams) -> dict[str, Any]:
    """Change an event's fields (``clientData`` merged, ``trashed: false`` restores it);
    period rules apply when its time span changes; 200 ``{stoppedId?}``."""
    access = ctx.require_access()
    async with ctx.storage.transaction() as conn:
        channel = await lock_channel(ctx, conn)
        current = await ctx.storage.events.get(ctx.user_id, channel.id, p.id, conn)
        if current is None:
            raise errors.UnknownEvent(f"unknown event {p.id!r}")
        tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, channel.id, conn))
        require_level(access, channel.id, tree, current.folder_id, Level.CONTRIBUTE)
        now = time.time()
        event = updated_event(current, p, now)
        if event.folder_id != current.folder_id:
            check_target_folder(access, channel.id, tree, event.folder_id)
        stopped = None
        span_changed = (
            event.time,
            event.is_period,
            event.duration,
            event.trashed,
        ) != (current.time, current.is_period, current.duration, current.trashed)
        if event.is_period and not event.trashed and span_changed:
            end = None if event.duration is None else event.time + event.duration
            stopped = await place_period(ctx, conn, channel, event.id, event.time, end, now)
        await ctx.storage.events.save(conn, ctx.user_id, event)
    ctx.notify(EVENTS_CHANGED, channel.id)
    return {"stoppedId": stopped} if stopped else {}


class DeleteParams(ChannelParams):
    id: ItemRef


@method(
    "events.delete",
    DeleteParams,
    channel_level=Level.CONTRIBUTE,
    errors=("UNKNOWN_EVENT", "FORBIDDEN"),
)
async def delete(ctx: CallContext, p: DeleteParams) -> dict[str, Any]:
    """Trash an event; delete it for good (with its files) when already trashed."""
    async with ctx.storage.transaction() as conn:
        event = await event_for_write(ctx, conn, p.channelId, p.id)
        if event.trashed:
            await ctx.storage.events.delete(conn, ctx.user_id, p.channelId, event.id)
        else:
            trashed = replace(event, trashed=True, modified=time.time())
            await ctx.storage.events.save(conn, ctx.user_id, trashed)
    ctx.notify(EVENTS_CHANGED, p.channelId)
    return {}
