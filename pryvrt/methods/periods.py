"""The period rules of API.md §6.3, for one period or a batch of them.

Only channels with ``enforceNoEventsOverlap`` are checked; elsewhere periods may overlap,
several may run and nothing is stopped implicitly. Callers hold the channel's exclusive
row lock (``locking.lock_channel``) and write inside the same transaction: an error rolls
back everything, including a running period already stopped here. A period's bounds are
``[start, end)`` with ``end`` None (or +inf) while running; marks never take part. A
period started or created at T stops the running period that started before T, even when
that one lies outside the credential's folders: the rule is about the channel's timeline.
Answers and errors name only the events the credential can read (``readable_ids``: its folders and the filters of narrowed grants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pryvrt import errors
from pryvrt.methods.context import CallContext
from pryvrt.methods.visibility import sees
from pryvrt.storage.channels import Channel


async def place_period(
    ctx: CallContext,
    conn: Any,
    channel: Channel,
    event_id: str,
    start: float,
    end: float | None,
    now: float,
) -> str | None:
    """Check a period about to be written as ``event_id`` (its stored self is ignored) and
    stop the running period it supersedes; return that period's id."""
    if not channel.enforce_no_events_overlap:
        return None
    periods = ctx.storage.periods
    user_id = ctx.user_id
    if end is None:
        later = await periods.started_after(conn, user_id, channel.id, start, event_id)
        if later:
            raise errors.InvalidOperation(
                "a period starts after this time: only the latest period may be running",
                {"laterIds": await readable_ids(ctx, conn, channel.id, later)},
            )
    stopped = await _stop_running_before(ctx, conn, channel, start, now, event_id)
    bound = math.inf if end is None else end
    if await periods.first_overlaps(conn, user_id, channel.id, [start], [bound], event_id) is None:
        return await readable_id(ctx, conn, channel.id, stopped)
    overlapped = await periods.overlapping(conn, user_id, channel.id, start, bound, event_id)
    raise errors.PeriodsOverlap(
        "the period overlaps other periods of this channel",
        {"overlappedIds": await readable_ids(ctx, conn, channel.id, overlapped)},
    )


async def readable_ids(ctx: CallContext, conn: Any, channel_id: str, ids: list[str]) -> list[str]:
    """The events among ``ids`` the credential can read: a folder-scoped credential is never
    told the ids of events outside its folders (the rules still apply to them). The tree
    is the scope's: methods whose answers name events declare ``Need.filtered``."""
    access = ctx.require_access()
    if not ids or access.is_full:
        return ids
    tree = ctx.require_scope().tree
    kept = []
    for event_id in ids:
        event = await ctx.storage.events.get(ctx.user_id, channel_id, event_id, conn)
        if event is not None and sees(access, channel_id, tree, event):
            kept.append(event_id)
    return kept


async def readable_id(
    ctx: CallContext, conn: Any, channel_id: str, event_id: str | None
) -> str | None:
    if event_id is None:
        return None
    kept = await readable_ids(ctx, conn, channel_id, [event_id])
    return kept[0] if kept else None


async def _stop_running_before(
    ctx: CallContext,
    conn: Any,
    channel: Channel,
    at: float,
    now: float,
    exclude: str | None = None,
) -> str | None:
    """Stop at ``at`` the running period that started before it (there is at most one)."""
    stopped = None
    for running in await ctx.storage.periods.running(conn, ctx.user_id, channel.id, exclude):
        if running.time < at:
            await ctx.storage.periods.stop(
                conn, ctx.user_id, channel.id, running.id, at, now, ctx.writer
            )
            stopped = running.id
            after = replace(running, duration=at - running.time, modified=now)
            ctx.events_changed(channel.id, running, after)
    return stopped


@dataclass(frozen=True, slots=True)
class NewPeriod:
    """A period of a batch, named by its ``clientId``."""

    client_id: str
    start: float
    end: float  # +inf while running


async def place_batch(
    ctx: CallContext, conn: Any, channel: Channel, batch: Sequence[NewPeriod], now: float
) -> str | None:
    """The rules for a batch of new periods: they may not overlap each other nor stored
    periods; the running period is stopped by the earliest batch period starting after it.

    Errors name the offending ``clientId``. Cost: a sort, one lock-held UPDATE at most,
    and one query with one index probe per period (see ``PeriodsStore.first_overlaps``).
    """
    if not channel.enforce_no_events_overlap or not batch:
        return None
    ordered = sorted(batch, key=lambda p: (p.start, p.end))
    latest = ordered[0]
    for period in ordered[1:]:
        if period.start < latest.end:
            raise errors.PeriodsOverlap(
                f"period {period.client_id!r} overlaps period {latest.client_id!r} of the batch",
                {
                    "clientId": period.client_id,
                    "overlappedIds": [],
                    "overlappedClientIds": [latest.client_id],
                },
            )
        if period.end >= latest.end:
            latest = period
    stopped = None
    running = await ctx.storage.periods.running(conn, ctx.user_id, channel.id)
    if running:
        after = [p.start for p in ordered if p.start > running[0].time]
        if after:
            stopped = await _stop_running_before(ctx, conn, channel, min(after), now)
    index = await ctx.storage.periods.first_overlaps(
        conn, ctx.user_id, channel.id, [p.start for p in batch], [p.end for p in batch]
    )
    if index is None:
        return await readable_id(ctx, conn, channel.id, stopped)
    culprit = batch[index]
    overlapped = await ctx.storage.periods.overlapping(
        conn, ctx.user_id, channel.id, culprit.start, culprit.end
    )
    raise errors.PeriodsOverlap(
        f"period {culprit.client_id!r} overlaps stored periods",
        {
            "clientId": culprit.client_id,
            "overlappedIds": await readable_ids(ctx, conn, channel.id, overlapped),
        },
    )
