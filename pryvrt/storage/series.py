"""Series points in PostgreSQL: chunks of up to 4096 points per row (API.md §15).

Why chunks and not a row per point: a row costs ~40 bytes of header and index entry before
its data, and a point is 16-24 bytes of numbers; 50 points a second for a year is 1.6
billion rows. A chunk row carries a few thousand points, compressed column by column
(``series_codec``: 1.4 bytes per point for a heart rate, 8 for a GPS track), with its
deltaTime range (``t_min``, ``t_max``) in the key, so a range read fetches only the chunks
that overlap it, and with per-block summaries that a decimated view reads instead of the
points. Chunks of one series never overlap: an append that falls inside stored chunks
rewrites those chunks merged with the new points (and fewer points than a chunk top up a
small last chunk), so reads never sort nor deduplicate. Callers hold the event's row lock
(one writer per series). Rows go in by binary COPY; they are deleted with their event
(foreign key).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import numpy as np

from pryvrt.storage.base import Executor, Store
from pryvrt.storage.series_codec import (
    BLOCK_HEAD,
    CHUNK_POINTS,
    Points,
    blocks_of,
    cpu,
    decode,
    decode_all,
    encode_chunks,
    sorted_unique,
    summarize,
)

KEY = "user_id = $1 AND channel_id = $2 AND event_id = $3"
# The chunks of one series overlapping [$4, $5], in order.
IN_RANGE = f"WHERE {KEY} AND t_min <= $5 AND t_max >= $4 ORDER BY t_min"
COLUMNS = ("user_id", "channel_id", "event_id", "t_min", "t_max", "n", "data", "blocks")


@dataclass(frozen=True, slots=True)
class Chunk:
    t_min: float
    t_max: float
    n: int


class SeriesStore(Store):
    # Points per chunk (tests use small chunks to exercise merges with few points).
    chunk_points = CHUNK_POINTS

    async def append(
        self,
        conn: asyncpg.Connection,
        user_id: str,
        channel_id: str,
        event_id: str,
        points: Points,
    ) -> float:
        """Add points (any order; of equal deltaTimes the last given wins, stored ones
        included) in ``conn``'s transaction; returns the largest deltaTime added."""
        new = await cpu(len(points), sorted_unique, points)
        lo, hi = float(new[0, 0]), float(new[-1, 0])
        key = (user_id, channel_id, event_id)
        size = self.chunk_points
        # A write of a chunk or more is encoded (in threads) while the stored chunks it
        # touches are looked up: it usually touches none (it follows the stored points).
        large = len(new) >= size
        encoding = asyncio.ensure_future(encode_chunks(new, size)) if large else None
        try:
            rows = await conn.fetch(
                f"(SELECT t_min, t_max, n, data FROM series_chunks WHERE {KEY}"
                " AND t_min <= $5 AND t_max >= $4)"
                # The chunk just before: topped up while small by fewer points than a chunk
                # (points that stream in).
                f" UNION ALL (SELECT t_min, t_max, n, data FROM series_chunks WHERE {KEY}"
                " AND t_min < $4 AND t_max < $4"
                " ORDER BY t_min DESC LIMIT 1) ORDER BY t_min",
                *key,
                lo,
                hi,
            )
            merged = [r for r in rows if r["t_max"] >= lo or (not large and r["n"] < size)]
            if merged:
                if encoding is not None:
                    encoding.cancel()
                old = [(r["data"], r["n"]) for r in merged]
                new = await cpu(len(new), _merge, old, new, points.shape[1])
                encoding = asyncio.ensure_future(encode_chunks(new, size))
                await conn.execute(
                    f"DELETE FROM series_chunks WHERE {KEY} AND t_min = ANY($4::float8[])",
                    *key,
                    [r["t_min"] for r in merged],
                )
            elif encoding is None:
                encoding = asyncio.ensure_future(encode_chunks(new, size))
            encoded = await encoding
        except BaseException:
            if encoding is not None:
                encoding.cancel()
            raise
        await conn.copy_records_to_table(
            "series_chunks", records=[(*key, *row) for row in encoded], columns=COLUMNS
        )
        return hi

    async def chunks(
        self, user_id: str, channel_id: str, event_id: str, lo: float, hi: float
    ) -> list[Chunk]:
        """The chunks overlapping ``[lo, hi]``, in order (no points read)."""
        rows = await self.pool.fetch(
            "SELECT t_min, t_max, n FROM series_chunks " + IN_RANGE,
            user_id,
            channel_id,
            event_id,
            lo,
            hi,
        )
        return [Chunk(r["t_min"], r["t_max"], r["n"]) for r in rows]

    async def read(
        self, user_id: str, channel_id: str, event_id: str, width: int, lo: float, hi: float
    ) -> Points:
        """The points with ``lo <= deltaTime <= hi``, sorted."""
        rows = await self.pool.fetch(
            "SELECT n, data FROM series_chunks " + IN_RANGE,
            user_id,
            channel_id,
            event_id,
            lo,
            hi,
        )
        total = sum(r["n"] for r in rows)
        points = await cpu(total, decode_all, [(r["data"], r["n"]) for r in rows], width)
        return within(points, lo, hi)

    async def summaries(
        self, user_id: str, channel_id: str, event_id: str, width: int, lo: float, hi: float
    ) -> Points:
        """Block summaries (``series_codec.summarize``) of the points in ``[lo, hi]``: the
        stored ones of chunks wholly inside, computed from the points of the (at most two)
        chunks across an end of the range."""
        rows = await self.pool.fetch(
            "SELECT n, CASE WHEN inside THEN NULL ELSE data END AS data,"
            " CASE WHEN inside THEN blocks END AS blocks FROM ("
            f"SELECT *, t_min >= $4 AND t_max <= $5 AS inside FROM series_chunks WHERE {KEY}"
            " AND t_min <= $5 AND t_max >= $4) AS c ORDER BY t_min",
            user_id,
            channel_id,
            event_id,
            lo,
            hi,
        )
        parts = []
        for row in rows:
            if row["blocks"] is not None:
                parts.append(blocks_of(row["blocks"], width))
            else:
                edge = within(decode(row["data"], row["n"], width), lo, hi)
                if len(edge):
                    parts.append(summarize(edge))
        if not parts:
            return np.empty((0, BLOCK_HEAD + 4 * (width - 1)))
        return np.concatenate(parts)

    async def count(self, conn: Executor, user_id: str, channel_id: str, event_id: str) -> int:
        total: int = await (conn or self.pool).fetchval(
            f"SELECT coalesce(sum(n), 0) FROM series_chunks WHERE {KEY}",
            user_id,
            channel_id,
            event_id,
        )
        return total


def _merge(old: list[tuple[bytes, int]], new: Points, width: int) -> Points:
    """Stored chunks and new points as one sorted series (new points win ties)."""
    return sorted_unique(np.concatenate([decode_all(old, width), new]))


def within(points: Points, lo: float, hi: float) -> Points:
    """The sorted points with ``lo <= deltaTime <= hi``."""
    times = points[:, 0]
    start = int(np.searchsorted(times, lo, side="left"))
    end = int(np.searchsorted(times, hi, side="right"))
    return points[start:end]
