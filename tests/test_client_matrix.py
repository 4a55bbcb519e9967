"""Socket.IO clients as people run them, against a real ``pryvrt serve`` process.

Clients: npm ``socket.io-client`` 4.x (node), python-socketio's ``AsyncClient`` and
``Client``, each with its transports left at their default (polling, then the upgrade: the
client must end on websocket), websocket only and polling only; and the dashboard's
vendored socket.io bundle in Debian's Chromium (default transports). Each goes through the
scenario of tests/matrix_clients.py: ``auth`` and ``?auth=``, an ack, an error ack, a
notification, and a reconnection after the server restarts.

For speed, every client runs at once around one restart (``matrix`` below); each test then
checks one client's steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests import matrix_clients as clients
from tests.conftest import free_port
from tests.processes import Http, Worker, worker_env

TRANSPORTS: dict[str, list[str] | None] = {
    "default": None,
    "websocket": ["websocket"],
    "polling": ["polling"],
}
Runner = Callable[[str, str, str, str, list[str] | None, clients.Out], Awaitable[None]]


class RestartableServer:
    """One ``pryvrt serve`` process that a test restarts on the same port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker: Worker | None = None

    def start(self) -> None:
        self.worker = Worker(self.env, self.log_dir, port=self.port)
        self.worker.wait_ready()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RestartableServer]:
    logs = tmp_path_factory.mktemp("matrix")
    instance = RestartableServer(worker_env(database_url, None, logs), logs)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@dataclass
class Run:
    """One client of the matrix: its steps as they came."""

    name: str
    runner: Runner
    transports: list[str] | None
    skipped: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def out(self, step: dict[str, Any]) -> None:
        self.steps.append(step)
        if "awaitingRestart" in step or "failed" in step or "done" in step:
            self.waiting.set()
        if "failed" in step or "done" in step:
            self.finished.set()


def planned_runs() -> list[Run]:
    runs = []
    node_missing = clients.node_ready()
    for transports, names in TRANSPORTS.items():
        runs.append(Run(f"npm-{transports}", clients.run_node, names, node_missing))
        runs.append(Run(f"python-async-{transports}", clients.run_python_async, names))
        runs.append(Run(f"python-sync-{transports}", clients.run_python_sync, names))
    no_browser = None if clients.CHROMIUM else "no Chromium here: apt-get install -y chromium"
    runs.append(Run("browser-default", clients.run_browser, None, no_browser))
    return runs


@dataclass(frozen=True)
class Owner:
    """A user of the module's server, logged in once (password hashing is slow on purpose)."""

    username: str
    session: str

    async def client_credential(self, base: str) -> tuple[str, str]:
        """A channel of its own and a token that may write there and sees nothing else."""
        async with aiohttp.ClientSession() as session:
            http = Http(session, base)
            channel = await http.channel(self.username, self.session)
            status, body = await http.call(
                "POST",
                f"/{self.username}/tokens",
                {
                    "name": f"client-{channel}",
                    "permissions": [{"channelId": channel, "level": "contribute"}],
                },
                self.session,
            )
            assert status == 201, body
            return channel, body["id"]


@pytest.fixture(scope="module")
def owner(server: RestartableServer) -> Owner:
    async def register() -> Owner:
        async with aiohttp.ClientSession() as session:
            return Owner(*await Http(session, server.url).user())

    return asyncio.run(register())


async def run_matrix(server: RestartableServer, owner: Owner, runs: list[Run]) -> None:
    """Every client at once; one restart when all wait for it (or after 30 s)."""

    async def one(run: Run, channel: str, token: str) -> None:
        try:
            await run.runner(server.url, owner.username, token, channel, run.transports, run.out)
        except BaseException as exc:
            run.out({"failed": f"{type(exc).__name__}: {exc}"})
        finally:
            if not run.finished.is_set():
                run.out({"failed": "the client stopped without finishing"})

    active = [run for run in runs if run.skipped is None]
    credentials = [await owner.client_credential(server.url) for _ in active]
    tasks = [
        asyncio.ensure_future(one(run, *credential))
        for run, credential in zip(active, credentials, strict=True)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.waiting.wait() for r in active)), 30)
    except TimeoutError:
        pass  # the clients still not there fail below
    await asyncio.to_thread(server.restart)
    _, pending = await asyncio.wait(tasks, timeout=40)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@pytest.fixture(scope="module")
def matrix(server: RestartableServer, owner: Owner) -> dict[str, Run]:
    runs = planned_runs()
    asyncio.run(run_matrix(server, owner, runs))
    return {run.name: run for run in runs}


def check(run: Run, transports: str) -> None:
    """What every client must have done, whatever it is."""
    if run.skipped:
        pytest.skip(run.skipped)
    steps = run.steps
    failed = [s["failed"] for s in steps if "failed" in s]
    assert not failed, (failed, steps)
    final = "polling" if transports == "polling" else "websocket"
    got = {key: step[key] for step in steps for key in step}
    assert got["connected"]["transport"] == final, steps
    assert got["ack"]["error"] is None and isinstance(got["ack"]["result"], list), steps
    assert got["errorAck"]["result"] is None, steps
    assert got["errorAck"]["error"]["id"] == "UNKNOWN_CHANNEL", steps
    assert got["http"] == 201, steps
    assert got["notification"]["event"] == "eventsChanged", steps
    assert got["queryAuth"]["transport"] == final, steps
    assert got["queryAuth"]["error"] is None, steps
    assert isinstance(got["queryAuth"]["result"], list), steps
    assert got["reconnected"]["transport"] == final, steps
    assert got["reconnected"]["ack"]["error"] is None, steps
    assert got["reconnected"]["notified"] is True, steps
    assert got["done"] is True


@pytest.mark.parametrize("transports", TRANSPORTS)
def test_the_npm_client(matrix: dict[str, Run], transports: str) -> None:
    check(matrix[f"npm-{transports}"], transports)


@pytest.mark.parametrize("transports", TRANSPORTS)
def test_the_python_async_client(matrix: dict[str, Run], transports: str) -> None:
    check(matrix[f"python-async-{transports}"], transports)


@pytest.mark.parametrize("transports", TRANSPORTS)
def test_the_python_sync_client(matrix: dict[str, Run], transports: str) -> None:
    check(matrix[f"python-sync-{transports}"], transports)


def test_the_browser_client_of_the_dashboard(matrix: dict[str, Run]) -> None:
    check(matrix["browser-default"], "default")


async def test_a_long_polling_client_disconnects_at_once(
    server: RestartableServer, owner: Owner
) -> None:
    """python-engineio left the client's pending long-poll open up to 45 s after it closed
    its session, and python-socketio's ``disconnect()`` waited for it (30 s measured)."""
    username = owner.username
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        server.url,
        namespaces=[f"/{username}"],
        auth={"token": owner.session},
        transports=["polling"],
    )
    error, _ = await client.call("channels.get", {}, namespace=f"/{username}", timeout=5)
    assert error is None
    started = time.monotonic()
    await asyncio.wait_for(client.disconnect(), 10)
    assert time.monotonic() - started < 2
