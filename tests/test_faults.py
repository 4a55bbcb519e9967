"""Faults with real processes (issue 7): SIGTERM under write load, Redis killed under load,
PostgreSQL stopped or frozen, then back. Every wait is bounded; figures are printed (``-s``)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
import pytest

from tests.conftest import RedisServer
from tests.processes import Http, Postgres, Worker, own_redis, user_with_channel, worker_env
from tests.sockets import Socket, connect, refusal

pytestmark = pytest.mark.slow

DB_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A PostgreSQL for this module alone: one test stops it."""
    server = Postgres(Path(tmp_path_factory.mktemp("pgf")))
    yield server
    server.cleanup()


class Outcomes:
    """What concurrent writers saw: the ids acknowledged with a 2xx, and the writes whose
    fate the client cannot know (the connection broke before an answer)."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.unknown = 0
        self.refused = 0
        self.statuses: dict[int, int] = {}

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def write_until_refused(
    base: str, path: str, auth: str, outcomes: Outcomes, stop: asyncio.Event, name: str
) -> None:
    """One client creating events back to back on its own keep-alive connection, until the
    server refuses connections (or ``stop`` is set)."""
    n = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            n += 1
            event_id = f"{name}x{n}"
            try:
                async with asyncio.timeout(10):
                    async with session.post(
                        base + path,
                        json={"id": event_id, "value": {"type": "note:txt", "value": str(n)}},
                        headers={"Authorization": auth},
                    ) as reply:
                        body = await reply.json(content_type=None)
                        outcomes.count(reply.status)
                        if 200 <= reply.status < 300:
                            assert body == {"id": event_id}, body
                            outcomes.acked.append(event_id)
                        else:
                            # After SIGTERM only a clean refusal is acceptable, with an id.
                            assert reply.status == 503 and body["id"], (reply.status, body)
            except aiohttp.ClientConnectorError:
                outcomes.refused += 1
                return  # nothing listens any more
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                outcomes.unknown += 1  # sent, maybe written, never answered


async def slow_upload(base: str, path: str, auth: str, seconds: float) -> tuple[int, Any]:
    """A multipart events.create whose file trickles in over ``seconds``."""

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000
            await asyncio.sleep(seconds / 10)

    form = aiohttp.FormData()
    form.add_field(
        "event",
        '{"id": "slowupload", "value": {"type": "note:txt", "value": "slow"}}',
        content_type="application/json",
    )
    form.add_field("file", trickle(), filename="slow.bin", content_type="application/octet-stream")
    async with aiohttp.ClientSession() as session, asyncio.timeout(seconds + 10):
        async with session.post(base + path, data=form, headers={"Authorization": auth}) as reply:
            return reply.status, await reply.json(content_type=None)


async def next_event(sock: Socket, kind: str, within: float) -> tuple[str, Any]:
    """The next notification named ``kind`` (others are skipped), within ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            event = await sock.next(within=within)
            if event[0] == kind:
                return event


