"""The clients of tests/test_client_matrix.py, each running the same scenario.

The steps (tests/js/scenario.mjs is the reference; the Python versions follow it line for
line): connect with ``auth: {token}`` (with the default transports, wait for the upgrade),
call a method with an ack, get an error ack, receive the notification of an HTTP write,
connect with ``?auth=``, announce ``{awaitingRestart: true}`` and, once the server has
restarted, reconnect by itself, call and be notified again. Each step is handed to ``out``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import socketio

from pryvrt.web import STATIC_DIR
from tests.dashboard_page import CHROMIUM, CHROMIUM_ARGS

JS_DIR = Path(__file__).parent / "js"
Out = Callable[[dict[str, Any]], None]
# How long python-socketio's clients wait for the namespace to connect (their
# ``wait_timeout``). Its default, 1 s, is shorter than a polling connect takes on a loaded
# machine (auth, then the answer on the next long-poll): "Unexpected connection error". The
# npm client waits 20 s by default.
CONNECT_WAIT = 10


# -- python-socketio AsyncClient ------------------------------------------------------------


async def until(check: Callable[[], bool], what: str, within: float = 5) -> None:
    try:
        async with asyncio.timeout(within):
            while not check():  # noqa: ASYNC110 - polling client state
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def python_async_scenario(
    base: str, username: str, token: str, channel: str, transports: list[str] | None, out: Out
) -> None:
    """The scenario of tests/js/scenario.mjs with ``socketio.AsyncClient``."""
    namespace = f"/{username}"
    options: dict[str, Any] = {} if transports is None else {"transports": transports}

    def new_client() -> socketio.AsyncClient:
        # Reconnection delays shortened as in scenario.mjs; all else is the default.
        return socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.5)

    async def settled(client: socketio.AsyncClient) -> str:
        if transports is None:
            await until(lambda: client.transport() == "websocket", "the websocket upgrade")
        return str(client.transport())

    async def call(client: socketio.AsyncClient, method: str, params: Any) -> dict[str, Any]:
        error, result = await client.call(method, params, namespace=namespace, timeout=5)
        return {"error": error, "result": result}

    async def write(content: str) -> int:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/{username}/{channel}/events",
                json={"type": "note/txt", "content": content},
                headers={"Authorization": token},
            ) as reply:
                return reply.status

    client = new_client()
    heard: list[dict[str, Any]] = []
    mine = {"event": "eventsChanged", "data": {"channelId": channel}}
    connects: list[float] = []
    dropped = asyncio.Event()

    @client.on("*", namespace=namespace)
    async def any_event(event: str, data: Any = None) -> None:
        heard.append({"event": event, "data": data})

    @client.on("connect", namespace=namespace)
    async def on_connect() -> None:
        connects.append(asyncio.get_running_loop().time())

    @client.on("disconnect", namespace=namespace)
    async def on_disconnect(reason: Any = None) -> None:
        dropped.set()

    await client.connect(
        base, namespaces=[namespace], auth={"token": token}, wait_timeout=CONNECT_WAIT, **options
    )
    try:
        out({"connected": {"transport": await settled(client)}})
        out({"ack": await call(client, "channels.get", {})})
        out({"errorAck": await call(client, "events.get", {"channelId": "no-such-channel"})})
        out({"http": await write("before-restart")})
        await until(lambda: mine in heard, "eventsChanged")
        out({"notification": heard.pop(0)})

        via_query = new_client()
        await via_query.connect(
            f"{base}?auth={token}", namespaces=[namespace], wait_timeout=CONNECT_WAIT, **options
        )
        try:
            transport = await settled(via_query)
            out(
                {"queryAuth": {"transport": transport, **await call(via_query, "channels.get", {})}}
            )
        finally:
            await close(via_query)

        out({"awaitingRestart": True})
        await asyncio.wait_for(dropped.wait(), 40)
        await until(lambda: len(connects) == 2, "the reconnection", within=15)
        transport = await settled(client)
        ack = await call(client, "channels.get", {})
        heard.clear()
        await write("after-restart")
        await until(lambda: mine in heard, "eventsChanged after the restart")
        out({"reconnected": {"transport": transport, "ack": ack, "notified": True}})
    finally:
        await close(client)
    out({"done": True})


async def close(client: socketio.AsyncClient) -> None:
    await asyncio.wait_for(client.disconnect(), 10)


run_python_async = python_async_scenario


# -- python-socketio Client (threads: requests and websocket-client) ------------------------


def python_sync_scenario(
    base: str, username: str, token: str, channel: str, transports: list[str] | None, out: Out
) -> None:
    """The same scenario with the blocking ``socketio.Client`` (requests, websocket-client)."""
    namespace = f"/{username}"
    options: dict[str, Any] = {} if transports is None else {"transports": transports}

    def wait_until(check: Callable[[], bool], what: str, within: float = 5) -> None:
        event = threading.Event()
        for _ in range(int(within / 0.02)):
            if check():
                return
            event.wait(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def settled(client: socketio.Client) -> str:
        if transports is None:
            wait_until(lambda: client.transport() == "websocket", "the websocket upgrade")
        return str(client.transport())

    def call(client: socketio.Client, method: str, params: Any) -> dict[str, Any]:
        error, result = client.call(method, params, namespace=namespace, timeout=5)
        return {"error": error, "result": result}

    def write(content: str) -> int:
        request = urllib.request.Request(
            f"{base}/{username}/{channel}/events",
            data=orjson.dumps({"type": "note/txt", "content": content}),
            headers={"Authorization": token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            return int(reply.status)

    client = socketio.Client(reconnection_delay=0.1, reconnection_delay_max=0.5)
    heard: list[dict[str, Any]] = []
    mine = {"event": "eventsChanged", "data": {"channelId": channel}}
    connects: list[bool] = []
    dropped = threading.Event()
    client.on(
        "*",
        lambda event, data=None: heard.append({"event": event, "data": data}),
        namespace=namespace,
    )
    client.on("connect", lambda: connects.append(True), namespace=namespace)
    client.on("disconnect", lambda reason=None: dropped.set(), namespace=namespace)

    client.connect(
        base, namespaces=[namespace], auth={"token": token}, wait_timeout=CONNECT_WAIT, **options
    )
    try:
        out({"connected": {"transport": settled(client)}})
        out({"ack": call(client, "channels.get", {})})
        out({"errorAck": call(client, "events.get", {"channelId": "no-such-channel"})})
        out({"http": write("before-restart")})
        wait_until(lambda: mine in heard, "eventsChanged")
        out({"notification": heard.pop(0)})

        via_query = socketio.Client()
        via_query.connect(
            f"{base}?auth={token}", namespaces=[namespace], wait_timeout=CONNECT_WAIT, **options
        )
        try:
            transport = settled(via_query)
            out({"queryAuth": {"transport": transport, **call(via_query, "channels.get", {})}})
        finally:
            via_query.disconnect()

        out({"awaitingRestart": True})
        assert dropped.wait(40), "no disconnection"  # (the other clients may be slower)
        wait_until(lambda: len(connects) == 2, "the reconnection", within=15)
        transport = settled(client)
        ack = call(client, "channels.get", {})
        heard.clear()
        write("after-restart")
        wait_until(lambda: mine in heard, "eventsChanged after the restart")
        out({"reconnected": {"transport": transport, "ack": ack, "notified": True}})
    finally:
        client.disconnect()
    out({"done": True})


async def run_python_sync(
    base: str, username: str, token: str, channel: str, transports: list[str] | None, out: Out
) -> None:
    """``python_sync_scenario`` in a thread; ``out`` is called on the event loop."""
    loop = asyncio.get_running_loop()

    def out_threadsafe(step: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(out, step)

    await asyncio.to_thread(
        python_sync_scenario, base, username, token, channel, transports, out_threadsafe
    )


# -- npm socket.io-client (node) ------------------------------------------------------------


def node_ready() -> str | None:
    """Why the node client cannot run here, or None. In CI (``CI`` set) the npm packages
    must be there (.ci/run installs them): their absence fails instead of skipping."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        why = "socket.io-client is missing: run scripts/install-js-test-deps"
        if os.environ.get("CI"):
            raise AssertionError(why)
        return why
    return None


