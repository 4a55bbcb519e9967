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
from pryvrt.storage.series_codec import OFF_LOOP_POINTS, chunk_rows, encode_chunks

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


class Rollback(Exception):
    pass


async def large_appends(url: str) -> tuple[Any, Any, Any, int]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO events (user_id, channel_id, id, time, is_period, duration, type,"
            " modified) VALUES ('u', 'c', 'large', 0, true, 0, 'series:mass/kg', 0)"
        )
        store = SeriesStore(conn)  # type: ignore[arg-type]  # a connection answers fetch too
        rng = np.random.default_rng(7)
        first = np.stack([np.arange(60_000) / 50, rng.normal(70, 5, 60_000)], axis=1)
        # Overlaps the second half of the first, shuffled, with other values: a merge of
        # points encoded by several threads (after the speculative encoding is dropped).
        second = np.stack([np.arange(30_000, 90_000) / 50, rng.normal(0, 1, 60_000)], axis=1)
        second = second[rng.permutation(len(second))]
        for points in (first, second):
            async with conn.transaction():
                await store.append(conn, "u", "c", "large", points)
        expected = {**dict(first.tolist()), **dict(second.tolist())}
        # A large write rolled back after its encoding and COPY leaves nothing behind.
        try:
            async with conn.transaction():
                later = np.stack([np.arange(90_000, 150_000) / 50, np.ones(60_000)], axis=1)
                await store.append(conn, "u", "c", "large", later)
                raise Rollback
        except Rollback:
            pass
        stored = await store.read("u", "c", "large", 2, -np.inf, np.inf)
        chunks = await store.chunks("u", "c", "large", -np.inf, np.inf)
        return stored, chunks, expected, await store.count(conn, "u", "c", "large")
    finally:
        await conn.close()


def test_large_appends_encoded_by_threads_merge_into_one_sorted_series(database_url: str) -> None:
    asyncio.run(prepare(database_url))
    stored, chunks, expected, count = asyncio.run(large_appends(database_url))
    assert [tuple(p) for p in stored.tolist()] == sorted(expected.items())
    assert count == sum(c.n for c in chunks) == len(expected) == 90_000
    assert all(c.n <= SeriesStore.chunk_points for c in chunks)
    assert all(a.t_max < b.t_min for a, b in itertools.pairwise(chunks))


async def chunk_sizes(url: str, appends: list[int]) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO events (user_id, channel_id, id, time, is_period, duration, type,"
            " modified) VALUES ('u', 'c', 'sizes', 0, true, 0, 'series:mass/kg', 0)"
        )
        store = SeriesStore(conn)  # type: ignore[arg-type]
        store.chunk_points = 100
        start = 0
        for count in appends:
            points = np.stack([np.arange(start, start + count), np.ones(count)], axis=1)
            start += count
            async with conn.transaction():
                await store.append(conn, "u", "c", "sizes", points.astype(np.float64))
        return [c.n for c in await store.chunks("u", "c", "sizes", -np.inf, np.inf)]
    finally:
        await conn.close()


def test_fewer_points_than_a_chunk_top_up_the_last_chunk_and_more_leave_it(
    database_url: str,
) -> None:
    asyncio.run(prepare(database_url))
    # 130 points: two chunks of 65; 150 more: two of 75 (encoded before the lookup, the
    # small last chunk left as it is); then 10: the last chunk topped up to 85.
    assert asyncio.run(chunk_sizes(database_url, [130, 150, 10])) == [65, 65, 75, 85]


def test_chunks_encoded_by_threads_are_the_rows_one_thread_encodes() -> None:
    rng = np.random.default_rng(3)
    points = np.stack([np.arange(100_000) / 50, rng.normal(70, 5, 100_000)], axis=1)
    assert len(points) > OFF_LOOP_POINTS
    assert asyncio.run(encode_chunks(points)) == chunk_rows(points)
