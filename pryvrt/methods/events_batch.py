"""events.batch: events recorded offline, uploaded all or nothing (API.md §6, seed 004)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import StringConstraints

from pryvrt import errors
from pryvrt.auth.permissions import Level
from pryvrt.ids import new_id
from pryvrt.methods.context import CallContext
from pryvrt.methods.event_fields import Duration, EventFields, new_event
from pryvrt.methods.locking import refuse_trashed_channel, trashed_folder
from pryvrt.methods.params import ChannelParams
from pryvrt.methods.periods import NewPeriod, place_batch
from pryvrt.methods.registry import method
from pryvrt.methods.scope import Lock, Need, at_items
from pryvrt.methods.visibility import admit
from pryvrt.storage.base import Conflict
from pryvrt.storage.events import Event, json_with

ClientId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class BatchEvent(EventFields):
    """One offline event: ``duration`` absent = mark, a number = finished, null = running."""

    clientId: ClientId
    duration: Duration | None = None


class BatchParams(ChannelParams):
    events: list[BatchEvent]


def about(exc: errors.ApiError, client_id: str) -> errors.ApiError:
    """The error, naming the offending event of the batch in its ``data``."""
    exc.data = {**(exc.data or {}), "clientId": client_id}
    return exc


def check_time(item: BatchEvent, event: Event, now: float) -> None:
    """Offline events happened already: neither their start nor their end is in the future."""
    end = event.end if event.is_period and event.duration is not None else event.time
    if event.time > now or end > now:
        raise errors.InvalidTime(
            "events of a batch cannot start or end after the server's current time",
            {"clientId": item.clientId, "time": event.time, "serverTime": now},
        )


def batch_rows(p: BatchParams, ctx: CallContext) -> int:
    """The rows the batch writes (a large batch runs on a bulk connection); a batch over
    PRYVRT_MAX_BATCH_EVENTS is refused here, before any connection is taken."""
    limit = ctx.settings.max_batch_events
    if len(p.events) > limit:
        raise errors.PayloadTooLarge(f"at most {limit} events per batch", {"limit": limit})
    return len(p.events)


@method(
    "events.batch",
    BatchParams,
    # Each event's folder, checked with its clientId named in the error.
    need=Need(
        Level.CONTRIBUTE, at_items("events"), lock=Lock.EXCLUSIVE, filtered=True, rows=batch_rows
    ),
    errors=(
        "INVALID_TIME",
        "PERIODS_OVERLAP",
        "INVALID_OPERATION",
        "ITEM_ID_ALREADY_EXISTS",
        "INVALID_ITEM_ID",
        "PAYLOAD_TOO_LARGE",
    ),
)
async def batch(ctx: CallContext, p: BatchParams) -> dict[str, Any]:
    """Add many events in one transaction: all of them, or none and an error naming the
    offending ``clientId``. Answers ``{addedEvents: [{...event, clientId}], stoppedId?}``.

    Times are server times (default: now) and may not lie in the future (INVALID_TIME).
    In a strict channel the batch's periods may not overlap each other nor stored ones.
    """
    check_unique(p.events)
    scope = ctx.require_scope()
    channel, conn, tree = scope.channel, scope.conn, scope.tree
    assert conn is not None
    access = ctx.require_access()
    refuse_trashed_channel(channel)
    now = time.time()
    events: list[Event] = []
    periods: list[NewPeriod] = []
    for item in p.events:
        is_period = "duration" in item.model_fields_set
        try:
            if item.folderId is not None and tree.trashed_in_path(item.folderId):
                raise trashed_folder(item.folderId)
            event = new_event(
                item,
                item.id or new_id(),
                channel.id,
                at=now if item.time is None else item.time,
                is_period=is_period,
                duration=item.duration,
                now=now,
                by=ctx.writer,
            )
        except errors.ApiError as exc:
            raise about(exc, item.clientId) from None
        check_time(item, event, now)
        try:
            admit(access, channel.id, tree, event)
        except errors.ApiError as exc:
            raise about(exc, item.clientId) from None
        events.append(event)
        if is_period:
            periods.append(NewPeriod(item.clientId, event.time, event.end))
    taken = await ctx.storage.events.existing_ids(
        conn, ctx.user_id, channel.id, [i.id for i in p.events if i.id is not None]
    )
    if taken:
        raise id_taken(p.events, set(taken))
    stopped = await place_batch(ctx, conn, channel, periods, now)
    rendered: list[bytes] = []
    if events:
        try:
            rendered = await ctx.storage.events.insert_many(conn, ctx.user_id, channel.id, events)
        except Conflict:  # an id taken between our check and the insert
            raise errors.ItemIdAlreadyExists("an event id of the batch is taken") from None
    if events:
        ctx.events_changed(channel.id, *events)
    # Each event as stored, plus its clientId: encoded once, for the row and for the reply.
    added = [
        json_with(json, {"clientId": item.clientId})
        for json, item in zip(rendered, p.events, strict=True)
    ]
    return {"addedEvents": added, "stoppedId": stopped} if stopped else {"addedEvents": added}


def check_unique(items: list[BatchEvent]) -> None:
    """``clientId``s name the events of the batch; ids, when given, are new."""
    seen: set[str] = set()
    ids: set[str] = set()
    for item in items:
        if item.clientId in seen:
            raise errors.InvalidParametersFormat(
                "clientId values must be unique in a batch", {"clientId": item.clientId}
            )
        seen.add(item.clientId)
        if item.id is not None:
            if item.id in ids:
                raise errors.ItemIdAlreadyExists(
                    "two events of the batch have the same id", {"clientId": item.clientId}
                )
            ids.add(item.id)


def id_taken(items: list[BatchEvent], taken: set[str]) -> errors.ApiError:
    first = next(i for i in items if i.id in taken)
    return errors.ItemIdAlreadyExists(
        f"an event with id {first.id!r} already exists", {"clientId": first.clientId}
    )
