"""Series scenarios (API.md §15): ingest through events.addSeriesPoints against a bare COPY
of the same points in the same run, a 1M-point range read, a decimated 1000-bucket view of
the whole series, and bytes per point on disk (pg_total_relation_size)."""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from typing import Any

import aiohttp
import asyncpg
import numpy as np
import orjson
import psutil

from pryvrt.storage.series import COLUMNS
from pryvrt.storage.series_codec import encode_chunks

PER_REQUEST = 100_000
HZ = 50.0
# events.get alone, before the ingest: the latency it has without it.
IDLE_SECONDS = 2.0


def heart_rate(start: int, count: int) -> np.ndarray:
    """``count`` points from point ``start`` of a 50 Hz heart rate (bpm, 0.1 resolution)."""
    index = np.arange(start, start + count)
    rng = np.random.default_rng(start)
    bpm = 70 + 10 * np.sin(index / 3000) + rng.normal(0, 0.5, count)
    return np.stack([index / HZ, bpm.round(1)], axis=1)


class Probe:
    """events.get in a closed loop from a process of its own (``probe_main``), so that the
    ingest client's own pauses (building the next body, reading a reply) never delay it:
    only the server's time shows."""

    def __init__(self, url: str, auth: str) -> None:
        self.argv = [sys.executable, __file__, "probe", url, auth]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Returns once the probe has its connection and its first answer."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        assert line == b"ready\n", line

    async def stop(self) -> list[float]:
        """The round trips (ms) since ``start``."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()  # the probe stops
        out, _ = await self.proc.communicate()
        assert self.proc.returncode == 0, self.proc.returncode
        samples: list[float] = orjson.loads(out)
        return samples

    async def sample(self, seconds: float) -> list[float]:
        await self.start()
        await asyncio.sleep(seconds)
        return await self.stop()


def probe_main(url: str, auth: str) -> None:
    """The probe process: GET ``url`` in a closed loop until its stdin closes, then print
    the round trips (ms) as JSON."""

    async def probe() -> list[float]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def closed() -> None:
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

        loop.add_reader(sys.stdin.fileno(), closed)
        samples: list[float] = []
        async with aiohttp.ClientSession() as http:
            ready = False
            while not stop.is_set():
                t0 = time.perf_counter()
                async with http.get(url, headers={"Authorization": auth}) as reply:
                    await reply.read()
                    assert reply.status == 200, reply.status
                if ready:
                    samples.append((time.perf_counter() - t0) * 1000)
                else:  # the first call opens the connection: not counted
                    ready = True
                    sys.stdout.write("ready\n")
                    sys.stdout.flush()
        return samples

    sys.stdout.write(orjson.dumps(asyncio.run(probe())).decode())


async def run(c: Any, other: Any, total: int, database_url: str, pid: int) -> dict[str, Any]:
    await other.setup_user()
    diary = await other.channel("diary")
    await other.seed(diary, 1000, 1e9, 60.0)
    probe = Probe(f"{other.base}/{other.username}/{diary}/events?limit=20", other.auth)
    idle = await probe.sample(IDLE_SECONDS)
    await c.setup_user()
    channel = await c.channel("series")
    created = await c.call(
        "POST", f"/{c.username}/{channel}/events", {"type": "series:frequency/bpm", "time": 1e9}
    )
    event_id = created["id"]
    url = f"{c.base}/{c.username}/{channel}/events/{event_id}/series"
    headers = {"Authorization": c.auth, "Content-Type": "application/json"}

    def body_of(start: int) -> bytes:
        points = heart_rate(start, PER_REQUEST)
        return orjson.dumps(
            {"format": "flatJSON", "fields": ["deltaTime", "value"], "points": points},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    async def post(body: bytes) -> float:
        t0 = time.perf_counter()
        async with c.http.post(url, data=body, headers=headers) as reply:
            raw = await reply.read()
        assert reply.status == 200, raw[:300]
        return time.perf_counter() - t0

    # The first half of the points alone (the ingest rate), the second half while another
    # user's events.get runs in a closed loop on the same worker (its latency meanwhile).
    half = total // PER_REQUEST // 2 * PER_REQUEST
    # The server's CPU time per request (alone): what the machine's load barely moves.
    server = psutil.Process(pid)
    cpu_start = sum(server.cpu_times()[:2])
    alone = [await post(body_of(start)) for start in range(0, half, PER_REQUEST)]
    cpu_alone = sum(server.cpu_times()[:2]) - cpu_start
    # The second half's bodies are built beforehand: the server ingests back to back while
    # the probe runs (no pause of this client's between two requests).
    bodies = [body_of(start) for start in range(half, total, PER_REQUEST)]
    await probe.start()
    busy = [await post(body) for body in bodies]
    during = await probe.stop()
    del bodies
    rates = [PER_REQUEST / seconds for seconds in alone]
    rates_busy = [PER_REQUEST / seconds for seconds in busy]
    elapsed_total = sum(alone) + sum(busy)
    conn = await asyncpg.connect(database_url)
    try:
        size = await conn.fetchval("SELECT pg_total_relation_size('series_chunks')")
        await conn.execute("VACUUM ANALYZE series_chunks")
    finally:
        await conn.close()
    # Read: 1M points of a range (the middle of the series), end to end with the decode.
    span = min(total, 1_000_000)
    lo = (total - span) // 2 / HZ
    hi = lo + (span - 1) / HZ
    reads, answered, decoded, decoded_gc = [], [], [], []
    for _ in range(3):
        t0 = time.perf_counter()
        async with c.http.get(
            f"{url}?fromDeltaTime={lo}&toDeltaTime={hi}", headers=headers
        ) as reply:
            raw = await reply.read()
        t1 = time.perf_counter()
        # A client decoding a large answer pauses the garbage collector meanwhile: its
        # passes would walk the million new lists again and again (3x the decoding time).
        gc.disable()
        try:
            got = orjson.loads(raw)
        finally:
            gc.enable()
        t2 = time.perf_counter()
        reads.append(t2 - t0)
        answered.append(t1 - t0)
        decoded.append(t2 - t1)
        assert len(got["points"]) == span, len(got["points"])
        del got
        t3 = time.perf_counter()
        orjson.loads(raw)  # the same, the collector running
        decoded_gc.append(time.perf_counter() - t3)
    views = []
    for _ in range(5):
        t0 = time.perf_counter()
        async with c.http.get(f"{url}?maxPoints=1000", headers=headers) as reply:
            view = orjson.loads(await reply.read())
        views.append(time.perf_counter() - t0)
        assert 990 <= len(view["points"]) <= 1000 and sum(p[1] for p in view["points"]) == total
    # The floors: the same points, as the same rows, by a bare COPY into the same table, for
    # another series event (then removed). The rows are encoded by the server's own encoder
    # (series_codec.encode_chunks: the same chunk size, zlib level and threads), timed apart
    # from the COPY: "COPY" alone is the database's write cost, "encode + COPY" the cheapest
    # way into series_chunks from a float matrix (no HTTP, JSON, checks or transaction).
    second = await c.call(
        "POST", f"/{c.username}/{channel}/events", {"type": "series:frequency/bpm", "time": 1e9}
    )
    copy_seconds = encode_seconds = 0.0
    conn = await asyncpg.connect(database_url)
    try:
        user_id = await conn.fetchval("SELECT user_id FROM users WHERE username = $1", c.username)
        key = (user_id, channel, second["id"])
        for start in range(0, total, PER_REQUEST):
            points = heart_rate(start, PER_REQUEST)
            t0 = time.perf_counter()
            rows = [(*key, *row) for row in await encode_chunks(points)]
            t1 = time.perf_counter()
            encode_seconds += t1 - t0
            await conn.copy_records_to_table("series_chunks", records=rows, columns=COLUMNS)
            copy_seconds += time.perf_counter() - t1
        await conn.execute("DELETE FROM series_chunks WHERE event_id = $1", second["id"])
        # The same points as one row each (deltaTime, value): what "a row per point" costs.
        await conn.execute(
            "CREATE TEMPORARY TABLE point_rows (user_id text, event_id text, t float8, v float8)"
        )
        rows_seconds = 0.0
        for start in range(0, total, PER_REQUEST):
            points = heart_rate(start, PER_REQUEST)
            records = [(user_id, second["id"], t, v) for t, v in points.tolist()]
            t0 = time.perf_counter()
            await conn.copy_records_to_table("point_rows", records=records)
            rows_seconds += time.perf_counter() - t0
            if start >= 1_000_000:
                rows_seconds *= total / (start + PER_REQUEST)  # extrapolated past 1M points
                break
    finally:
        await conn.close()
    return {
        "ingest": statistics.median(rates),
        "ingest_busy": statistics.median(rates_busy),
        "cpu_ms": cpu_alone * 1000 / (half // PER_REQUEST),
        "ingest_overall": total / elapsed_total,
        "copy": total / copy_seconds,
        "copy_encoded": total / (copy_seconds + encode_seconds),
        "read_s": statistics.median(reads),
        "read_answered_s": statistics.median(answered),
        "read_decoded_s": statistics.median(decoded),
        "read_decoded_gc_s": statistics.median(decoded_gc),
        "read_points": span,
        "view_ms": statistics.median(views) * 1000,
        "bytes_per_point": size / total,
        "copy_rows": total / rows_seconds,
        "get_idle": statistics.median(idle),
        "get_during": statistics.median(during) if during else float("nan"),
        "gets_during": len(during),
    }


def scenario_series(bench: Any, Row: Any, start_pryvrt: Any, with_client: Any, mib: int) -> None:
    total = 2_000_000 if bench.quick else 10_000_000
    server = start_pryvrt(bench.database_url)
    try:
        server.reset_peak()

        async def both(c: Any) -> dict[str, Any]:
            other = type(c)(c.http, c.base)
            await asyncio.sleep(0.01)  # distinct usernames (they come from the clock)
            return await run(c, other, total, bench.database_url, server.proc.pid)

        found = asyncio.run(with_client(server, both))
        rss = server.peak_rss / mib
        ratio = found["ingest"] / found["copy"]
        ratio_encoded = found["ingest"] / found["copy_encoded"]
        bench.add(
            Row(
                "series ingest (flatJSON, 100 000 points/request)",
                found["ingest"],
                "points/s",
                peak_rss_mib=rss,
                note=f"alone, server CPU {found['cpu_ms']:.0f} ms per request;"
                f" {found['ingest_busy']:,.0f}/s while events.get runs in a"
                f" closed loop on the same worker; overall {found['ingest_overall']:,.0f}/s;"
                f" {ratio:.2f} x bare COPY of"
                f" encoded rows, {ratio_encoded:.2f} x encode + COPY"
                " (target >= 1 000 000/s and >= 0.5 x COPY)",
            )
        )
        bench.add(
            Row(
                "series bare COPY of the same rows (floor)",
                found["copy"],
                "points/s",
                note="rows encoded beforehand (not timed): the database's write cost only",
            )
        )
        bench.add(
            Row(
                "series encode + bare COPY of the same rows",
                found["copy_encoded"],
                "points/s",
                note="from the float matrix, by the server's encoder (same chunks, zlib level,"
                " threads): the server's floor without HTTP, JSON, checks and transaction",
            )
        )
        bench.add(
            Row(
                "series bare COPY, a row per point (no index)",
                found["copy_rows"],
                "points/s",
                note=f"ingest is {found['ingest'] / found['copy_rows']:.2f} x this",
            )
        )
        bench.add(
            Row(
                "events.get (limit 20) of another user",
                1000 / found["get_during"],
                "req/s",
                p50_ms=found["get_during"],
                note=f"during the ingest ({found['gets_during']} calls, from another"
                f" process); idle p50 {found['get_idle']:.2f} ms"
                f" ({found['get_during'] / found['get_idle']:.2f} x), same worker",
            )
        )
        bench.add(
            Row(
                f"series read of {found['read_points']:,} points",
                found["read_points"] / found["read_s"],
                "points/s",
                p50_ms=found["read_s"] * 1000,
                note=f"end to end (target <= 1 s): answered in {found['read_answered_s']:.2f} s,"
                f" decoded by this client (orjson, GC paused) in {found['read_decoded_s']:.2f} s"
                f" ({found['read_decoded_gc_s']:.2f} s with the GC running)",
            )
        )
        bench.add(
            Row(
                f"series 1000-bucket view of {total:,} points",
                1000 / found["view_ms"],
                "views/s",
                p50_ms=found["view_ms"],
                note="min/max/mean per bucket (target <= 100 ms)",
            )
        )
        bench.add(
            Row(
                "series bytes per point on disk",
                found["bytes_per_point"],
                "B/point",
                note="deltaTime + value, pg_total_relation_size (target <= 16)",
            )
        )
    finally:
        server.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    probe_main(*sys.argv[2:4])
