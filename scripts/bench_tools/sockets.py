"""Socket.IO load clients in their own process, speaking the wire protocol directly.

A minimal Engine.IO 4 / Socket.IO 5 client speaking raw websocket frames from asyncio
protocol callbacks: cheap enough to hold thousands of connections in one process and to
send calls at wrk's pace, so the client side does not hide the server's cost.

    python sockets.py idle   URL NAMESPACE TOKEN COUNT          -> holds COUNT sockets
    python sockets.py listen URL NAMESPACE TOKEN COUNT          -> records notification times
    python sockets.py calls  URL NAMESPACE TOKEN COUNT SECONDS PARAMS_JSON

Each prints JSON lines on stdout: {"ready": n} once connected, then its results when stdin
closes (idle/listen) or when the time is up (calls). Call latencies are time.monotonic();
a listener's arrival times are time.time() as the kernel stamped each frame's packet when it
reached the socket (SO_TIMESTAMPNS), so the client's own delay in reading (hundreds of
sockets woken at once, on a machine whose cores the server shares) is not counted.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson


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
        self.transport: Any = None  # asyncio's, or a StampedTransport
        self.prefix = f'42{namespace},["eventsChanged"'.encode()

    def connection_made(self, transport: Any) -> None:
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
        key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes, now: float | None = None) -> None:
        if now is None:
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


class RawCaller(RawListener):
    """Calls ``events.get`` in a loop from callbacks: the next call leaves as soon as the
    ack of the previous one arrives (one call in flight per socket, like an HTTP client on
    a keep-alive connection), so the client costs a few µs per call, as wrk does."""

    def __init__(self, namespace: str, token: str, host: str, path: str) -> None:
        super().__init__(namespace, token, host, path)
        self.ack_prefix = f"43{namespace},".encode()
        self.request = ""
        self.deadline = 0.0
        self.sent_at = 0.0
        self.next_id = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, params: object, deadline: float) -> None:
        self.request = orjson.dumps(["events.get", params]).decode()
        self.deadline = deadline
        self.send_call()

    def send_call(self) -> None:
        self.next_id += 1
        self.sent_at = time.monotonic()
        self.send_text(f"42{self.ns},{self.next_id}{self.request}")

    def on_text(self, payload: bytes, now: float) -> None:
        if not payload.startswith(self.ack_prefix):
            super().on_text(payload, now)
            return
        self.latencies.append((now - self.sent_at) * 1000)
        rest = payload[len(self.ack_prefix) :]
        if not rest[rest.index(b"[") :].startswith(b"[null,"):
            self.errors += 1
        if now < self.deadline:
            self.send_call()
        elif not self.done.done():
            self.done.set_result(None)


# Linux's SO_TIMESTAMPNS (also the control message's type); Python names it on no platform.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class StampedTransport:
    """The part of an asyncio transport RawListener uses, over a non-blocking socket read
    with ``recvmsg``: each chunk comes with the kernel's receive time (SO_TIMESTAMPNS,
    wall clock), handed to ``data_received`` as the frames' arrival time."""

    CMSG_SPACE = socket.CMSG_SPACE(16)

    def __init__(self, sock: socket.socket, protocol: RawListener) -> None:
        self.sock = sock
        self.protocol = protocol
        self.closed = False
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        asyncio.get_running_loop().add_reader(sock.fileno(), self.readable)

    def readable(self) -> None:
        while not self.closed:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(65536, self.CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.close()
                self.protocol.connection_lost(exc)
                return
            if not data:
                self.close()
                self.protocol.connection_lost(None)
                return
            stamp = time.time()
            for level, kind, raw in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", raw[:16])
                    stamp = seconds + nanoseconds / 1e9
            self.protocol.data_received(data, stamp)

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.sock.sendall(data)  # (small frames: a pong, the namespace connect)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()


async def open_raw_listeners(
    url: str,
    ns: str,
    token: str,
    count: int,
    kind: type[RawListener] = RawListener,
    stamped: bool = False,
) -> list[Any]:
    """``count`` connected sockets; ``stamped``: read through StampedTransport."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    path = "/socket.io/?EIO=4&transport=websocket"
    loop = asyncio.get_running_loop()
    listeners: list[RawListener] = []

    async def one() -> RawListener:
        if stamped:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            await loop.sock_connect(sock, (host, port))
            protocol = kind(ns, token, f"{host}:{port}", path)
            protocol.connection_made(StampedTransport(sock, protocol))  # type: ignore[arg-type]
        else:
            _, protocol = await loop.create_connection(
                lambda: kind(ns, token, f"{host}:{port}", path), host, port
            )
        await asyncio.wait_for(protocol.connected, 30)
        return protocol

    for start in range(0, count, 200):  # connect in waves, not all at once
        listeners += await asyncio.gather(*(one() for _ in range(min(200, count - start))))
    return listeners


def emit(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


async def wait_stdin_closed() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def main(argv: list[str]) -> None:
    mode, url, ns, token, count = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    if mode == "calls":
        seconds, params = float(argv[5]), orjson.loads(argv[6])
        callers = await open_raw_listeners(url, ns, token, count, RawCaller)
        emit({"ready": len(callers)})
        t0 = time.monotonic()
        for caller in callers:
            caller.start(params, t0 + seconds)
        await asyncio.gather(*(caller.done for caller in callers))
        emit(
            {
                "calls": sum(len(c.latencies) for c in callers),
                "seconds": time.monotonic() - t0,
                "latencies": [ms for c in callers for ms in c.latencies],
                "errors": sum(c.errors for c in callers),
            }
        )
        for caller in callers:
            if caller.transport is not None:
                caller.transport.close()
        return
    # idle or listen: hold the sockets (answering pings) until stdin closes
    listening = mode == "listen"
    listeners = await open_raw_listeners(url, ns, token, count, stamped=listening)
    if listening:
        # Lowest priority: the frames' times are the kernel's, so reading late costs the
        # figure nothing, while reading early would take the cores from the server.
        os.nice(19)
    emit({"ready": len(listeners)})
    await wait_stdin_closed()
    if listening:
        for listener in listeners:  # what arrived while the loop had not yet read it
            if isinstance(listener.transport, StampedTransport):
                listener.transport.readable()
        emit({"received": [listener.received for listener in listeners]})
    else:
        emit({"idle": len(listeners)})
    for listener in listeners:
        if listener.transport is not None:
            listener.transport.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
