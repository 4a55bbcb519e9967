"""events.get / create / start / stop / getRunning / update / delete (API.md §6, §7).

Writes need ``contribute`` on the event's folder (``folderId: null``: on the events with
no folder). Writes of periods follow ``periods`` under the channel's row lock.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson

from pryvrt import errors
from pryvrt.auth.permissions import Level
from pryvrt.ids import new_id
from pryvrt.methods.attachments import sign_attachments, store_files, with_read_tokens
from pryvrt.methods.context import CallContext
from pryvrt.methods.event_fields import (
    Description,
    Duration,
    EventFields,
    EventTime,
    ValueForms,
    new_event,
    unique_tags,
)
from pryvrt.methods.locking import refuse_trashed_channel, trashed_folder
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
from pryvrt.methods.scope import (
    IfNone,
    Lock,
    Need,
    Scope,
    anywhere,
    at_event,
    at_folder,
    at_folders,
)
from pryvrt.methods.series_types import is_series, refuse_series_change
from pryvrt.methods.visibility import admit, sees, visible
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


def scope_query(ctx: CallContext, only_folders: list[str] | None, **filters: Any) -> EventQuery:
    """The query of ``filters`` with the credential's part: what it reads
    (``visibility.visible``: folders and the filters of narrowed grants), narrowed to
    ``only_folders`` (each with its descendants, each checked by ``open_scope``).
    Filtering in SQL keeps ``skip``/``limit`` exact."""
    access = ctx.require_access()
    scope = ctx.require_scope()
    seen = visible(access, scope.channel.id, scope.tree)
    if only_folders:
        folder_ids = sorted(scope.tree.subtrees(only_folders))
        return EventQuery(visible=seen, folder_ids=folder_ids, no_folder=False, **filters)
    return EventQuery(visible=seen, **filters)


@method("events.get", GetParams, need=Need(Level.READ, at_folders("onlyFolders")))
async def get(ctx: CallContext, p: GetParams) -> list[dict[str, Any]] | orjson.Fragment:
    """Events overlapping a time window, newest first unless ``sortAscending``.

    No ``fromTime`` nor ``toTime``: no time bound and ``limit`` defaults to 20. Otherwise
    ``toTime`` defaults to now and ``fromTime`` to ``toTime`` - 24 h, and ``limit`` to
    the server's maximum. ``limit`` is capped at ``PRYVRT_MAX_EVENTS_LIMIT``.
    """
    cap = ctx.settings.max_events_limit
    from_time = to_time = None
    limit = p.limit
    if p.fromTime is None and p.toTime is None:
        limit = DEFAULT_LIMIT if limit is None else limit
    else:
        to_time = p.toTime if p.toTime is not None else time.time()
        from_time = p.fromTime if p.fromTime is not None else to_time - DAY
    query = scope_query(
        ctx,
        p.onlyFolders,
        from_time=from_time,
        to_time=to_time,
        tags=p.tags,
        state=p.state,
        modified_since=p.modifiedSince,
        ascending=p.sortAscending,
        skip=p.skip,
        limit=cap if limit is None else min(limit, cap),
    )
    if query.visible.nothing or (query.folder_ids == [] and not query.no_folder):
        return []
    # Pre-encoded: every transport serialises with orjson, which embeds a Fragment as is.
    found = await ctx.storage.events.query_json(ctx.user_id, p.channelId, query)
    return orjson.Fragment(with_read_tokens(ctx, found))


@method("events.getRunning", ChannelParams, need=Need(Level.READ, anywhere()))
async def get_running(ctx: CallContext, p: ChannelParams) -> orjson.Fragment:
    """The running periods the credential can read, latest first."""
    query = scope_query(ctx, None, running_only=True)
    found = await ctx.storage.events.query_json(ctx.user_id, p.channelId, query)
    return orjson.Fragment(with_read_tokens(ctx, found))


class GetOneParams(ChannelParams):
    id: ItemRef


@method("events.getOne", GetOneParams, need=Need(Level.READ, at_event("id")))
async def get_one(ctx: CallContext, p: GetOneParams) -> dict[str, Any]:
    """One event, in any state (a trashed one says ``trashed: true``), with the caller's
    readTokens in its attachments."""
    event = ctx.require_scope().event
    assert event is not None
    return sign_attachments(ctx, event.to_api())


class CreateParams(EventFields, ChannelParams):
    duration: Duration | None = None


async def record(
    ctx: CallContext, fields: EventFields, *, is_period: bool, duration: float | None
) -> dict[str, Any]:
    """Record a new event, in the scope ``record_lock`` opened (periods follow ``periods``).

    A mark with no folder and no file needs nothing but the channel to be there and not
    trashed: it runs without a transaction, and the store's insert checks the channel under
    the same share lock in its own statement (the hot path: one round trip). Files sent
    with it were received whole before the transaction opened (``ctx.files``)."""
    scope = ctx.require_scope()
    channel, conn = scope.channel, scope.conn
    if fields.folderId is not None and scope.tree.trashed_in_path(fields.folderId):
        raise trashed_folder(fields.folderId)
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
        by=ctx.writer,
    )
    admit(ctx.require_access(), channel.id, scope.tree, event)
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
    if ctx.files:  # multipart events.create: the files join the transaction
        event = await store_files(ctx, conn, event, ctx.files)
        await ctx.storage.events.set_attachments(conn, ctx.user_id, event)
    ctx.events_changed(channel.id, event)
    return {"id": event.id, "stoppedId": stopped} if stopped else {"id": event.id}


def record_lock(p: CreateParams, ctx: CallContext) -> Lock:
    """Periods: the exclusive lock (period rules); a mark with no folder and no file: none
    (the insert takes a share lock itself); other marks: a share lock."""
    if p.duration is not None:
        return Lock.EXCLUSIVE
    return Lock.NONE if p.folderId is None and ctx.uploads is None else Lock.SHARE


RECORD_ERRORS = (
    "INVALID_OPERATION",
    "PERIODS_OVERLAP",
    "ITEM_ID_ALREADY_EXISTS",
    "INVALID_ITEM_ID",
)


@method(
    "events.create",
    CreateParams,
    need=Need(Level.CONTRIBUTE, at_folder("folderId"), lock=record_lock, filtered=True),
    errors=(*RECORD_ERRORS, "PAYLOAD_TOO_LARGE", "TOO_MANY_REQUESTS", "ITEM_NAME_ALREADY_EXISTS"),
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
    need=Need(
        Level.CONTRIBUTE,
        at_folder("folderId", IfNone.MISSING),
        lock=Lock.EXCLUSIVE,
        filtered=True,
    ),
    errors=RECORD_ERRORS,
)
async def start(ctx: CallContext, p: StartParams) -> dict[str, Any]:
    """Start a running period in ``folderId`` (required); 201 ``{id, stoppedId?}``."""
    return await record(ctx, p, is_period=True, duration=None)


class StopParams(ChannelParams):
    id: ItemRef | None = None
    time: EventTime | None = None


async def running_period(ctx: CallContext, scope: Scope, p: StopParams) -> Event | None:
    """What events.stop addresses without an ``id``: the channel's running period (a
    strict channel has at most one; elsewhere several may run: MISSING_PARAMETER). One out
    of the credential's sight is left out, as lists leave it out (API.md §7): the answer is
    then that of "none runs"."""
    channel = scope.channel
    if not channel.enforce_no_events_overlap:
        raise errors.MissingParameter(
            "several periods may run in this channel: name the one to stop with id",
            {"missing": "id"},
        )
    running = await ctx.storage.periods.running(scope.conn, ctx.user_id, channel.id)
    if not running:
        return None
    found = running[-1]
    return found if sees(ctx.require_access(), channel.id, scope.tree, found) else None


@method(
    "events.stop",
    StopParams,
    need=Need(Level.CONTRIBUTE, at_event("id", locate=running_period), lock=Lock.EXCLUSIVE),
    errors=("MISSING_PARAMETER", "INVALID_TIME"),
)
async def stop(ctx: CallContext, p: StopParams) -> dict[str, Any]:
    """Stop the running period named by ``id`` (needed in non-strict channels), else the
    channel's one, at ``time`` (default now); ``{stoppedId}`` is null when nothing ran."""
    scope = ctx.require_scope()
    channel, event = scope.channel, scope.event
    if event is None or not event.running or event.trashed:
        return {"stoppedId": None}
    now = time.time()
    at = now if p.time is None else p.time
    if at < event.time:
        raise errors.InvalidTime(
            "a period cannot stop before it started", {"id": event.id, "time": event.time}
        )
    stopped = replace(event, duration=at - event.time, modified=now)
    admit(ctx.require_access(), channel.id, scope.tree, stopped)
    await ctx.storage.periods.stop(
        scope.conn, ctx.user_id, channel.id, event.id, at, now, ctx.writer
    )
    ctx.events_changed(channel.id, event, stopped)
    return {"stoppedId": event.id}


