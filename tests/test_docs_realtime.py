"""docs/realtime.md's code, run as printed against real servers.

The blocks are extracted from the file, not retyped: each ```js or ```python block whose
first line names a file (``// client.mjs ...``, ``# client.py ...``) is written to that file
and run with node or this venv's python; only the address, ``alice`` and ``TOKEN`` are
replaced. The install commands the page gives are checked against the installed packages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import aiohttp
import pytest
from packaging.requirements import Requirement

from tests.matrix_clients import JS_DIR, node_ready
from tests.processes import Http, Worker, running, worker_env

DOC = Path(__file__).resolve().parents[1] / "docs" / "realtime.md"
RUN_BLOCKS = {"client.mjs", "client.js", "client.py", "client_sync.py", "ws-only.mjs"}


def named_blocks() -> dict[str, str]:
    """Every ```js / ```python block of the page whose first line names its file."""
    blocks = {}
    for lang, code in re.findall(r"^```(js|python)\n(.*?)^```", DOC.read_text(), re.M | re.S):
        first = code.splitlines()[0]
        named = re.match(r"^(?://|#) (\S+\.(?:mjs|js|py))\b", first)
        assert named, f"a {lang} block of {DOC.name} does not name its file: {first!r}"
        blocks[named.group(1)] = code
    return blocks


def test_every_snippet_of_the_page_is_run_here() -> None:
    assert set(named_blocks()) == RUN_BLOCKS


def test_the_install_commands_name_extras_and_versions_that_exist() -> None:
    """``pip install "python-socketio[asyncio_client]"`` (an underscore) installed no aiohttp
    with the pip of Python 3.11: each extra must be spelled as its package declares it."""
    text = DOC.read_text()
    commands = re.findall(r'pip install "([\w.-]+)\[([\w,-]+)\]"', text)
    assert {extra for _, extra in commands} >= {"asyncio-client", "client"}
    for package, extras in commands:
        meta = metadata.metadata(package)
        declared = meta.get_all("Provides-Extra") or []
        for extra in extras.split(","):
            assert extra in declared, (package, extra, declared)
            needed = [
                Requirement(r)
                for r in meta.get_all("Requires-Dist") or []
                if Requirement(r).marker is not None
                and Requirement(r).marker.evaluate({"extra": extra})  # type: ignore[union-attr]
            ]
            assert needed, (package, extra)
            for requirement in needed:
                metadata.version(requirement.name)  # installed (else PackageNotFoundError)
    [major] = re.findall(r"npm install socket\.io-client@(\d+)", text)
    lock = json.loads((JS_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/socket.io-client"]["version"].startswith(major + ".")


@dataclass
class Servers:
    single: str  # one worker: every transport
    workers: str  # --workers 2: websocket only
    username: str
    token: str
    channel: str


@pytest.fixture(scope="module")
def servers(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    logs = tmp_path_factory.mktemp("docs")
    single = Worker(worker_env(database_url, None, logs), logs)
    workers = Worker(worker_env(database_url, redis_url, logs), logs, "--workers=2")
    with running(single, workers):

        async def owner() -> Servers:
            async with aiohttp.ClientSession() as session:
                http = Http(session, single.url)
                username, auth = await http.user()
                channel = "diary"  # every new user's (the default PRYVRT_DEFAULT_CHANNELS)
                status, body = await http.call(
                    "POST", f"/{username}/tokens/personal", {"name": "docs"}, auth
                )
                assert status == 200, body
                return Servers(single.url, workers.url, username, body["id"], channel)

        yield asyncio.run(owner())


def as_printed(code: str, base: str, servers: Servers) -> str:
    return (
        code.replace("http://127.0.0.1:3000", base)
        .replace("/alice", f"/{servers.username}")
        .replace("TOKEN", servers.token)
    )


@dataclass
class Running:
    process: asyncio.subprocess.Process

    async def line_with(self, text: str, within: float = 15) -> str:
        """The next line of stdout containing ``text`` (the test fails after ``within`` s)."""
        assert self.process.stdout is not None
        seen = []
        try:
            async with asyncio.timeout(within):
                while True:
                    line = (await self.process.stdout.readline()).decode()
                    if not line:
                        break
                    seen.append(line)
                    if text in line:
                        return line
        except TimeoutError:
            pass
        raise AssertionError(f"no line with {text!r} in {seen} ({await self.stderr()})")

    async def stderr(self, within: float = 0.5) -> str:
        assert self.process.stderr is not None
        try:
            return (await asyncio.wait_for(self.process.stderr.read(4096), within)).decode()
        except TimeoutError:
            return ""


@pytest.fixture
async def run_snippet(tmp_path: Path) -> AsyncIterator[object]:
    """Write a snippet to its file and start it; stopped when the test ends."""
    started: list[asyncio.subprocess.Process] = []
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")

    async def start(name: str, code: str) -> Running:
        path = tmp_path / name
        path.write_text(code)
        if name.endswith("js"):
            if (why := node_ready()) is not None:
                pytest.skip(why)
            command = [shutil.which("node") or "node", str(path)]
        else:
            command = [sys.executable, str(path)]
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # lines as they are printed
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        started.append(process)
        return Running(process)

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.wait()


def commonjs(blocks: dict[str, str]) -> str:
    """client.js as the page says: client.mjs with its import line replaced."""
    esm = blocks["client.mjs"].splitlines()
    [import_line] = [line for line in esm if line.startswith("import ")]
    body = [line for line in esm[1:] if line != import_line]
    return blocks["client.js"] + "\n".join(body) + "\n"


async def write(servers: Servers) -> None:
    """A channel and an event: the snippets print both notifications."""
    async with aiohttp.ClientSession() as session:
        http = Http(session, servers.single)
        await http.channel(servers.username, servers.token)
        status, body = await http.call(
            "POST",
            f"/{servers.username}/{servers.channel}/events",
            {"type": "note/txt", "content": "hello"},
            servers.token,
        )
        assert status == 201, body


@pytest.mark.parametrize("name", ["client.mjs", "client.js"])
async def test_the_node_snippet_calls_and_prints_notifications(
    servers: Servers, run_snippet: object, name: str
) -> None:
    blocks = named_blocks()
    code = blocks[name] if name == "client.mjs" else commonjs(blocks)
    snippet = await run_snippet(name, as_printed(code, servers.single, servers))  # type: ignore[operator]
    assert "Diary" in await snippet.line_with("channels:")
    await write(servers)
    await snippet.line_with("channels changed")
    assert servers.channel in await snippet.line_with("events changed in")


@pytest.mark.parametrize("name", ["client.py", "client_sync.py"])
async def test_the_python_snippets_call_and_print_notifications(
    servers: Servers, run_snippet: object, name: str
) -> None:
    code = as_printed(named_blocks()[name], servers.single, servers)
    snippet = await run_snippet(name, code)  # type: ignore[operator]
    assert "Diary" in await snippet.line_with("[")
    await write(servers)
    await snippet.line_with("notification: channelsChanged")
    assert servers.channel in await snippet.line_with("notification: eventsChanged")


async def test_with_several_workers_the_websocket_only_snippet_connects(
    servers: Servers, run_snippet: object
) -> None:
    code = as_printed(named_blocks()["ws-only.mjs"], servers.workers, servers)
    snippet = await run_snippet("ws-only.mjs", code)  # type: ignore[operator]
    assert "websocket" in await snippet.line_with("connected over")


async def test_with_several_workers_default_clients_fail_as_the_page_says(
    servers: Servers, run_snippet: object
) -> None:
    """The refusal handler prints the transport error, not ``undefined``."""
    blocks = named_blocks()
    node = await run_snippet(  # type: ignore[operator]
        "client.mjs", as_printed(blocks["client.mjs"], servers.workers, servers)
    )
    python = await run_snippet(  # type: ignore[operator]
        "client.py", as_printed(blocks["client.py"], servers.workers, servers)
    )
    async with asyncio.timeout(15):
        node_error = (await node.process.stderr.readline()).decode()
        python_error = (await python.process.stderr.read()).decode()
    assert node_error.strip() == "connect error: xhr poll error"
    assert "Unexpected status code 400" in python_error
