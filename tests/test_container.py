"""The container recipe: Dockerfile + compose.yaml (PostgreSQL, Redis, two pryvrt, HAProxy
with deploy/haproxy.cfg). The file checks run everywhere; the smoke test builds and starts
the whole compose project where a Docker daemon and the compose plugin are available, and
is skipped with the reason elsewhere."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import free_port
from tests.processes import Http
from tests.sockets import connect

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_compose_runs_two_servers_sharing_database_redis_and_key_behind_the_shipped_config() -> (
    None
):
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "pryvrt1", "pryvrt2", "haproxy"}
    first, second = services["pryvrt1"], services["pryvrt2"]
    assert first == second  # the same image and environment: separate hosts, one deployment
    env = first["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert "PRYVRT_SECRET_KEY:?" in env["PRYVRT_SECRET_KEY"]  # required, never a default
    assert first["build"] == "."
    balancer = services["haproxy"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    assert balancer["environment"]["PRYVRT_BACKEND_1"] == "pryvrt1:3000"
    assert balancer["environment"]["PRYVRT_BACKEND_2"] == "pryvrt2:3000"
    for name in ("pryvrt1", "pryvrt2"):
        assert balancer["depends_on"][name] == {"condition": "service_healthy"}
    # the servers answer on the port the balancer and the health check use
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "PORT=3000" in dockerfile and "127.0.0.1:3000/health" in dockerfile
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    # two of the balancer's backends exist, as in deploy/haproxy.cfg
    config = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert "PRYVRT_BACKEND_1" in config and "PRYVRT_BACKEND_2" in config


def docker_unavailable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        return f"no Docker daemon reachable here: {info.stderr.strip().splitlines()[-1][:200]}"
    plugin = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if plugin.returncode != 0:
        return "the docker compose plugin is not installed"
    return None


@pytest.mark.slow
async def test_compose_project_builds_starts_and_serves_through_the_balancer(
    tmp_path: Path,
) -> None:
    why = await asyncio.to_thread(docker_unavailable)
    if why is not None:
        pytest.skip(why)
    port = free_port()
    project = f"pryvrt-smoke-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "PRYVRT_SECRET_KEY": secrets.token_urlsafe(32),
        "PRYVRT_LB_PORT": str(port),
    }
    base = ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml")]

    def run(*args: str, timeout: float = 900) -> None:
        subprocess.run([*base, *args], env=env, check=True, timeout=timeout, cwd=ROOT)

    try:
        await asyncio.to_thread(run, "up", "-d", "--build", "--wait")
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            http = Http(session, url)
            status, _ = await http.call("GET", "/health")
            assert status == 200
            username, auth = await http.user()
            channel = await http.channel(username, auth)
            async with connect(url, username, auth) as sock:
                status, _ = await http.call("POST", f"/{username}/{channel}/events", {}, auth)
                assert status == 201
                assert await sock.next(within=5) == ("eventsChanged", {"channelId": channel})
    finally:
        await asyncio.to_thread(run, "down", "-v", "--remove-orphans", timeout=300)
