"""The queries behind the period rules (API.md §6.3): running periods, later periods, overlaps.

Only non-trashed periods take part (marks never do). Two periods overlap when each starts
before the other ends: ``a.time < b.end AND b.time < a.end`` (touching ends do not overlap).
Callers hold the channel's row lock (see ``pryvrt.methods.periods``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pryvrt.storage.base import Executor, Store
from pryvrt.storage.events import Event, event_from_row

# Series events (API.md §15) have a duration (the span of their points) but, like marks,
# never take part in the period rules.
PERIODS = (
    "user_id = $1 AND channel_id = $2 AND is_period AND NOT trashed"
    " AND (type IS NULL OR NOT starts_with(type, 'series:'))"
)
ID_LIMIT = 100


class PeriodsStore(Store):
    async def running(
        self, conn: Executor, user_id: str, channel_id: str, exclude: str | None = None
    ) -> list[Event]:
        rows = await conn.fetch(
            f"SELECT * FROM events WHERE {PERIODS} AND duration IS NULL"
            " AND id IS DISTINCT FROM $3 ORDER BY time",
            user_id,
            channel_id,
            exclude,
        )
        return [event_from_row(r) for r in rows]

    async def started_after(
        self, conn: Executor, user_id: str, channel_id: str, time: float, exclude: str | None
    ) -> list[str]:
        """Ids of the periods starting after ``time`` (at most ID_LIMIT)."""
        rows = await conn.fetch(
            f"SELECT id FROM events WHERE {PERIODS} AND time > $3"
            f" AND id IS DISTINCT FROM $4 ORDER BY time LIMIT {ID_LIMIT}",
            user_id,
            channel_id,
            time,
            exclude,
        )
        return [r["id"] for r in rows]

    async def stop(
        self,
        conn: Executor,
        user_id: str,
        channel_id: str,
        event_id: str,
        at: float,
        now: float,
        by: str,
    ) -> None:
        """End a running period at ``at`` (its duration becomes ``at - time``); ``by`` is
        the accessId of the credential whose call stopped it (implicitly or not)."""
        await conn.execute(
            "UPDATE events SET duration = greatest($4 - time, 0), modified = $5, modified_by = $6"
            " WHERE user_id = $1 AND channel_id = $2 AND id = $3",
            user_id,
            channel_id,
            event_id,
            at,
            now,
            by,
        )

    async def first_overlaps(
        self,
        conn: Executor,
        user_id: str,
        channel_id: str,
        starts: Sequence[float],
        ends: Sequence[float],
        exclude: str | None = None,
    ) -> int | None:
        """Index (in ``starts``) of the first interval overlapping a stored period, or None.

        Per interval, one index probe: the stored period starting last before the
        interval's end. In a strict channel stored periods never overlap, so ordered by
        start they are ordered by end too, and that period has the latest end of all the
        candidates (ties: the longest): the interval overlaps something iff it overlaps that one.
        """
        index: int | None = await conn.fetchval(
            "SELECT b.n FROM unnest($3::float8[], $4::float8[]) WITH ORDINALITY AS b(s, e, n)"
            " CROSS JOIN LATERAL (SELECT end_time FROM events"
            f" WHERE {PERIODS} AND time < b.e AND id IS DISTINCT FROM $5"
            " ORDER BY time DESC, end_time DESC LIMIT 1) AS last"
            " WHERE last.end_time > b.s ORDER BY b.n LIMIT 1",
            user_id,
            channel_id,
            list(starts),
            list(ends),
            exclude,
        )
        return None if index is None else index - 1

    async def overlapping(
        self,
        conn: Executor,
        user_id: str,
        channel_id: str,
        start: float,
        end: float,
        exclude: str | None = None,
    ) -> list[str]:
        """Ids of the stored periods overlapping ``[start, end)`` (at most ID_LIMIT).

        A plain range scan: used to name the culprits once ``first_overlaps`` found some.
        """
        rows = await conn.fetch(
            f"SELECT id FROM events WHERE {PERIODS} AND time < $3 AND end_time > $4"
            f" AND id IS DISTINCT FROM $5 ORDER BY time LIMIT {ID_LIMIT}",
            user_id,
            channel_id,
            end,
            start,
            exclude,
        )
        return [r["id"] for r in rows]

    async def conflicting(self, conn: Executor, user_id: str, channel_id: str) -> list[str]:
        """Ids of periods that break the strict rules together (two running periods overlap
        too): the first period, by start, that starts before an earlier one ends, then the
        periods it overlaps (at most ID_LIMIT in all); ``[]`` when the channel could be strict.

        One pass over the channel's periods in start order (the ``events_periods`` index),
        carrying the latest end seen so far.
        """
        row = await conn.fetchrow(
            "SELECT id, time, end_time FROM (SELECT id, time, end_time, max(end_time) OVER"
            " (ORDER BY time, end_time, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            f" AS reach FROM events WHERE {PERIODS}) AS p WHERE time < reach"
            " ORDER BY time, end_time, id LIMIT 1",
            user_id,
            channel_id,
        )
        if row is None:
            return []
        others = await self.overlapping(
            conn, user_id, channel_id, row["time"], row["end_time"], row["id"]
        )
        return [*others[: ID_LIMIT - 1], row["id"]]
