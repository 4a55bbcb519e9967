"""Server CPU time per call: what a code change costs, even on a machine busy with other jobs.

    .venv/bin/python scripts/bench_tools/cpu_per_call.py [N]

Rates measured with wrk move with the machine's load (other processes take the cores);
the CPU time the pryvrt process spends per call barely does. This starts pryvrt (embedded
PostgreSQL, one worker), makes N calls of each kind with 8 in flight, and prints the
server's CPU microseconds (user + system) per call, the median of 3 rounds. To compare
two commits, run it from each (``PYTHONPATH=<other tree>`` runs another tree's server: the
server starts in a temporary directory, since ``python -m`` puts its working directory
first on ``sys.path`` and a server started in a tree would run that tree's code).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_tools.services import postgres, start_pryvrt

IN_FLIGHT = 8


async def cpu_per_call(
    pid: int, n: int, call: Callable[[int], Awaitable[None]], rounds: int = 3
) -> float:
    proc = psutil.Process(pid)

    async def run(count: int) -> None:
        queue = iter(range(count))

        async def lane() -> None:
            for i in queue:
                await call(i)

        await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))

    await run(min(n, 200))  # warm up
    results = []
    for _ in range(rounds):
        before = proc.cpu_times()
        await run(n)
        after = proc.cpu_times()
        used = (after.user - before.user) + (after.system - before.system)
        results.append(used / n * 1e6)
    return statistics.median(results)


async def measure(url: str, pid: int, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with aiohttp.ClientSession(url) as http:
        user = f"cpu{int(time.time())}"
        async with http.post("/users", json={"username": user, "password": "pw-123456"}) as r:
            assert r.status == 201, await r.text()
        async with http.post(
            f"/{user}/login", json={"userName": user, "password": "pw-123456"}
        ) as r:
            session = (await r.json())["sessionID"]
        auth = {"Authorization": session}

        async def post(path: str, body: object) -> dict[str, object]:
            async with http.post(f"/{user}{path}", json=body, headers=auth) as r:
                assert r.status in (200, 201), await r.text()
                return await r.json()  # type: ignore[no-any-return]

        loose = (await post("/channels", {"name": "loose", "enforceNoEventsOverlap": False}))["id"]
        folder = (await post(f"/{loose}/folders", {"name": "f"}))["id"]
        strict = (await post("/channels", {"name": "strict"}))["id"]
        strict_folder = (await post(f"/{strict}/folders", {"name": "f"}))["id"]

        async def mark(i: int) -> None:
            await post(f"/{loose}/events", {"time": 1000.0 + i})

        async def mark_in_folder(i: int) -> None:
            await post(f"/{loose}/events", {"time": 1000.0 + i, "folderId": folder})

        async def start(i: int) -> None:  # each stops the previous one (server time)
            await post(f"/{strict}/events/start", {"folderId": strict_folder})

        async def get(i: int) -> None:
            async with http.get(f"/{user}/{loose}/events?limit=20", headers=auth) as r:
                assert r.status == 200
                await r.read()

        out["events.create (mark, no folder)"] = await cpu_per_call(pid, n, mark)
        out["events.create (mark in a folder)"] = await cpu_per_call(pid, n, mark_in_folder)
        out["events.start (strict channel)"] = await cpu_per_call(pid, n // 4, start)
        out["events.get limit=20"] = await cpu_per_call(pid, n, get)

        sio = socketio.AsyncClient()
        await sio.connect(
            url, namespaces=[f"/{user}"], auth={"token": session}, transports=["websocket"]
        )

        async def socket_get(i: int) -> None:
            error, _ = await sio.call(
                "events.get", {"channelId": loose, "limit": 20}, namespace=f"/{user}"
            )
            assert error is None

        out["Socket.IO events.get limit=20"] = await cpu_per_call(pid, n, socket_get)
        await sio.disconnect()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory(prefix="pryvrt-cpu-") as work, postgres(Path(work)) as dsn:
        os.chdir(work)  # the server inherits it: no tree's pryvrt shadows PYTHONPATH's
        server = start_pryvrt(dsn)
        try:
            results = asyncio.run(measure(server.url, server.worker_pids()[0], n))
        finally:
            server.stop()
    print("| call | server CPU µs per call |")
    print("|---|---|")
    for name, micros in results.items():
        print(f"| {name} | {micros:,.0f} |")


if __name__ == "__main__":
    main()
