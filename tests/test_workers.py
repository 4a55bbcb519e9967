"""Several real ``pryvrt serve`` processes sharing PostgreSQL and a real Redis (API.md §10)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RedisServer, free_port
from tests.processes import Http, Worker, own_redis, running, worker_env
from tests.sockets import connect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """This module's own Redis: a test stops and restarts it."""
    with own_redis() as server:
        yield server


@pytest.fixture(scope="module")
def env(database_url: str, redis_server: RedisServer, tmp_path_factory: Any) -> dict[str, str]:
    return worker_env(database_url, redis_server.url, tmp_path_factory.mktemp("workers"))


@pytest.fixture(scope="module")
def logs(tmp_path_factory: Any) -> Path:
    return Path(tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def pair(env: dict[str, str], logs: Path) -> Iterator[tuple[Worker, Worker]]:
    """Two workers on different ports, sharing the module's database and Redis."""
    with running(Worker(env, logs), Worker(env, logs)) as (first, second):
        yield first, second


async def test_a_write_on_one_worker_reaches_a_socket_on_another(
    pair: tuple[Worker, Worker],
) -> None:
    first, second = pair
    async with aiohttp.ClientSession() as session:
        http = Http(session, first.url)
        username, auth = await http.user()
        async with connect(second.url, username, auth) as sock:
            started = time.monotonic()
            status, _ = await http.call("POST", f"/{username}/channels", {"name": "a"}, auth)
            assert status == 201
            assert await sock.next(within=1.0) == ("channelsChanged", None)
            latency = time.monotonic() - started
            assert await sock.drain(0.3) == []  # exactly once
    assert latency < 1.0


async def test_a_token_deleted_on_one_worker_is_refused_by_another_at_once(
    pair: tuple[Worker, Worker],
) -> None:
    """The other worker had the token cached (5 s lifetime): the invalidation on the
    bus's control channel, not the lifetime, makes it refuse the token."""
    first, second = pair
    async with aiohttp.ClientSession() as session:
        username, auth = await Http(session, first.url).user()
        other = Http(session, second.url)
        status, body = await other.call("POST", f"/{username}/tokens", {"name": "t"}, auth)
        assert status == 201, body
        token = body["id"]
        for _ in range(2):
            assert (await other.call("GET", f"/{username}/channels", auth=token))[0] == 200
        status, _ = await Http(session, first.url).call(
            "DELETE", f"/{username}/tokens/{token}", auth=auth
        )
        assert status == 200
        deadline = time.monotonic() + 1.0  # the cache lifetime is 5 s
        while (await other.call("GET", f"/{username}/channels", auth=token))[0] != 401:
            assert time.monotonic() < deadline, "the other worker still accepts the token"
            await asyncio.sleep(0.01)


async def test_writes_succeed_while_redis_is_down_and_notifications_resume_after(
    pair: tuple[Worker, Worker], redis_server: RedisServer
) -> None:
    first, second = pair
    async with aiohttp.ClientSession() as session:
        http = Http(session, first.url)
        username, auth = await http.user()
        status, body = await http.call(
            "POST", f"/{username}/tokens", {"name": "doomed", "permissions": []}, auth
        )
        assert status == 201, body
        doomed = body["id"]
        async with (
            connect(second.url, username, auth) as sock,
            connect(second.url, username, doomed) as doomed_sock,
        ):
            redis_server.stop()
            try:
                for i in range(3):
                    started = time.monotonic()
                    status, _ = await http.call(
                        "POST", f"/{username}/channels", {"name": f"down-{i}"}, auth
                    )
                    assert status == 201
                    assert time.monotonic() - started < 0.5  # not held up by Redis
                    await asyncio.sleep(0.3)
                # Its revocation cannot reach the other worker now.
                status, _ = await http.call("DELETE", f"/{username}/tokens/{doomed}", auth=auth)
                assert status == 200
            finally:
                redis_server.start()
            # The second worker re-subscribes by itself: the next writes notify again.
            deadline = time.monotonic() + 8
            while True:
                assert time.monotonic() < deadline, "notifications did not resume"
                await sock.drain(0)
                status, _ = await http.call(
                    "POST", f"/{username}/channels", {"name": f"up-{time.monotonic()}"}, auth
                )
                assert status == 201
                try:
                    event = await sock.next(within=0.5)
                except TimeoutError:
                    continue
                if event[0] != "channelsChanged":
                    continue  # the resync's refetch hints (folders/events per channel)
                break
            await sock.drain(0.3)
            status, _ = await http.call("POST", f"/{username}/channels", {"name": "last"}, auth)
            assert await sock.next(within=1.0) == ("channelsChanged", None)
            # After reconnecting, the worker rechecked its sockets' credentials.
            await doomed_sock.wait_disconnected()


async def test_a_hung_redis_does_not_hold_up_writes(
    pair: tuple[Worker, Worker], redis_server: RedisServer
) -> None:
    first, second = pair
    assert redis_server.process is not None
    async with aiohttp.ClientSession() as session:
        http = Http(session, first.url)
        username, auth = await http.user()
        async with connect(second.url, username, auth) as sock:
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                for i in range(3):
                    started = time.monotonic()
                    status, _ = await http.call(
                        "POST", f"/{username}/channels", {"name": f"hung-{i}"}, auth
                    )
                    assert status == 201
                    assert time.monotonic() - started < 0.5
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
            await sock.drain(1.5)
            status, _ = await http.call("POST", f"/{username}/channels", {"name": "after"}, auth)
            assert await sock.next(within=3.0) == ("channelsChanged", None)


async def test_sigterm_stops_a_worker_with_open_sockets_within_seconds(
    env: dict[str, str], logs: Path
) -> None:
    worker = Worker(env, logs)
    try:
        await asyncio.to_thread(worker.wait_ready)
        async with aiohttp.ClientSession() as session:
            username, auth = await Http(session, worker.url).user()
        async with connect(worker.url, username, auth) as sock:
            started = time.monotonic()
            worker.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(worker.process.wait, 10)
            elapsed = time.monotonic() - started
            await sock.wait_disconnected()
        assert code == 0
        assert elapsed < 3.0, worker.log_path.read_text()
    finally:
        worker.stop()


async def test_serve_with_two_workers_shares_one_port_websocket_only_and_stops_on_sigterm(
    env: dict[str, str], logs: Path
) -> None:
    parent = Worker(env, logs, "--workers=2", "--shutdown-timeout=3")
    try:
        await asyncio.to_thread(parent.wait_ready)
        # A new connection per request: the kernel spreads them over the workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            http = Http(session, parent.url)
            username, auth = await http.user()
            # Long-polling would need sticky sessions: refused.
            async with session.get(parent.url + "/socket.io/?EIO=4&transport=polling") as reply:
                assert reply.status == 400
            async with contextlib.AsyncExitStack() as stack:
                sockets = [
                    await stack.enter_async_context(connect(parent.url, username, auth))
                    for _ in range(4)
                ]
                for i in range(3):
                    status, _ = await http.call(
                        "POST", f"/{username}/channels", {"name": f"{i}"}, auth
                    )
                    assert status == 201
                    for sock in sockets:
                        assert await sock.next(within=1.0) == ("channelsChanged", None)
                started = time.monotonic()
                parent.process.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(parent.process.wait, 15)
                elapsed = time.monotonic() - started
        assert code == 0
        assert elapsed < 5.0, parent.log_path.read_text()
        with pytest.raises(OSError):  # no worker left on the port
            await asyncio.open_connection("127.0.0.1", parent.port)
    finally:
        parent.stop()


def test_several_workers_without_redis_refuse_to_start(database_url: str, tmp_path: Path) -> None:
    env = worker_env(database_url, None, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pryvrt", "serve", "--workers=2", f"--port={free_port()}"],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"REDIS_URL" in result.stderr
