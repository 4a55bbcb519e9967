"""`pryvrt serve` as a real process: embedded PostgreSQL, health, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(url: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not healthy after {within}s")
            await asyncio.sleep(0.2)


async def test_serve_with_embedded_postgres_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "pryvrt", "serve", "--port", str(port)],
        *["--data-dir", str(data_dir)],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        assert (data_dir / "pg" / "postmaster.pid").exists()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        assert time.monotonic() - started < 10
        # the embedded PostgreSQL was stopped with the server
        assert not (data_dir / "pg" / "postmaster.pid").exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_uses_database_url_when_set(database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "pryvrt", "serve"],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{port}/users",
                json={"username": "served-user", "password": "secret1"},
            ) as resp,
        ):
            assert resp.status == 201
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 15)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_malformed_configuration_stops_the_server_with_a_message() -> None:
    import subprocess

    env = {**os.environ, "PRYVRT_SESSION_TTL": "soon"}
    done = subprocess.run(
        [sys.executable, "-m", "pryvrt", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "PRYVRT_SESSION_TTL" in done.stderr
