"""Separate hosts behind HAProxy (deploy/haproxy.cfg, as shipped), one of them SIGKILLed
under load: the balancer routes around it, no acknowledged write is lost, and the sockets
it held reconnect to the survivor by themselves.

Two ``pryvrt serve`` processes on their own ports share one PostgreSQL and one Redis (no
embedded database: both get DATABASE_URL and REDIS_URL, as hosts would). Writers and
sockets connect through the balancer from several loopback addresses, so that source
stickiness spreads them over both servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio

from tests.conftest import free_port, wait_for_port
from tests.processes import Http, Worker, running, worker_env
from tests.test_sticky_sessions import CONFIG, HAPROXY, Cluster, source_per_backend

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        HAPROXY is None,
        reason="haproxy is not installed: apt-get install -y haproxy (.ci/run does it)",
    ),
]


@pytest.fixture
def cluster(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Its own pair of servers (one is killed) behind the shipped HAProxy config."""
    assert HAPROXY is not None
    logs = tmp_path_factory.mktemp("failover")
    env = worker_env(database_url, redis_url, logs)
    env["PRYVRT_LOG_LEVEL"] = "INFO"  # where sockets and requests landed
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


class Writes:
    """What the writers saw: ids acknowledged (201, or 409 on a retry of an id whose first
    attempt was stored without an answer), answers refused, and when."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.failures: list[tuple[float, Any]] = []
        self.last_ack = 0.0


async def writer(
    url: str, source: str, path: str, auth: str, name: str, stop: asyncio.Event, out: Writes
) -> None:
    """Creates events with ids of its own through the balancer until ``stop``; a write that
    got no 201 is sent again with the same id (a 409 then means the first one was stored)."""
    n = 0
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        while not stop.is_set():
            n += 1
            event_id = f"{name}x{n}"
            retried = False
            while not stop.is_set():
                try:
                    async with (
                        asyncio.timeout(10),
                        session.post(
                            url + path,
                            json={"id": event_id, "value": {"type": "note:txt", "value": "x"}},
                            headers={"Authorization": auth},
                        ) as reply,
                    ):
                        body = await reply.json(content_type=None)
                        if reply.status == 201 or (reply.status == 409 and retried):
                            out.acked.append(event_id)
                            out.last_ack = time.monotonic()
                            break
                        out.failures.append((time.monotonic(), (reply.status, body)))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    out.failures.append((time.monotonic(), repr(exc)))
                retried = True
                await asyncio.sleep(0.05)


async def stored_ids(database_url: str, username: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT e.id FROM events e JOIN users u USING (user_id) WHERE u.username = $1",
            username,
        )
        return {r["id"] for r in rows}
    finally:
        await conn.close()


class Listener:
    """A default-transport socket (polling, then websocket) through the balancer from one
    address, reconnecting by itself; records notifications and each connection's sid."""

    def __init__(self, url: str, username: str, token: str, source: str) -> None:
        self.url, self.namespace, self.token = url, f"/{username}", token
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))
        self.client = socketio.AsyncClient(
            http_session=self.session, reconnection_delay=0.2, reconnection_delay_max=1
        )
        self.heard: asyncio.Queue[Any] = asyncio.Queue()
        self.sids: list[str] = []
        self.connected = asyncio.Event()
        self.client.on("eventsChanged", self.heard.put_nowait, namespace=self.namespace)
        self.client.on("connect", self._on_connect, namespace=self.namespace)
        self.client.on("disconnect", self._on_disconnect, namespace=self.namespace)

    async def _on_connect(self) -> None:
        self.sids.append(self.client.get_sid(self.namespace))
        self.connected.set()

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.connected.clear()

    async def start(self) -> None:
        await self.client.connect(self.url, namespaces=[self.namespace], auth={"token": self.token})
        await asyncio.wait_for(self.connected.wait(), 10)

    async def drain(self) -> int:
        count = 0
        while not self.heard.empty():
            self.heard.get_nowait()
            count += 1
        return count

    async def close(self) -> None:
        await self.client.disconnect()
        await self.session.close()


async def test_a_server_killed_under_load_is_routed_around_without_losing_acked_writes(
    cluster: Cluster, database_url: str
) -> None:
    async with aiohttp.ClientSession() as session:
        http = Http(session, cluster.url)
        username, auth = await http.user()
        channel = await http.channel(username, auth)
    path = f"/{username}/{channel}/events"
    to_first, to_second = await source_per_backend(cluster, username, auth)
    doomed, survivor = cluster.backends
    on_first = Listener(cluster.url, username, auth, to_first)
    on_second = Listener(cluster.url, username, auth, to_second)
    for listener in (on_first, on_second):
        await listener.start()
    assert cluster.backend_of(on_first.sids[0]) == 0
    assert cluster.backend_of(on_second.sids[0]) == 1
    writes = Writes()
    stop = asyncio.Event()
    load = [
        asyncio.create_task(writer(cluster.url, source, path, auth, f"w{i}", stop, writes))
        for i, source in enumerate((to_first, to_first, to_second, to_second))
    ]
    try:
        # writes through each server reach the sockets on both
        await asyncio.sleep(1.0)
        assert await on_first.drain() > 0 and await on_second.drain() > 0
        acked_before = len(writes.acked)
        assert acked_before > 0

        doomed.process.kill()  # SIGKILL: no goodbye to its sockets or the balancer
        doomed.process.wait(5)
        killed = time.monotonic()

        # the writers that went to it are routed around: every writer acks again
        async with asyncio.timeout(20):
            while not on_first.connected.is_set() or len(on_first.sids) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        reconnected = time.monotonic() - killed
        assert cluster.backend_of(on_first.sids[-1]) == 1  # now on the survivor
        await asyncio.sleep(1.0)
        await on_first.drain()
        await on_second.drain()
        acked_mid = len(writes.acked)
        await asyncio.sleep(1.5)
        # after the failover, writes keep being acknowledged and heard on both sockets
        assert len(writes.acked) > acked_mid
        assert await on_first.drain() > 0 and await on_second.drain() > 0
    finally:
        stop.set()
        await asyncio.gather(*load)
        for listener in (on_first, on_second):
            await listener.close()
    survivor_alive = survivor.process.poll() is None
    assert survivor_alive
    # no acknowledged write lost; failures only around the kill
    stored = await stored_ids(database_url, username)
    assert set(writes.acked) <= stored
    late = [f for t, f in writes.failures if t > killed + 15]
    assert late == []
    early = [f for t, f in writes.failures if t < killed]
    assert early == []
    window = max((t for t, _ in writes.failures), default=killed) - killed
    print(
        f"\nbackend SIGKILLed under load: {len(writes.acked)} writes acknowledged, all stored;"
        f" {len(writes.failures)} refused or unanswered within {window:.2f} s of the kill"
        f" (each retried with its id); its socket reconnected to the survivor in"
        f" {reconnected:.2f} s"
    )