async def connection_refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def stored_event_ids(database_url: str, username: str, channel: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT e.id FROM events e JOIN users u USING (user_id)"
            " WHERE u.username = $1 AND e.channel_id = $2",
            username,
            channel,
        )
    finally:
        await conn.close()
    return {row["id"] for row in rows}


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "supervisor-of-2"])
async def test_sigterm_under_write_load_finishes_in_flight_writes_and_loses_no_acked_one(
    database_url: str, redis_server: RedisServer, logs: Path, tmp_path: Path, workers: int
) -> None:
    """SIGTERM to a lone worker, or to the supervisor of two (which forwards it)."""
    if workers == 1:
        worker = Worker(worker_env(database_url, None, tmp_path), logs)
    else:
        env = worker_env(database_url, redis_server.url, tmp_path)
        worker = Worker(env, logs, f"--workers={workers}")
    try:
        await asyncio.to_thread(worker.wait_ready)
        username, auth, channel = await user_with_channel(worker.url)
        path = f"/{username}/{channel}/events"
        outcomes = Outcomes()
        stop = asyncio.Event()
        blocker = await asyncpg.connect(database_url)
        async with (
            connect(worker.url, username, auth) as sock1,
            connect(worker.url, username, auth) as sock2,
        ):
            writers = [
                asyncio.create_task(
                    write_until_refused(worker.url, path, auth, outcomes, stop, f"c{i}")
                )
                for i in range(6)
            ]
            try:
                # Load for a while: writes are acknowledged, sockets hear about them.
                deadline = time.monotonic() + 10
                while len(outcomes.acked) < 100:
                    assert time.monotonic() < deadline, outcomes.statuses
                    await asyncio.sleep(0.05)
                await next_event(sock1, "eventsChanged", within=2.0)
                # An upload whose body is still arriving at SIGTERM: it must finish too.
                upload = asyncio.create_task(slow_upload(worker.url, path, auth, seconds=2.0))
                # Hold the channel's row lock: every writer's next request stays in flight
                # inside the server (a write waits for that lock), then SIGTERM.
                lock = blocker.transaction()
                await lock.start()
                await blocker.execute(
                    "SELECT 1 FROM channels c JOIN users u USING (user_id)"
                    " WHERE u.username = $1 AND c.id = $2 FOR UPDATE OF c",
                    username,
                    channel,
                )
                await asyncio.sleep(0.3)
                acked_before = len(outcomes.acked)
                worker.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await asyncio.sleep(0.5)
                # Still alive (in-flight writes), yet no longer accepting connections.
                assert worker.process.poll() is None, "exited with requests in flight"
                assert await connection_refused(worker.port)
                await sock1.wait_disconnected()
                await sock2.wait_disconnected()
                await lock.rollback()  # the in-flight writes proceed
                code = await asyncio.to_thread(worker.process.wait, 15)
                exit_seconds = time.monotonic() - signalled
                async with asyncio.timeout(10):
                    await asyncio.gather(*writers)
                upload_status, upload_body = await upload
            finally:
                stop.set()
                await blocker.close()
        assert code == 0, worker.log_text()[-2000:]
        assert exit_seconds < 5.0, worker.log_text()[-2000:]
        finished_in_flight = len(outcomes.acked) - acked_before
        # Each writer had a request waiting for the lock at SIGTERM: all were answered 201.
        assert finished_in_flight == len(writers), outcomes.statuses
        assert outcomes.refused == len(writers)  # every client ended on a refused connection
        assert upload_status == 201, upload_body
        stored = await stored_event_ids(database_url, username, channel)
        assert "slowupload" in stored
        stored.discard("slowupload")
        acked = set(outcomes.acked)
        missing = acked - stored
        assert not missing, f"{len(missing)} acknowledged writes lost: {sorted(missing)[:5]}"
        # Every request got an answer or a refused connection: none was cut unanswered, and
        # nothing is stored that no client was told about.
        assert outcomes.unknown == 0
        assert stored == acked
        print(
            f"\nSIGTERM under load ({workers} worker(s)): {len(acked)} acknowledged writes, all stored "
            f"({finished_in_flight} in flight at the signal finished, and a 2 s upload), "
            f"{outcomes.unknown} "
            f"unanswered, statuses {outcomes.statuses}, exit 0 {exit_seconds:.2f} s after SIGTERM"
        )
    finally:
        worker.stop()


# -- Redis killed under load -----------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """This module's own Redis: a test kills it and starts it again."""
    with own_redis() as server:
        yield server