class UpdateParams(ValueForms, ChannelParams):
    id: ItemRef
    time: EventTime | None = None
    duration: Duration | None = None
    folderId: ItemRef | None = None
    tags: TagList | None = None
    description: Description | None = None
    clientData: ClientData | None = None
    trashed: bool | None = None


def updated_event(current: Event, p: UpdateParams, now: float, by: str) -> Event:
    """The event after a partial update (``duration: null`` makes it running)."""
    given = p.model_fields_set
    kind, content = p.typed_content(current)
    event = replace(current, type=kind, content=content, modified=now, modified_by=by)
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
    need=Need(
        Level.CONTRIBUTE,
        at_event("id"),
        lock=Lock.EXCLUSIVE,
        filtered=True,
        moves_to=at_folder("folderId"),
    ),
    errors=("INVALID_OPERATION", "PERIODS_OVERLAP"),
)
async def update(ctx: CallContext, p: UpdateParams) -> dict[str, Any]:
    """Change an event's fields (``clientData`` merged, ``trashed: false`` restores it);
    period rules apply when its time span changes; 200 ``{stoppedId?}``."""
    scope = ctx.require_scope()
    channel, conn, current = scope.channel, scope.conn, scope.event
    assert conn is not None and current is not None
    now = time.time()
    event = updated_event(current, p, now, ctx.writer)
    refuse_series_change(
        current.type, current.content, event.type, event.content, "duration" in p.model_fields_set
    )
    moved_to = event.folder_id
    if moved_to != current.folder_id and moved_to is not None:
        if scope.tree.trashed_in_path(moved_to):
            raise trashed_folder(moved_to)
    admit(ctx.require_access(), channel.id, scope.tree, event)
    stopped = None
    span_changed = (
        event.time,
        event.is_period,
        event.duration,
        event.trashed,
    ) != (current.time, current.is_period, current.duration, current.trashed)
    if event.is_period and not event.trashed and span_changed and not is_series(event.type):
        end = None if event.duration is None else event.time + event.duration
        stopped = await place_period(ctx, conn, channel, event.id, event.time, end, now)
    await ctx.storage.events.save(conn, ctx.user_id, event)
    ctx.events_changed(channel.id, current, event)
    return {"stoppedId": stopped} if stopped else {}


class DeleteParams(ChannelParams):
    id: ItemRef


# The addressed event, row-locked in the call's transaction (the channel is not locked).
EVENT_WRITE = Need(Level.CONTRIBUTE, at_event("id", for_update=True), transaction=True)


@method("events.delete", DeleteParams, need=EVENT_WRITE)
async def delete(ctx: CallContext, p: DeleteParams) -> dict[str, Any]:
    """Trash an event; delete it for good (with its files) when already trashed."""
    scope = ctx.require_scope()
    event, conn = scope.event, scope.conn
    assert event is not None
    if event.trashed:
        await ctx.storage.events.delete(conn, ctx.user_id, p.channelId, event.id)
    else:
        trashed = replace(event, trashed=True, modified=time.time(), modified_by=ctx.writer)
        await ctx.storage.events.save(conn, ctx.user_id, trashed)
    ctx.events_changed(p.channelId, event)
    return {}
