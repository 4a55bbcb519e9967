"""Slowloris: half-sent requests are closed after PRYVRT_HEADER_TIMEOUT, one address cannot
hold more than PRYVRT_MAX_CONNECTIONS_PER_IP connections, /health keeps answering, and a
slow but steady client is served. Real ``pryvrt serve`` processes and raw sockets."""

from __future__ import annotations

import asyncio
import json
import resource
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pryvrt.config import ConfigError, Settings
from pryvrt.transports.connections import ConnectionGuard
from tests.processes import Worker, worker_env

HEADER_TIMEOUT = 2.0
REQUEST = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("logs"))


def start_worker(database_url: str, logs: Path, data_dir: Path, **env: str) -> Worker:
    worker = Worker({**worker_env(database_url, None, data_dir), **env}, logs)
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


@pytest.fixture(scope="module")
def worker(
    database_url: str, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    server = start_worker(
        database_url,
        logs,
        tmp_path_factory.mktemp("data"),
        PRYVRT_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        PRYVRT_MAX_CONNECTIONS_PER_IP="40",
    )
    yield server
    server.stop()


def health(url: str) -> int:
    with urllib.request.urlopen(url + "/health", timeout=5) as reply:
        return int(reply.status)


async def open_from(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the worker from ``source`` (any 127.x.y.z address is loopback)."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_after(reader: asyncio.StreamReader, started: float, within: float) -> float:
    """Seconds from ``started`` until the server closed the connection (it sent nothing)."""
    try:
        async with asyncio.timeout(within):
            data = await reader.read()
    except ConnectionResetError:
        data = b""
    assert data == b"", data
    return time.monotonic() - started


async def half_sent(port: int, source: str, kind: str, started: float) -> float:
    reader, writer = await open_from(port, source)
    try:
        if kind == "partial":
            writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        elif kind == "trickle":  # a byte every 0.5 s: data keeps coming, headers never end

            async def trickle() -> None:
                for byte in b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.5)

            task = asyncio.create_task(trickle())
            try:
                return await closed_after(reader, started, HEADER_TIMEOUT + 5)
            finally:
                task.cancel()
        return await closed_after(reader, started, HEADER_TIMEOUT + 5)
    finally:
        writer.close()


async def test_half_sent_requests_are_closed_after_the_header_timeout(worker: Worker) -> None:
    """60 connections that never finish their headers (silent, stopped mid-header, or a
    byte every 0.5 s) from three addresses: all closed at the header timeout, /health
    answering meanwhile. Before, they stayed open for an hour (aiohttp's keep-alive
    default), and a low file-descriptor limit made /health fail."""
    started = time.monotonic()
    clients = [
        half_sent(worker.port, f"127.0.0.{2 + i % 3}", kind, started)
        for i in range(20)
        for kind in ("silent", "partial", "trickle")
    ]
    gathered = asyncio.gather(*clients)
    await asyncio.sleep(0.5)
    assert await asyncio.to_thread(health, worker.url) == 200
    closed = await gathered
    print(
        f"\n60 half-sent requests closed after {min(closed):.1f}-{max(closed):.1f} s"
        f" (header timeout {HEADER_TIMEOUT} s)"
    )
    assert all(HEADER_TIMEOUT - 0.2 < seconds < HEADER_TIMEOUT + 2.5 for seconds in closed)
    assert await asyncio.to_thread(health, worker.url) == 200


async def test_a_slow_but_steady_client_is_served_and_may_keep_its_connection(
    worker: Worker,
) -> None:
    reader, writer = await open_from(worker.port, "127.0.0.5")
    try:
        for part in (REQUEST[:9], REQUEST[9:20], REQUEST[20:]):  # the head over ~1.2 s
            writer.write(part)
            await asyncio.sleep(0.6)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        await reader.readexactly(length)
        await asyncio.sleep(HEADER_TIMEOUT / 2)  # idle, under the timeout: kept alive
        writer.write(REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


BROKEN_REQUESTS = {
    "not a request line": b"HELLO\r\n\r\n",
    "a bad method": b"G(T / HTTP/1.1\r\nHost: test\r\n\r\n",
    "a header over 8 KB": b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
    "a bad content length": b"POST /users HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", BROKEN_REQUESTS.values(), ids=list(BROKEN_REQUESTS))
async def test_a_request_http_cannot_parse_gets_an_api_error_in_json(
    worker: Worker, request_bytes: bytes
) -> None:
    """aiohttp refuses these before the application runs; `pryvrt serve` still answers them
    as API errors (before: aiohttp's text/plain 400, no error id) and closes the connection."""
    reader, writer = await open_from(worker.port, "127.0.0.6")
    try:
        writer.write(request_bytes)
        answer = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), head  # 1.0: no version read
    assert b"Content-Type: application/json" in head, head
    error = json.loads(body)
    assert error["id"] == "INVALID_REQUEST_STRUCTURE", error
    assert error["message"] and "Traceback" not in error["message"]
    assert await asyncio.to_thread(health, worker.url) == 200


async def test_connections_beyond_the_per_address_cap_are_refused_and_others_served(
    database_url: str, logs: Path, tmp_path: Path
) -> None:
    """One address opens 300 silent connections to a worker whose file-descriptor limit is
    200: it holds 40 (the cap); the others are answered 429 and closed, and /health from
    another address answers. Without the cap the descriptors run out: /health fails."""
    server = start_worker(
        database_url,
        logs,
        tmp_path,
        PRYVRT_HEADER_TIMEOUT="30",
        PRYVRT_MAX_CONNECTIONS_PER_IP="40",
    )
    writers: list[asyncio.StreamWriter] = []
    try:
        psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE, (200, 200))
        connections = [await open_from(server.port, "127.0.0.9") for _ in range(300)]
        writers = [writer for _, writer in connections]
        answers = await asyncio.gather(
            *(asyncio.wait_for(reader.read(), 0.5) for reader, _ in connections),
            return_exceptions=True,
        )
        refused = [a for a in answers if isinstance(a, bytes)]
        held = [a for a in answers if isinstance(a, TimeoutError)]
        assert len(held) == 40, (len(held), len(refused))
        assert len(refused) == 260
        assert all(a.startswith(b"HTTP/1.1 429") and b"TOO_MANY_REQUESTS" in a for a in refused)
        assert await asyncio.to_thread(health, server.url) == 200
        for writer in writers[:10]:  # a few leave: as many new ones are welcome
            writer.close()
        await asyncio.sleep(0.3)
        reader, writer = await open_from(server.port, "127.0.0.9")
        writers.append(writer)
        writer.write(REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        for writer in writers:
            writer.close()
        server.stop()


def test_the_connection_settings_come_from_the_environment() -> None:
    env = {"PRYVRT_HEADER_TIMEOUT": "5", "PRYVRT_MAX_CONNECTIONS_PER_IP": "0"}
    settings = Settings.from_env(env)
    assert (settings.header_timeout, settings.max_connections_per_ip) == (5.0, 0)
    defaults = Settings.from_env({})
    assert (defaults.header_timeout, defaults.max_connections_per_ip) == (15.0, None)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ConnectionGuard(defaults).per_address == max(64, soft // 4)
    with pytest.raises(ConfigError, match="PRYVRT_HEADER_TIMEOUT"):
        Settings.from_env({"PRYVRT_HEADER_TIMEOUT": "0"})
