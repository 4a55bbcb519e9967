"""Socket.IO load clients in their own process, speaking the wire protocol directly.

A minimal Engine.IO 4 / Socket.IO 5 client over aiohttp websockets: cheap enough to hold
thousands of connections in one process, so the client side does not hide the server's cost.

    python sockets.py idle   URL NAMESPACE TOKEN COUNT          -> holds COUNT sockets
    python sockets.py listen URL NAMESPACE TOKEN COUNT          -> records notification times
                                                                   (raw websocket protocol)
    python sockets.py calls  URL NAMESPACE TOKEN COUNT SECONDS PARAMS_JSON

Each prints JSON lines on stdout: {"ready": n} once connected, then its results when stdin
closes (idle/listen) or when the time is up (calls). Times are time.monotonic() (one clock
for every process of the machine).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import sys
import time
from urllib.parse import urlsplit

import aiohttp
import orjson


class SioSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, namespace: str) -> None:
        self.ws = ws
        self.ns = namespace
        self.received: list[float] = []
        self.acks: dict[int, asyncio.Future[object]] = {}
        self.ids = itertools.count(1)

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, url: str, namespace: str, token: str
    ) -> SioSocket:
        ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket", autoping=False)
        opened = await ws.receive_str()
        assert opened.startswith("0"), opened
        await ws.send_str(f"40{namespace}," + orjson.dumps({"token": token}).decode())
        sock = cls(ws, namespace)
        while True:
            msg = await ws.receive_str()
            if msg == "2":
                await ws.send_str("3")
                continue
            if msg.startswith(f"40{namespace},"):
                return sock
            raise RuntimeError(f"connect refused: {msg[:200]}")

    async def run(self, event: str = "eventsChanged") -> None:
        prefix_event = f'42{self.ns},["{event}"'
        prefix_ack = f"43{self.ns},"
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.data
            if data == "2":
                await self.ws.send_str("3")
            elif data.startswith(prefix_event):
                self.received.append(time.monotonic())
            elif data.startswith(prefix_ack):
                rest = data[len(prefix_ack) :]
                cut = rest.index("[")
                future = self.acks.pop(int(rest[:cut]), None)
                if future is not None and not future.done():
                    future.set_result(orjson.loads(rest[cut:]))

    async def call(self, method: str, params: object) -> object:
        ack = next(self.ids)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.acks[ack] = future
        await self.ws.send_str(f"42{self.ns},{ack}" + orjson.dumps([method, params]).decode())
        return await future


class RawListener(asyncio.Protocol):
    """A listening socket with no task and no library per frame: asyncio calls
    ``data_received`` and the frame's arrival time is recorded there. The fan-out figure
    then measures the server, not a client library parsing 500 frames in a row."""

    def __init__(self, namespace: str, token: str, host: str, path: str) -> None:
        self.ns = namespace
        self.token = token
        self.host = host
        self.path = path
        self.buffer = b""
        self.upgraded = False
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received: list[float] = []
        self.transport: asyncio.Transport | None = None
        self.prefix = f'42{namespace},["eventsChanged"'.encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def send_text(self, text: str) -> None:
        """One masked client text frame."""
        assert self.transport is not None
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = bytes([0x81, 0x80 | size])
        else:
            header = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.fail(RuntimeError(head[:200].decode(errors="replace")))
                return
            self.upgraded = True
            self.buffer = rest
        while len(self.buffer) >= 2:
            size = self.buffer[1] & 0x7F
            start = 2
            if size == 126:
                if len(self.buffer) < 4:
                    return
                size, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif size == 127:
                if len(self.buffer) < 10:
                    return
                size, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < start + size:
                return
            opcode = self.buffer[0] & 0x0F
            payload = self.buffer[start : start + size]
            self.buffer = self.buffer[start + size :]
            if opcode == 0x1:
                self.on_text(payload, now)
            elif opcode == 0x8:
                self.fail(RuntimeError("closed by the server"))

    def on_text(self, payload: bytes, now: float) -> None:
        if payload.startswith(self.prefix):
            self.received.append(now)
        elif payload == b"2":
            self.send_text("3")
        elif payload.startswith(b"0"):  # engine.io open: join the namespace
            self.send_text(f"40{self.ns}," + orjson.dumps({"token": self.token}).decode())
        elif payload.startswith(f"40{self.ns},".encode()) and not self.connected.done():
            self.connected.set_result(None)
        elif payload.startswith(f"44{self.ns},".encode()):
            self.fail(RuntimeError(payload[:200].decode(errors="replace")))

    def fail(self, exc: Exception) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or RuntimeError("connection lost"))


async def open_raw_listeners(url: str, ns: str, token: str, count: int) -> list[RawListener]:
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    path = "/socket.io/?EIO=4&transport=websocket"
    loop = asyncio.get_running_loop()
    listeners: list[RawListener] = []

    async def one() -> RawListener:
        _, protocol = await loop.create_connection(
            lambda: RawListener(ns, token, f"{host}:{port}", path), host, port
        )
        await asyncio.wait_for(protocol.connected, 30)
        return protocol

    for start in range(0, count, 200):  # connect in waves, not all at once
        listeners += await asyncio.gather(*(one() for _ in range(min(200, count - start))))
    return listeners


def emit(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


async def open_many(
    http: aiohttp.ClientSession, url: str, ns: str, token: str, count: int
) -> list[SioSocket]:
    sockets: list[SioSocket] = []
    for start in range(0, count, 200):  # connect in waves, not all at once
        sockets += await asyncio.gather(
            *(SioSocket.connect(http, url, ns, token) for _ in range(min(200, count - start)))
        )
    return sockets


async def wait_stdin_closed() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def main(argv: list[str]) -> None:
    mode, url, ns, token, count = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    if mode == "listen":
        listeners = await open_raw_listeners(url, ns, token, count)
        emit({"ready": len(listeners)})
        await wait_stdin_closed()
        emit({"received": [listener.received for listener in listeners]})
        for listener in listeners:
            if listener.transport is not None:
                listener.transport.close()
        return
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets = await open_many(http, url, ns, token, count)
        readers = [asyncio.create_task(s.run()) for s in sockets]
        emit({"ready": len(sockets)})
        if mode == "idle":
            await wait_stdin_closed()
            emit({"received": [s.received for s in sockets]})
        elif mode == "calls":
            seconds, params = float(argv[5]), orjson.loads(argv[6])
            latencies: list[float] = []
            errors = 0
            deadline = time.monotonic() + seconds

            async def loop(sock: SioSocket) -> None:
                nonlocal errors
                while time.monotonic() < deadline:
                    t0 = time.monotonic()
                    result = await sock.call("events.get", params)
                    latencies.append((time.monotonic() - t0) * 1000)
                    if not isinstance(result, list) or result[0] is not None:
                        errors += 1

            t0 = time.monotonic()
            await asyncio.gather(*(loop(s) for s in sockets))
            emit(
                {
                    "calls": len(latencies),
                    "seconds": time.monotonic() - t0,
                    "latencies": latencies,
                    "errors": errors,
                }
            )
        for task in readers:
            task.cancel()
        for sock in sockets:
            await sock.ws.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
