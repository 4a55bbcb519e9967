"""events.addSeriesPoints / events.getSeries / series.batch: high-frequency series
(API.md §15, docs/series.md).

A series event is created like any event with a ``series:{class}/{format}`` type
(``event_fields.new_event`` sets its content); its points live in ``series_chunks``
(``storage/series.py``). Writes need ``contribute`` on the event, reads ``read``, checked
by the same scope as every event method. Appends to one series are serialised by the
event's row lock; its ``duration`` becomes the largest deltaTime stored.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import Field, WithJsonSchema

from pryvrt import errors
from pryvrt.auth import identity
from pryvrt.auth.permissions import Level
from pryvrt.methods import series_json
from pryvrt.methods.context import CallContext
from pryvrt.methods.locking import refuse_trashed_channel, trashed_folder
from pryvrt.methods.params import ChannelParams, ItemRef, Params
from pryvrt.methods.registry import method
from pryvrt.methods.scope import Lock, Need, Scope, at_event, open_scope, refuse_early
from pryvrt.methods.series_types import Layout, is_series, parse_points
from pryvrt.notify import Change
from pryvrt.notify.messages import SERIES_CHANGED
from pryvrt.storage.events import Event
from pryvrt.storage.series_codec import Points, bucketize, cpu, summarize

# A range holding at most this many points is decimated from the points themselves
# (exact bucket edges); a larger one from the stored block summaries (see getSeries).
EXACT_DECIMATION_POINTS = 262_144
# Points per row-equivalent when sizing the write's transaction (``Need.rows``).
POINTS_PER_ROW = 50

DeltaTime = Annotated[float, Field(ge=-1e11, le=1e11, allow_inf_nan=False)]
FieldList = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string"},
            "description": "deltaTime and the series' fields, in the order of each point",
        }
    ),
]
PointList = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {
                "type": "array",
                "items": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            },
            "description": "one array per point, values in the order of fields",
        }
    ),
]


class FlatJson(Params):
    """Points in the flatJSON format: ``{format, fields, points}``. ``points`` is checked by
    ``series_types.parse_points`` (fast, and naming the bad row), not by pydantic."""

    format: Literal["flatJSON"] = "flatJSON"
    fields: FieldList
    points: PointList


class AddParams(FlatJson, ChannelParams):
    id: Annotated[ItemRef, Field(description="the series event")]


def point_count(points: Any) -> int:
    """How many points a request holds (a list, or a matrix from ``series_json``)."""
    return len(points) if isinstance(points, list | np.ndarray) else 0


def point_rows(p: Any, ctx: CallContext) -> int:
    return point_count(p.points) // POINTS_PER_ROW + 1


APPEND = Need(Level.CONTRIBUTE, at_event("id", for_update=True), transaction=True, rows=point_rows)
ADD_ERRORS = ("INVALID_OPERATION",)


def series_layout(event: Event) -> Layout:
    if not is_series(event.type):
        raise errors.InvalidOperation(
            "this event is not a series (its type does not start with series:)",
            {"type": event.type},
        )
    return Layout.of(event.content)


def writable(scope: Scope, event: Event) -> Layout:
    """The series' layout, once sure points may be added to it."""
    layout = series_layout(event)
    if event.trashed:
        raise errors.InvalidOperation(
            "the event is in the trash: restore it before adding points", {"trashed": "event"}
        )
    refuse_trashed_channel(scope.channel)
    if event.folder_id is not None and scope.tree.trashed_in_path(event.folder_id):
        raise trashed_folder(event.folder_id)
    return layout


async def append(ctx: CallContext, scope: Scope, event: Event, points: Points) -> None:
    """Store the points, set the event's duration to the span of its points, announce it."""
    if not len(points):
        return
    conn = scope.conn
    assert conn is not None
    last = await ctx.storage.series.append(conn, ctx.user_id, event.channel_id, event.id, points)
    duration = max(event.duration or 0.0, last)
    updated = replace(event, duration=duration, modified=time.time())
    await ctx.storage.events.save(conn, ctx.user_id, updated)
    scope.event = updated
    ctx.changes.add(Change(SERIES_CHANGED, event.channel_id, event.id))


