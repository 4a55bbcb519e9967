"""How a chunk of series points is stored, and the block summaries decimated views read.

A chunk holds up to ``CHUNK_POINTS`` points sorted by deltaTime (no two equal), as one
float64 matrix ``(n, F)``: column 0 is deltaTime, then the type's fields in the order of
its ``content.fields`` (a null optional field is NaN). It is stored as two bytea values:

- ``data``: lossless and compact. Each column's IEEE-754 bit patterns are delta-encoded
  (consecutive samples of a signal share their sign, exponent and leading mantissa bits,
  so the difference of two bit patterns read as integers is small), zigzag-folded (small
  negative → small positive), then byte-shuffled (byte k of every value together: the
  leading bytes become long runs of zeros), then deflated (zlib level 1). Decoding is the
  reverse, every step a numpy vector operation: ~100 MB/s of points either way.
- ``blocks``: per block of ``BLOCK_POINTS`` consecutive points, ``[first deltaTime, last
  deltaTime, points]`` then, per field, ``[count of non-null values, min, max, sum]``
  (float64).
  A decimated view of a long range reads these summaries (1/20 of the points' bytes for
  two fields) instead of the points (see ``bucketize``).
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Callable
from itertools import pairwise
from typing import TypeVar

import numpy as np
import numpy.typing as npt

CHUNK_POINTS = 4096
BLOCK_POINTS = 128
# Columns of a block summary before the per-field ones.
BLOCK_HEAD = 3

Points = npt.NDArray[np.float64]
T = TypeVar("T")
# Work on more points than this runs in a thread: the event loop keeps serving other
# requests meanwhile (zlib and most numpy operations release the GIL; the rest is shared
# with the loop in 5 ms slices instead of blocking it for the whole request).
OFF_LOOP_POINTS = 20_000
# Threads encoding the chunks of a large write at once: zlib and numpy's vector operations
# release the GIL, so they run on two cores (the encoding of 100 000 points, ~11 ms on one,
# is most of a write's time after its decoding).
ENCODE_THREADS = min(2, os.cpu_count() or 1)


async def cpu(points: int, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)``: in a thread when it handles more than OFF_LOOP_POINTS points."""
    if points > OFF_LOOP_POINTS:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


def encode(points: Points) -> bytes:
    """``(n, F)`` float64 → bytes (see the module docstring)."""
    n, width = points.shape
    bits = np.ascontiguousarray(points).view(np.int64)
    delta = np.empty_like(bits)
    delta[0] = bits[0]
    np.subtract(bits[1:], bits[:-1], out=delta[1:])  # wraps around like the decoder's sum
    folded = (delta << 1) ^ (delta >> 63)
    planes = folded.view(np.uint8).reshape(n, width, 8).transpose(1, 2, 0)
    return zlib.compress(np.ascontiguousarray(planes).tobytes(), 1)


def decode(data: bytes, n: int, width: int) -> Points:
    """The inverse of ``encode`` (``n`` points of ``width`` columns)."""
    planes = np.frombuffer(zlib.decompress(data), np.uint8).reshape(width, 8, n)
    folded = np.ascontiguousarray(planes.transpose(2, 0, 1)).view(np.int64).reshape(n, width)
    delta = (folded >> 1) & np.int64(0x7FFFFFFFFFFFFFFF)
    delta ^= -(folded & 1)
    bits = np.cumsum(delta, axis=0, dtype=np.int64)
    return bits.view(np.float64)


def summarize(points: Points, size: int = BLOCK_POINTS) -> Points:
    """Block summaries of sorted points: one row per ``size`` points, ``3 + 4 * fields``
    columns (first and last deltaTime, points; per field count, min, max, sum; an
    all-null field has count 0, min +inf, max -inf, sum 0)."""
    n, width = points.shape
    starts = np.arange(0, n, size)
    values = points[:, 1:]
    present = ~np.isnan(values)
    ends = np.minimum(starts + size, n)
    out = np.empty((len(starts), BLOCK_HEAD + 4 * (width - 1)))
    out[:, 0] = points[starts, 0]
    out[:, 1] = points[ends - 1, 0]
    out[:, 2] = ends - starts
    out[:, 3::4] = np.add.reduceat(present, starts, axis=0)
    out[:, 4::4] = np.minimum.reduceat(np.where(present, values, np.inf), starts, axis=0)
    out[:, 5::4] = np.maximum.reduceat(np.where(present, values, -np.inf), starts, axis=0)
    out[:, 6::4] = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)
    return out