async def test_redis_killed_under_load_writes_keep_succeeding_and_sockets_resume(
    database_url: str, redis_server: RedisServer, logs: Path, tmp_path: Path
) -> None:
    env = worker_env(database_url, redis_server.url, tmp_path)
    first, second = Worker(env, logs), Worker(env, logs)
    try:
        for worker in (first, second):
            await asyncio.to_thread(worker.wait_ready)
        pids = (first.process.pid, second.process.pid)
        username, auth, channel = await user_with_channel(first.url)
        path = f"/{username}/{channel}/events"
        outcomes = Outcomes()
        stop = asyncio.Event()
        async with connect(second.url, username, auth) as sock:
            writers = [
                asyncio.create_task(
                    write_until_refused(first.url, path, auth, outcomes, stop, f"r{i}")
                )
                for i in range(4)
            ]
            try:
                # Writes on the first worker reach the socket on the second through Redis.
                await next_event(sock, "eventsChanged", within=2.0)
                assert redis_server.process is not None
                redis_server.process.kill()  # SIGKILL, mid-load
                redis_server.process.wait(5)
                killed_at = len(outcomes.acked)
                await asyncio.sleep(1.5)
                during_outage = len(outcomes.acked) - killed_at
                assert during_outage > 0, outcomes.statuses
                await sock.drain(0)
                redis_server.process = None
                redis_server.start()
                restarted = time.monotonic()
                # The load goes on; the second worker re-subscribes by itself.
                await sock.drain(0.5)
                event = await next_event(sock, "eventsChanged", within=8.0)
                # The resync's refetch names each channel (the user's default diary too).
                while event[1] != {"channelId": channel}:
                    event = await next_event(sock, "eventsChanged", within=8.0)
                resumed = time.monotonic() - restarted
            finally:
                stop.set()
                async with asyncio.timeout(15):
                    await asyncio.gather(*writers)
        # Every write of the run was answered 201: none failed while Redis was down.
        assert outcomes.statuses == {201: len(outcomes.acked)}, outcomes.statuses
        assert outcomes.unknown == 0
        stored = await stored_event_ids(database_url, username, channel)
        assert set(outcomes.acked) <= stored
        assert (first.process.pid, second.process.pid) == pids
        assert first.process.poll() is None and second.process.poll() is None
        print(
            f"\nRedis killed under load: {len(outcomes.acked)} writes answered 201 and stored, "
            f"{during_outage} of them during the 1.5 s outage; notifications resumed "
            f"{resumed:.2f} s after Redis restarted"
        )
    finally:
        first.stop()
        second.stop()


# -- PostgreSQL stopped or frozen ----------------------------------------------------------


async def timed_call(
    session: aiohttp.ClientSession, url: str, verb: str, body: Any, auth: str | None
) -> tuple[float, int, Any]:
    """(seconds, status, body) of one call; status 0 when no answer came within 30 s."""
    started = time.monotonic()
    headers = {"Authorization": auth} if auth else {}
    try:
        async with (
            asyncio.timeout(30),
            session.request(verb, url, json=body, headers=headers) as reply,
        ):
            return time.monotonic() - started, reply.status, await reply.json(content_type=None)
    except TimeoutError:
        return time.monotonic() - started, 0, None


async def calls_during_outage(
    session: aiohttp.ClientSession, base: str, username: str, channel: str, auth: str
) -> float:
    """20 concurrent calls (more than the pool's connections) and a health check: each must
    answer 503 SERVICE_UNAVAILABLE within the database timeout; returns the slowest time."""
    events = f"{base}/{username}/{channel}/events"
    calls = [
        ("POST", events, {"value": {"type": "note:txt", "value": "down"}}),
        ("GET", events, None),
        ("GET", f"{base}/{username}/channels", None),
        ("POST", f"{base}/{username}/channels", {"name": "during-outage"}),
    ] * 5
    results = await asyncio.gather(
        *(timed_call(session, url, verb, body, auth) for verb, url, body in calls),
        timed_call(session, f"{base}/health", "GET", None, None),
    )
    for seconds, status, reply in results:
        assert status == 503, (seconds, status, reply)
        assert reply["id"] == "SERVICE_UNAVAILABLE"
        assert "Traceback" not in str(reply)
    assert results[-1][2]["data"] == {"database": "down"}  # /health names what is down
    slowest = max(seconds for seconds, _, _ in results)
    assert slowest <= DB_TIMEOUT + 1.0, slowest
    return slowest


async def recovery(http: Http, username: str, channel: str, auth: str) -> float:
    """Seconds until /health is 200 again; then many concurrent writes and a read succeed
    (every pooled connection died with the database: all must be replaced)."""
    started = time.monotonic()
    while True:
        assert time.monotonic() - started < 15, "the server did not recover"
        status, _ = await http.call("GET", "/health")
        if status == 200:
            break
        await asyncio.sleep(0.05)
    seconds = time.monotonic() - started
    events = f"/{username}/{channel}/events"
    replies = await asyncio.gather(
        *(
            http.call("POST", events, {"value": {"type": "note:txt", "value": f"{i}"}}, auth)
            for i in range(12)
        )
    )
    assert [status for status, _ in replies] == [201] * 12, replies
    status, listed = await http.call("GET", f"{events}?limit=100", auth=auth)
    assert status == 200 and len(listed) >= 12
    return seconds