@method("events.addSeriesPoints", AddParams, need=APPEND, errors=ADD_ERRORS)
async def add_points(ctx: CallContext, p: AddParams) -> dict[str, Any]:
    """Add points to a series event (flatJSON: ``fields`` in any order, naming deltaTime
    and every required field; ``points`` in any order). A point whose deltaTime is already
    stored replaces it. All or nothing: a bad point is a 400 naming its ``row``.
    Announced by ``seriesChanged {channelId, eventId}`` (at most 4 a second per series)."""
    scope = ctx.require_scope()
    event = scope.event
    assert event is not None
    layout = writable(scope, event)
    count = point_count(p.points)
    limit = ctx.settings.max_series_points
    points = await cpu(count, parse_points, layout, p.fields, p.points, limit)
    await append(ctx, scope, event, points)
    return {}


class GetParams(ChannelParams):
    id: Annotated[ItemRef, Field(description="the series event")]
    fromDeltaTime: Annotated[
        DeltaTime | None, Field(description="first deltaTime of the range (included)")
    ] = None
    toDeltaTime: Annotated[
        DeltaTime | None, Field(description="last deltaTime of the range (included)")
    ] = None
    # Decimation: buckets of at least ``resolution`` seconds, at most ``maxPoints`` of them.
    resolution: Annotated[
        float | None,
        Field(gt=0, le=1e11, allow_inf_nan=False, description="bucket width in seconds"),
    ] = None
    maxPoints: Annotated[
        int | None,
        Field(ge=1, le=1_000_000, description="at most this many buckets (min/max/mean each)"),
    ] = None


STATS = ("min", "max", "mean")


@method("events.getSeries", GetParams, need=Need(Level.READ, at_event("id")), errors=ADD_ERRORS)
async def get_series(ctx: CallContext, p: GetParams) -> orjson.Fragment:
    """The points with ``fromDeltaTime <= deltaTime <= toDeltaTime`` (both optional),
    sorted by deltaTime, as flatJSON ``{format, fields, points}`` (a trashed event's
    points are hidden: none).

    With ``maxPoints`` and/or ``resolution`` (seconds), a range holding more points than
    buckets is decimated: ``fields`` become ``deltaTime`` (bucket start), ``count``, then
    ``{field}:min``, ``{field}:max``, ``{field}:mean`` for each field, and ``resolution``
    gives the bucket width. Buckets are ``resolution`` wide (at least ``span / maxPoints``)
    from ``fromDeltaTime`` (default: the first point). Ranges of more than 262 144 points
    are decimated from summaries of blocks of 128 points: a block counts whole in the
    bucket where it starts."""
    event = ctx.require_scope().event
    assert event is not None
    layout = series_layout(event)
    lo = -math.inf if p.fromDeltaTime is None else p.fromDeltaTime
    hi = math.inf if p.toDeltaTime is None else p.toDeltaTime
    fields = list(layout.fields)
    if event.trashed or lo > hi:
        return await flat_json(fields, np.empty((0, layout.width)))
    store, key = ctx.storage.series, (ctx.user_id, event.channel_id, event.id)
    if p.maxPoints is None and p.resolution is None:
        return await flat_json(fields, await store.read(*key, layout.width, lo, hi))
    chunks = await store.chunks(*key, lo, hi)
    if not chunks:
        return await flat_json(fields, np.empty((0, layout.width)))
    start = lo if math.isfinite(lo) else chunks[0].t_min
    end = hi if math.isfinite(hi) else max(c.t_max for c in chunks)
    span = end - start
    most = p.maxPoints or ctx.settings.max_series_points
    step = max(span / most, p.resolution or 0.0)
    buckets = max(1, math.ceil(span / step)) if step > 0 else 1
    total = sum(c.n for c in chunks)
    if total <= EXACT_DECIMATION_POINTS:
        points = await store.read(*key, layout.width, lo, hi)
        if len(points) <= buckets:
            return await flat_json(fields, points)
        blocks = await cpu(len(points), summarize, points, 1)
    else:
        blocks = await store.summaries(*key, layout.width, lo, hi)
    stats = [f"{name}:{stat}" for name in fields[1:] for stat in STATS]
    view = await cpu(len(blocks), bucketize, blocks, start, step, buckets)
    return await flat_json(["deltaTime", "count", *stats], view, resolution=step)