def blocks_of(data: bytes, width: int) -> Points:
    """Stored block summaries (``summarize``'s rows) from their bytes."""
    return np.frombuffer(data, np.float64).reshape(-1, BLOCK_HEAD + 4 * (width - 1))


def bucketize(blocks: Points, start: float, step: float, buckets: int) -> Points:
    """Merge consecutive block summaries (sorted by time) into buckets of ``step`` seconds
    from ``start``: a block goes whole to the bucket of its first deltaTime. One row per
    non-empty bucket: ``[bucket start, points, then per field min, max, mean]`` (a field
    null throughout the bucket has null min, max and mean)."""
    fields = (blocks.shape[1] - BLOCK_HEAD) // 4
    if len(blocks) == 0:
        return np.empty((0, 2 + 3 * fields))
    if step > 0:
        index = np.floor((blocks[:, 0] - start) / step)
        index = np.clip(index, 0, buckets - 1).astype(np.int64)
    else:
        index = np.zeros(len(blocks), np.int64)
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    out = np.empty((len(starts), 2 + 3 * fields))
    out[:, 0] = start + index[starts] * step
    out[:, 1] = np.add.reduceat(blocks[:, 2], starts)
    counts = np.add.reduceat(blocks[:, 3::4], starts, axis=0)
    lows = np.minimum.reduceat(blocks[:, 4::4], starts, axis=0)
    highs = np.maximum.reduceat(blocks[:, 5::4], starts, axis=0)
    sums = np.add.reduceat(blocks[:, 6::4], starts, axis=0)
    empty = counts == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    lows[empty] = np.nan
    highs[empty] = np.nan
    means[empty] = np.nan
    out[:, 2::3] = lows
    out[:, 3::3] = highs
    out[:, 4::3] = means
    return out


def sorted_unique(points: Points) -> Points:
    """Points sorted by deltaTime; of several with the same deltaTime, the last one given
    wins (so a retried or corrected append replaces what it resends). Points already in
    strictly increasing order (the usual append, a merge after the stored ones) are
    returned as they are."""
    times = points[:, 0]
    if len(times) < 2 or bool((times[1:] > times[:-1]).all()):
        return points
    order = np.argsort(times, kind="stable")
    ordered = points[order]
    times = ordered[:, 0]
    last = np.r_[times[1:] != times[:-1], True]
    return ordered if last.all() else ordered[last]


def split(points: Points, size: int = CHUNK_POINTS) -> list[Points]:
    """Sorted points cut into as few chunks of at most ``size`` points as possible, of
    equal sizes (no small tail chunk)."""
    n = len(points)
    parts = max(1, -(-n // size))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [points[a:b] for a, b in pairwise(bounds)]


Row = tuple[float, float, int, bytes, bytes]


def chunk_rows(points: Points, size: int = CHUNK_POINTS) -> list[Row]:
    """Sorted points as stored rows: ``(t_min, t_max, n, data, blocks)`` per chunk."""
    return _rows(split(points, size))


def _rows(parts: list[Points]) -> list[Row]:
    return [
        (float(part[0, 0]), float(part[-1, 0]), len(part), encode(part), summarize(part).tobytes())
        for part in parts
    ]


async def encode_chunks(points: Points, size: int = CHUNK_POINTS) -> list[Row]:
    """``chunk_rows``, by ``ENCODE_THREADS`` threads at once when there are many points."""
    parts = split(points, size)
    threads = min(ENCODE_THREADS, len(parts))
    if len(points) <= OFF_LOOP_POINTS or threads < 2:
        return await cpu(len(points), _rows, parts)
    bounds = [len(parts) * i // threads for i in range(threads + 1)]
    done = await asyncio.gather(
        *(asyncio.to_thread(_rows, parts[a:b]) for a, b in pairwise(bounds))
    )
    return [row for rows in done for row in rows]


def decode_all(rows: list[tuple[bytes, int]], width: int) -> Points:
    """Stored chunks ``(data, n)``, in order, as one matrix."""
    if not rows:
        return np.empty((0, width))
    return np.concatenate([decode(data, n, width) for data, n in rows])
