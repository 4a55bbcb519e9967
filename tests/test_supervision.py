"""Supervision with real processes: crashed workers come back (with backoff) while the others
keep serving; a killed embedded PostgreSQL is restarted, in the supervisor of ``--workers``
and in a single-process server; workers never import a ``pryvrt/`` of the current directory.
Figures are printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from tests.conftest import RedisServer, free_port
from tests.processes import Http, Worker, own_redis, worker_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with own_redis() as server:
        yield server


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("logs"))


def workers_of(parent: Worker) -> list[psutil.Process]:
    """The parent's worker processes (not a pg_ctl it runs to restart the embedded
    PostgreSQL: under load one was still running when a test listed the children)."""
    workers = []
    for child in psutil.Process(parent.process.pid).children():
        try:
            if "--worker" in child.cmdline():
                workers.append(child)
        except psutil.NoSuchProcess:
            pass
    return workers


def wait_for(condition: Any, within: float, what: str) -> float:
    """Poll ``condition()`` until true; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.05)
    return time.monotonic() - started


def listening_pids(port: int) -> set[int]:
    pids = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            pids.add(conn.pid)
    return pids


async def keep_calling(url: str, stop: asyncio.Event, statuses: list[int]) -> None:
    """GET /health on a new connection every 20 ms (the kernel picks the worker)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        while not stop.is_set():
            try:
                async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(5)) as r:
                    statuses.append(r.status)
            except (aiohttp.ClientError, TimeoutError):
                statuses.append(0)  # the connection was refused, cut, or not answered
            await asyncio.sleep(0.02)


async def calls_made(statuses: list[int], count: int, within: float = 30) -> None:
    """Wait until ``statuses`` holds ``count`` answers (a loaded machine calls slower)."""
    async with asyncio.timeout(within):
        while len(statuses) < count:  # noqa: ASYNC110 - polling the caller's progress
            await asyncio.sleep(0.02)


async def test_two_quick_worker_crashes_are_restarted_and_the_service_keeps_answering(
    database_url: str, redis_server: RedisServer, logs: Path, tmp_path: Path
) -> None:
    env = worker_env(database_url, redis_server.url, tmp_path)
    parent = Worker(env, logs, "--workers=2", "--shutdown-timeout=3")
    try:
        await asyncio.to_thread(parent.wait_ready)
        await asyncio.to_thread(
            wait_for, lambda: len(listening_pids(parent.port)) == 2, 20, "two workers listening"
        )
        healthy = next(p for p in workers_of(parent))
        victim_pid = next(p.pid for p in workers_of(parent) if p.pid != healthy.pid)
        stop, statuses = asyncio.Event(), []
        caller = asyncio.create_task(keep_calling(parent.url, stop, statuses))
        os.kill(victim_pid, signal.SIGKILL)
        # Its replacement comes up and listens, then is killed (a second crash within 60 s:
        # the backoff doubles). Calls go on all the while, 25 at least in each phase (waited
        # for: a loaded machine calls slower).
        await asyncio.to_thread(
            wait_for,
            lambda: len(listening_pids(parent.port) - {healthy.pid, victim_pid}) == 1,
            20,
            "a replacement listening",
        )
        await calls_made(statuses, 25)
        [second] = [p for p in workers_of(parent) if p.pid != healthy.pid]
        second.kill()
        killed_at = time.monotonic()
        called_before = len(statuses)
        # Yet another one comes up and listens, the healthy worker was never touched.
        await asyncio.to_thread(
            wait_for,
            lambda: len(listening_pids(parent.port) - {healthy.pid, victim_pid, second.pid}) == 1,
            20,
            "a second replacement listening",
        )
        back_after = time.monotonic() - killed_at
        await calls_made(statuses, max(called_before + 25, 51))
        stop.set()
        await caller
        assert parent.process.poll() is None, parent.log_text()[-3000:]
        assert healthy.is_running()
        assert healthy.pid in listening_pids(parent.port)
        # Every call during the crashes was answered 200 (the kernel moved new connections
        # to the live worker); at worst a connection accepted by a dying one was cut.
        assert statuses.count(200) >= len(statuses) - 2, statuses
        assert len(statuses) > 50
        # Writes work on whichever worker answers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            http = Http(s, parent.url)
            username, auth = await http.user()
            for i in range(6):
                await http.channel(username, auth, name=f"c{i}")
        log = parent.log_text()
        assert "restarting it in 0.5 s" in log and "restarting it in 1.0 s" in log, log[-3000:]
        print(
            f"\nworker SIGKILLed twice: {statuses.count(200)}/{len(statuses)} calls "
            f"answered 200 meanwhile; the second replacement listened {back_after:.2f} s "
            f"after the second kill (backoff 0.5 s then 1 s)"
        )
    finally:
        parent.stop()


async def test_a_worker_failing_at_first_start_stops_the_service(
    database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The port is taken by a plain socket: no worker can bind, the supervisor gives up
    (rather than restarting forever) and stops with exit code 1."""
    import socket

    env = worker_env(database_url, redis_server.url, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pryvrt", "serve", "--workers=2", f"--port={port}"],
            env=env,
            capture_output=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr.decode()[-2000:]
    assert b"failed to start" in result.stderr


async def test_workers_ignore_a_pryvrt_folder_in_the_current_directory(
    database_url: str, redis_server: RedisServer, logs: Path, tmp_path: Path
) -> None:
    """A ``pryvrt/`` folder where ``pryvrt serve --workers 2`` is started would be imported
    by ``python -m pryvrt`` workers (the current directory comes first on ``sys.path``)."""
    hostile = tmp_path / "cwd"
    marker = tmp_path / "hostile-code-ran"
    (hostile / "pryvrt").mkdir(parents=True)
    (hostile / "pryvrt" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\nraise SystemExit(3)\n"
    )
    (hostile / "pryvrt" / "__main__.py").write_text("raise SystemExit(3)\n")
    # The parent as the console script runs it: its own directory first on sys.path.
    script = tmp_path / "bin" / "pryvrt"
    script.parent.mkdir()
    script.write_text("import sys\nfrom pryvrt.cli import main\nsys.exit(main())\n")
    env = worker_env(database_url, redis_server.url, tmp_path / "data")
    port = free_port()
    log_path = logs / f"hostile-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - waited for in a thread below
            [
                *(sys.executable, str(script), "serve", "--workers=2", "--host=127.0.0.1"),
                *(f"--port={port}", "--shutdown-timeout=3"),
            ],
            env=env,
            cwd=hostile,
            stdout=log,
            stderr=log,
        )
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: len(listening_pids(port)) == 2 or process.poll() is not None,
            30,
            "two workers listening",
        )
        assert process.poll() is None, log_path.read_text()[-3000:]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as reply:
                assert reply.status == 200
        assert not marker.exists(), marker.read_text()
        assert listening_pids(port) <= {c.pid for c in psutil.Process(process.pid).children()}
    finally:
        process.terminate()
        process.wait(15)
    assert process.returncode == 0, log_path.read_text()[-3000:]
    assert not marker.exists()


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])