@pytest.fixture
def pg_worker(own_postgres: Postgres, logs: Path, tmp_path: Path) -> Iterator[Worker]:
    """A worker on the module's own PostgreSQL, with a short database timeout."""
    env = worker_env(own_postgres.url, None, tmp_path)
    env.update(PRYVRT_DB_TIMEOUT=str(DB_TIMEOUT), PRYVRT_DB_POOL_SIZE="4")
    worker = Worker(env, logs)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


async def test_postgres_stopped_answers_503_quickly_and_recovers_without_restart(
    own_postgres: Postgres, pg_worker: Worker
) -> None:
    async with aiohttp.ClientSession() as session:
        http = Http(session, pg_worker.url)
        username, auth = await http.user()
        channel = await http.channel(username, auth)
        # Warm the pool: several connections exist when the database goes away.
        events = f"/{username}/{channel}/events"
        await asyncio.gather(*(http.call("GET", events, auth=auth) for _ in range(8)))
        # A credential this worker has not checked yet (a checked one stays in its cache for
        # PRYVRT_CACHE_SECONDS, and a socket may then connect without the database).
        status, body = await http.call("POST", f"/{username}/tokens", {"name": "fresh"}, auth)
        assert status == 201, body
        fresh = body["id"]
        async with connect(pg_worker.url, username, auth) as sock:
            await asyncio.to_thread(own_postgres.stop)
            try:
                slowest = await calls_during_outage(session, pg_worker.url, username, channel, auth)
                # Over Socket.IO too: a connected socket's call, and a new connection.
                error, _ = await sock.call("events.get", {"channelId": channel})
                assert error["id"] == "SERVICE_UNAVAILABLE", error
                refused = await refusal(pg_worker.url, username, fresh)
                assert refused["data"]["id"] == "SERVICE_UNAVAILABLE", refused
            finally:
                await asyncio.to_thread(own_postgres.start)
            recovered = await recovery(http, username, channel, auth)
            # The same socket works again: nobody had to reconnect.
            error, listed = await sock.call("events.get", {"channelId": channel, "limit": 100})
            assert error is None and len(listed) >= 12
    assert pg_worker.process.poll() is None  # the same process all along
    print(
        f"\nPostgreSQL stopped: 21 calls answered 503 SERVICE_UNAVAILABLE, slowest after "
        f"{slowest:.3f} s (timeout {DB_TIMEOUT} s); recovered {recovered:.2f} s after it restarted"
    )


async def test_postgres_frozen_answers_503_within_the_timeout_and_recovers(
    own_postgres: Postgres, pg_worker: Worker
) -> None:
    """SIGSTOP on every PostgreSQL process: connections stay open and nothing answers, so
    only the timeouts (connect, acquire, command, release) can bound the wait."""
    async with aiohttp.ClientSession() as session:
        http = Http(session, pg_worker.url)
        username, auth = await http.user()
        channel = await http.channel(username, auth)
        events = f"/{username}/{channel}/events"
        await asyncio.gather(*(http.call("GET", events, auth=auth) for _ in range(8)))
        postmaster = psutil.Process(own_postgres.server.get_pid())
        frozen = [postmaster, *postmaster.children(recursive=True)]
        for proc in frozen:
            proc.suspend()
        try:
            slowest = await calls_during_outage(session, pg_worker.url, username, channel, auth)
        finally:
            for proc in frozen:
                proc.resume()
        recovered = await recovery(http, username, channel, auth)
    assert pg_worker.process.poll() is None
    print(
        f"\nPostgreSQL frozen: 21 calls answered 503 SERVICE_UNAVAILABLE, slowest after "
        f"{slowest:.3f} s (timeout {DB_TIMEOUT} s); recovered {recovered:.2f} s after SIGCONT"
    )
