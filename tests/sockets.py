"""A real Socket.IO client (python-socketio's AsyncClient) for tests, with bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import socketio


class Socket:
    """One client connected to ``/{username}``; records notifications and disconnection."""

    def __init__(self, client: socketio.AsyncClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.connect_error: Any = None
        client.on("*", self._on_event, namespace=namespace)
        client.on("disconnect", self._on_disconnect, namespace=namespace)
        client.on("connect_error", self._on_connect_error, namespace=namespace)

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.received.put_nowait((event, data))

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnected.set()

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_error = data

    async def call(self, method: str, params: Any = None, within: float = 5) -> Any:
        """Emit a method call and return the ack's arguments ``[error, result]``."""
        reply = await self.client.call(method, params, namespace=self.namespace, timeout=within)
        return list(reply) if isinstance(reply, tuple) else [reply]

    async def emit(self, event: str, *args: Any) -> None:
        await self.client.emit(event, args[0] if len(args) == 1 else args, namespace=self.namespace)

    async def next(self, within: float = 2.0) -> tuple[str, Any]:
        return await asyncio.wait_for(self.received.get(), within)

    async def drain(self, within: float = 0.3) -> list[tuple[str, Any]]:
        """Everything received during the next ``within`` seconds."""
        await asyncio.sleep(within)
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items

    async def wait_disconnected(self, within: float = 3.0) -> None:
        await asyncio.wait_for(self.disconnected.wait(), within)


@asynccontextmanager
async def connect(
    base_url: str,
    username: str,
    token: str | None,
    *,
    in_query: bool = False,
    transports: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Socket]:
    """Connect with the v4 ``auth: {token}`` (or ``?auth=`` with ``in_query``)."""
    client = socketio.AsyncClient(reconnection=False)
    namespace = f"/{username}"
    socket = Socket(client, namespace)
    url = base_url.rstrip("/")
    auth = None
    if token is not None:
        if in_query:
            url += f"?auth={token}"
        else:
            auth = {"token": token}
    try:
        await client.connect(
            url,
            namespaces=[namespace],
            auth=auth,
            transports=transports or ["websocket"],
            headers=headers or {},
            wait_timeout=5,
        )
        yield socket
    finally:
        if client.transport() == "polling":
            # python-engineio's client waits for its pending long-poll (~30 s) otherwise.
            await client.eio.disconnect(abort=True)
        else:
            await client.disconnect()


async def refusal(base_url: str, username: str, token: str | None, **kw: Any) -> Any:
    """Try to connect; return the connect error's data (the test fails if accepted)."""
    client = socketio.AsyncClient(reconnection=False)
    namespace = f"/{username}"
    socket = Socket(client, namespace)
    url = base_url.rstrip("/")
    if token is not None and kw.get("in_query"):
        url += f"?auth={token}"
    auth = {"token": token} if token is not None and not kw.get("in_query") else None
    try:
        await client.connect(
            url, namespaces=[namespace], auth=auth, transports=["websocket"], wait_timeout=5
        )
    except socketio.exceptions.ConnectionError:
        return socket.connect_error
    finally:
        await client.disconnect()
    raise AssertionError("the connection was accepted")
