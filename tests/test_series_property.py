"""Property: points appended in any batches, in any order, with repeated deltaTimes, read
back as one series sorted by deltaTime, each deltaTime once with its last value, stored
in chunks that never overlap (storage/series.py against a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pryvrt.storage.database import SCHEMA_PATH
from pryvrt.storage.series import SeriesStore

# deltaTimes from a small set, so that appends overlap and repeat each other; chunks of
# 8 points, so that a few dozen points make merges across many chunks.
TIMES = st.integers(0, 200).map(lambda i: i / 4)
POINT = st.tuples(TIMES, st.floats(-1e6, 1e6, allow_nan=False))
APPENDS = st.lists(st.lists(POINT, min_size=1, max_size=40), min_size=1, max_size=12)


async def run(url: str, event_id: str, appends: list[list[tuple[float, float]]]) -> Any:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO events (user_id, channel_id, id, time, is_period, duration, type,"
            " modified) VALUES ('u', 'c', $1, 0, true, 0, 'series:mass/kg', 0)",
            event_id,
        )
        store = SeriesStore(conn)  # type: ignore[arg-type]  # a connection answers fetch too
        store.chunk_points = 8
        for points in appends:
            async with conn.transaction():
                await store.append(conn, "u", "c", event_id, np.array(points, dtype=np.float64))
        stored = await store.read("u", "c", event_id, 2, -np.inf, np.inf)
        chunks = await store.chunks("u", "c", event_id, -np.inf, np.inf)
        return stored, chunks
    finally:
        await conn.close()


async def prepare(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA_PATH.read_text())
        await conn.execute(
            "INSERT INTO users (user_id, username, password_hash, created)"
            " VALUES ('u', 'someone', 'x', 0) ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO channels (user_id, id, name, modified) VALUES ('u', 'c', 'c', 0)"
            " ON CONFLICT DO NOTHING"
        )
    finally:
        await conn.close()


def test_random_appends_in_random_order_make_one_sorted_series(database_url: str) -> None:
    asyncio.run(prepare(database_url))
    counter = itertools.count()

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(appends=APPENDS)
    def check(appends: list[list[tuple[float, float]]]) -> None:
        expected: dict[float, float] = {}
        for points in appends:
            expected.update(points)  # the last value given for a deltaTime wins
        stored, chunks = asyncio.run(run(database_url, f"e{next(counter)}", appends))
        assert [tuple(p) for p in stored.tolist()] == sorted(expected.items())
        assert sum(c.n for c in chunks) == len(expected)
        assert all(c.n <= 8 and c.t_min <= c.t_max for c in chunks)
        assert all(a.t_max < b.t_min for a, b in itertools.pairwise(chunks))

    check()