async def health(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(2)) as reply:
                return reply.status
    except aiohttp.ClientError:
        return 0


async def recovered_after_postmaster_kill(url: str, data_dir: Path, within: float) -> float:
    """SIGKILL the embedded postmaster; seconds until /health answers 200 again and a write
    works."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        http = Http(s, url)
        username, auth = await http.user()
        old = postmaster_pid(data_dir)
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        saw_down = False
        while True:
            status = await health(url)
            saw_down = saw_down or status != 200
            if status == 200 and saw_down and postmaster_pid(data_dir) != old:
                break
            assert time.monotonic() - killed < within, f"/health still {status}"
            await asyncio.sleep(0.05)
        back = time.monotonic() - killed
        # Writes work again (the pools reconnected), on every worker.
        for i in range(4):
            await http.channel(username, auth, name=f"after-{i}")
        status, listed = await http.call("GET", f"/{username}/channels", auth=auth)
        # (Besides the new user's default diary.)
        assert status == 200 and sum(c["name"].startswith("after-") for c in listed) == 4
    return back


async def test_a_killed_embedded_postgres_is_restarted_by_a_single_process_server(
    tmp_path: Path, logs: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    data_dir = tmp_path / "var"
    env.update(PRYVRT_DATA_DIR=str(data_dir), PRYVRT_LOG_LEVEL="WARNING")
    server = Worker(env, logs)
    try:
        await asyncio.to_thread(server.wait_ready, 60)
        back = await recovered_after_postmaster_kill(server.url, data_dir, within=20)
        assert server.process.poll() is None
        assert await server.logged("the embedded PostgreSQL restarted"), server.log_text()
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert not (data_dir / "pg" / "postmaster.pid").exists()  # stopped with the server
    print(f"\nsingle process: postmaster SIGKILLed, /health 200 again after {back:.2f} s")


async def test_a_killed_embedded_postgres_is_restarted_by_the_supervisor(
    redis_server: RedisServer, tmp_path: Path, logs: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "WEB_CONCURRENCY")}
    data_dir = tmp_path / "var"
    env.update(
        PRYVRT_DATA_DIR=str(data_dir), PRYVRT_LOG_LEVEL="WARNING", REDIS_URL=redis_server.url
    )
    parent = Worker(env, logs, "--workers=2", "--shutdown-timeout=3")
    try:
        await asyncio.to_thread(parent.wait_ready, 60)
        workers = {p.pid for p in workers_of(parent)}
        back = await recovered_after_postmaster_kill(parent.url, data_dir, within=20)
        assert parent.process.poll() is None
        assert {p.pid for p in workers_of(parent)} == workers  # no worker had to restart
        assert await parent.logged("the embedded PostgreSQL restarted"), parent.log_text()
    finally:
        parent.stop()
    assert parent.process.returncode == 0
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    print(f"\n--workers 2: postmaster SIGKILLed, /health 200 again after {back:.2f} s")