async def flat_json(fields: list[str], points: Points, **extra: Any) -> orjson.Fragment:
    """flatJSON, encoded here (numpy rows straight to JSON; NaN → null)."""
    rows = orjson.Fragment(await cpu(len(points), series_json.dumps_rows, points))
    return orjson.Fragment(
        orjson.dumps({"format": "flatJSON", "fields": fields, "points": rows, **extra})
    )


class BatchItem(Params):
    channelId: ItemRef
    eventId: ItemRef
    data: FlatJson


class BatchParams(Params):
    format: Literal["seriesBatch"] = "seriesBatch"
    data: list[BatchItem]


class ItemTarget(ChannelParams):
    """What ``open_scope`` checks for one item of series.batch."""

    id: ItemRef


def batch_item_error(exc: errors.ApiError, index: int, item: BatchItem) -> errors.ApiError:
    exc.data = {
        **(exc.data or {}),
        "index": index,
        "channelId": item.channelId,
        "eventId": item.eventId,
    }
    return exc


@method(
    "series.batch",
    BatchParams,
    errors=("INVALID_OPERATION", "UNKNOWN_CHANNEL", "UNKNOWN_EVENT", "FORBIDDEN"),
)
async def batch(ctx: CallContext, p: BatchParams) -> dict[str, Any]:
    """Add points to many series in one transaction: all of them, or none and an error
    naming the item (``data.index``, ``channelId``, ``eventId``) and, for a bad point, its
    ``row``. Each series is checked like ``events.addSeriesPoints`` (contribute on the event)."""
    access = ctx.require_access()
    limit = ctx.settings.max_series_points
    total = 0
    for index, item in enumerate(p.data):
        points = item.data.points
        total += len(points) if isinstance(points, list) else 0
        if total > limit:
            raise batch_item_error(
                errors.InvalidParametersFormat(
                    f"more than {limit} points in one request (PRYVRT_MAX_SERIES_POINTS)",
                    {"limit": limit},
                ),
                index,
                item,
            )
    async with ctx.storage.transaction(total // POINTS_PER_ROW + 1) as conn:
        # Events locked in one order (two batches never wait for each other in a cycle).
        scopes: dict[tuple[str, str], tuple[CallContext, Scope]] = {}
        order = sorted(range(len(p.data)), key=lambda i: (p.data[i].channelId, p.data[i].eventId))
        for index in order:
            item = p.data[index]
            key = (item.channelId, item.eventId)
            if key in scopes:
                continue
            try:
                child = ctx.child()
                child.channel = await identity.find_channel(ctx.services, ctx.user_id, key[0])
                refuse_early(access, key[0], Level.CONTRIBUTE)
                target = ItemTarget(channelId=key[0], id=key[1])
                scope = await open_scope(child, APPEND, target, Lock.NONE, conn)
                assert scope.event is not None
                writable(scope, scope.event)
            except errors.ApiError as exc:
                raise batch_item_error(exc, index, item) from None
            scopes[key] = (child, scope)
        parsed = []
        for index, item in enumerate(p.data):
            child, scope = scopes[(item.channelId, item.eventId)]
            assert scope.event is not None
            try:
                layout = Layout.of(scope.event.content)
                count = len(item.data.points) if isinstance(item.data.points, list) else 0
                fields, points = item.data.fields, item.data.points
                parsed.append(await cpu(count, parse_points, layout, fields, points, limit))
            except errors.ApiError as exc:
                raise batch_item_error(exc, index, item) from None
        for item, points in zip(p.data, parsed, strict=True):
            child, scope = scopes[(item.channelId, item.eventId)]
            assert scope.event is not None
            await append(child, scope, scope.event, points)
            ctx.changes |= child.changes
    return {}
