"""Several ``pryvrt serve`` processes behind HAProxy with deploy/haproxy.cfg, as shipped.

Clients left at their default transports (long-polling, then the upgrade to websocket) need
every request of a session to reach the same process. Here two processes on separate ports
share PostgreSQL and Redis, as separate hosts would; HAProxy routes with the shipped config
(ports filled in through its environment variables). Clients connect from different loopback
addresses, as clients on different machines would, so that the source-address stickiness
places them on both servers; a write through one server reaches a socket on the other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import socketio

from tests.conftest import free_port, wait_for_port
from tests.matrix_clients import JS_DIR, node_ready
from tests.processes import Http, Worker, running, worker_env

HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed: apt-get install -y haproxy (.ci/run does it)"
)
# Candidate client addresses (all of 127.0.0.0/8 is local on Linux).
SOURCES = [f"127.0.0.{n}" for n in range(2, 30)]


@dataclass
class Cluster:
    url: str  # the balancer's
    backends: tuple[Worker, ...]

    def backend_of(self, marker: str) -> int | None:
        """Which backend's log mentions ``marker`` (a socket id or a request id)."""
        for index, worker in enumerate(self.backends):
            if marker in worker.log_text():
                return index
        return None


@pytest.fixture(scope="module")
def cluster(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    assert HAPROXY is not None
    logs = tmp_path_factory.mktemp("sticky")
    env = worker_env(database_url, redis_url, logs)
    env["PRYVRT_LOG_LEVEL"] = "INFO"  # the test reads in the logs where sockets landed
    port = free_port()
    with running(Worker(env, logs), Worker(env, logs)) as backends:
        balancer_env = {
            **os.environ,
            "PRYVRT_LB_BIND": f"127.0.0.1:{port}",
            "PRYVRT_BACKEND_1": f"127.0.0.1:{backends[0].port}",
            "PRYVRT_BACKEND_2": f"127.0.0.1:{backends[1].port}",
        }
        with (logs / "haproxy.log").open("wb") as log:
            haproxy = subprocess.Popen(
                [HAPROXY, "-f", str(CONFIG), "-db"], env=balancer_env, stdout=log, stderr=log
            )
        try:
            wait_for_port(port, timeout=10)
            yield Cluster(f"http://127.0.0.1:{port}", backends)
        finally:
            haproxy.terminate()
            haproxy.wait(10)


async def source_per_backend(cluster: Cluster, username: str, auth: str) -> list[str]:
    """One client address per backend: where the balancer sends a request from each address
    (told by its request id in the backends' logs)."""
    found: dict[int, str] = {}
    for source in SOURCES:
        connector = aiohttp.TCPConnector(local_addr=(source, 0))
        request_id = f"where-{source.replace('.', '-')}-{os.urandom(3).hex()}"
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(
                f"{cluster.url}/{username}/channels",
                headers={"Authorization": auth, "X-Request-Id": request_id},
            ) as reply:
                assert reply.status == 200
        await asyncio.sleep(0.05)  # the log line is written after the answer
        backend = cluster.backend_of(request_id)
        assert backend is not None, request_id
        found.setdefault(backend, source)
        if len(found) == len(cluster.backends):
            return [found[i] for i in range(len(cluster.backends))]
    raise AssertionError(f"every address went to the same backend: {found}")


async def contributor(cluster: Cluster) -> tuple[str, str, str]:
    """A user, a channel and a token that may write there."""
    async with aiohttp.ClientSession() as session:
        http = Http(session, cluster.url)
        username, auth = await http.user()
        channel = await http.channel(username, auth)
        status, body = await http.call(
            "POST",
            f"/{username}/tokens",
            {"name": "sticky", "permissions": [{"channelId": channel, "level": "contribute"}]},
            auth,
        )
        assert status == 201, body
        return username, channel, body["id"]


async def test_default_transport_clients_on_both_servers_hear_each_others_writes(
    cluster: Cluster,
) -> None:
    if (why := node_ready()) is not None:
        pytest.skip(why)
    username, channel, token = await contributor(cluster)
    node_source, python_source = await source_per_backend(cluster, username, token)

    # the npm client, default transports, placed on backend 0
    node = await asyncio.create_subprocess_exec(
        *(shutil.which("node") or "node", str(JS_DIR / "sticky.mjs"), cluster.url, username),
        *(token, channel, node_source),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert node.stdout is not None and node.stderr is not None

    async def node_step() -> dict[str, Any]:
        assert node.stdout is not None
        line = await asyncio.wait_for(node.stdout.readline(), 15)
        assert line, (await node.stderr.read()).decode()[-2000:]  # type: ignore[union-attr]
        step: dict[str, Any] = orjson.loads(line)
        assert "failed" not in step, step
        return step

    # python-socketio's AsyncClient, default transports, placed on backend 1
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(python_source, 0)))
    client = socketio.AsyncClient(http_session=session, reconnection=False)
    heard: asyncio.Queue[Any] = asyncio.Queue()
    client.on("eventsChanged", heard.put_nowait, namespace=f"/{username}")
    try:
        connected = (await node_step())["connected"]
        assert connected["transport"] == "websocket"
        assert cluster.backend_of(connected["sid"]) == 0

        await client.connect(cluster.url, namespaces=[f"/{username}"], auth={"token": token})
        async with asyncio.timeout(5):
            while client.transport() != "websocket":  # noqa: ASYNC110 - no upgrade event
                await asyncio.sleep(0.02)
        assert cluster.backend_of(client.get_sid(f"/{username}")) == 1

        # a write through backend 1 reaches the socket on backend 0
        error, _ = await client.call(
            "events.create",
            {"channelId": channel, "type": "note/txt", "content": "from python"},
            namespace=f"/{username}",
            timeout=5,
        )
        assert error is None, error
        assert (await node_step())["notification"] == {"channelId": channel}
        # and a write through backend 0 reaches the socket on backend 1
        step = await node_step()
        assert step["ack"]["error"] is None and step["transport"] == "websocket"
        assert await asyncio.wait_for(heard.get(), 5) == {"channelId": channel}
        assert await asyncio.wait_for(node.wait(), 10) == 0
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
        await client.disconnect()
        await session.close()


async def test_the_balancer_checks_health_and_forwards_the_api(cluster: Cluster) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(cluster.url + "/health") as reply:
            assert reply.status == 200
            # clients that keep cookies (browsers) also stick by the balancer's cookie
            assert "PRYVRT_LB" in reply.cookies
