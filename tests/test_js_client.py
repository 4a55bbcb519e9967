"""A real JavaScript client (npm socket.io-client v4, run by node) against the server."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Api
from tests.matrix_clients import node_ready

JS_DIR = Path(__file__).parent / "js"


def node_client() -> list[str]:
    why = node_ready()
    if why is not None:
        pytest.skip(f"{why} (the JavaScript client test needs it)")
    return [shutil.which("node") or "node", str(JS_DIR / "client.mjs")]


async def run_node(*args: str) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    except TimeoutError:
        process.kill()
        raise
    steps = [orjson.loads(line) for line in stdout.splitlines() if line.strip()]
    assert process.returncode == 0, (steps, stderr.decode()[-2000:])
    return steps


async def test_the_npm_socketio_client_calls_methods_and_receives_notifications(api: Api) -> None:
    command = node_client()
    username, session = await api.user()
    token = await api.personal_token(username, session)
    await api.channel(username, session, name="Existing")
    base = str(api.client.make_url("")).rstrip("/")

    steps = await run_node(*command, base, username, token)

    refused = next(s["refused"] for s in steps if "refused" in s)
    assert refused["data"]["id"] == "INVALID_TOKEN"
    acks = [s["ack"] for s in steps if "ack" in s]
    assert acks[0]["error"] is None
    assert [c["name"] for c in acks[0]["result"]] == ["Existing"]
    assert acks[1]["error"]["id"] == "UNKNOWN_METHOD"
    assert acks[2] == acks[0]
    assert {"http": 201} in steps
    notifications = [s["notification"] for s in steps if "notification" in s]
    assert notifications == [{"event": "channelsChanged", "args": []}]
    assert steps[-1] == {"done": True}
