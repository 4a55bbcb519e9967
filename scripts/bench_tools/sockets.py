"""Socket.IO load clients in their own process, speaking the wire protocol directly.

A minimal Engine.IO 4 / Socket.IO 5 client over aiohttp websockets: cheap enough to hold
thousands of connections in one process, so the client side does not hide the server's cost.

    python sockets.py idle   URL NAMESPACE TOKEN COUNT          -> holds COUNT sockets
    python sockets.py listen URL NAMESPACE TOKEN COUNT          -> records notification times
    python sockets.py calls  URL NAMESPACE TOKEN COUNT SECONDS PARAMS_JSON

Each prints JSON lines on stdout: {"ready": n} once connected, then its results when stdin
closes (idle/listen) or when the time is up (calls). Times are time.monotonic() (one clock
for every process of the machine).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

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
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets = await open_many(http, url, ns, token, count)
        readers = [asyncio.create_task(s.run()) for s in sockets]
        emit({"ready": len(sockets)})
        if mode in ("idle", "listen"):
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