async def run_node(
    base: str, username: str, token: str, channel: str, transports: list[str] | None, out: Out
) -> None:
    """tests/js/matrix.mjs: the npm package through scenario.mjs, one JSON line per step."""
    process = await asyncio.create_subprocess_exec(
        *(shutil.which("node") or "node", str(JS_DIR / "matrix.mjs"), base, username, token),
        channel,
        ",".join(transports) if transports else "default",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async for line in process.stdout:
            if line.strip():
                out(orjson.loads(line))
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        stderr = (await process.stderr.read()).decode()[-2000:]
        out({"failed": f"node exited with {process.returncode}: {stderr}"})


# -- the dashboard's vendored bundle in Chromium --------------------------------------------


BROWSER_SCENARIO = """async ({ bundle, source, args }) => {
    const { io } = await import(bundle);
    const blob = new Blob([source], { type: "text/javascript" });
    const { scenario } = await import(URL.createObjectURL(blob));
    try {
        await scenario(io, { ...args, out: (step) => window.out(step) });
    } catch (err) {
        await window.out({ failed: String((err && err.stack) || err) });
    }
}"""


async def run_browser(
    base: str, username: str, token: str, channel: str, transports: list[str] | None, out: Out
) -> None:
    """scenario.mjs in a page of the server (same origin), with the page's own bundle."""
    from playwright.async_api import async_playwright

    [bundle] = sorted((STATIC_DIR / "vendor").glob("socket.io-*.esm.min.js"))
    args: dict[str, Any] = {
        "base": base,
        "username": username,
        "token": token,
        "channelId": channel,
    }
    if transports:
        args["transports"] = transports
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            page.on("pageerror", lambda exc: out({"failed": f"page error: {exc}"}))
            await page.expose_function("out", out)
            await page.goto(base + "/health")
            await page.evaluate(
                BROWSER_SCENARIO,
                {
                    "bundle": f"/static/vendor/{bundle.name}",
                    "source": (JS_DIR / "scenario.mjs").read_text(),
                    "args": args,
                },
            )
        finally:
            await browser.close()
