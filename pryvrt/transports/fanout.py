"""Packets written straight to websockets: encode-once fan-out, and acks without a detour.

Why: stock ``sio.emit`` to N sockets costs ~42 µs per socket here (a task per socket, a
queue and a writer-task wake-up per message in engine.io, per-frame deflate), so 500
sockets wait ~21 ms for the last one (``../shared/ECOSYSTEM.md``). Writing the same
pre-built text frame to each aiohttp websocket costs a few µs per socket. A method call's
ack takes the same short cut (``SocketServer._send_packet``): no queue, no writer wake-up.

How: engine.io's aiohttp websocket driver is swapped for a subclass that turns compression
off (small JSON frames gain nothing from deflate) and records, per engine.io session, the
aiohttp ``WebSocketResponse`` its handler runs on. A packet goes the direct way only to a
socket that is fully on websocket (not polling, not upgrading, not closing) and whose
engine.io queue is empty, so it cannot overtake a packet engine.io still holds; every other
socket gets the stock path. python-engineio has no public hook for this: the driver is set
on ``AsyncServer._async`` (pinned engine.io 4.x; tests use real python and JS clients).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import engineio
import orjson
import socketio
from aiohttp import web
from engineio.async_drivers.aiohttp import WebSocket as EngineIoWebSocket


def install(sio: socketio.AsyncServer) -> dict[str, web.WebSocketResponse]:
    """Swap ``sio``'s websocket driver; return the live map engine.io sid → websocket."""
    sockets: dict[str, web.WebSocketResponse] = {}

    class RecordedWebSocket(EngineIoWebSocket):
        async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
            request = environ["aiohttp.request"]
            self._sock = web.WebSocketResponse(
                max_msg_size=self.server.max_http_buffer_size, compress=False
            )
            await self._sock.prepare(request)
            self.environ = environ
            eio_socket = getattr(self.handler, "__self__", None)
            eio_sid = getattr(eio_socket, "sid", None)
            if isinstance(eio_sid, str):
                sockets[eio_sid] = self._sock
            try:
                await self.handler(self)
            finally:
                if isinstance(eio_sid, str) and sockets.get(eio_sid) is self._sock:
                    del sockets[eio_sid]
            return self._sock

    eio: engineio.AsyncServer = sio.eio
    eio._async = {**eio._async, "websocket": RecordedWebSocket}
    return sockets


class SocketServer(socketio.AsyncServer):
    """python-socketio's server, writing to websocket-only sockets directly."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.websockets = install(self)

    def direct(self, eio_sid: str) -> web.WebSocketResponse | None:
        """The websocket to write to now, if nothing engine.io holds could be overtaken."""
        ws = self.websockets.get(eio_sid)
        socket = self.eio.sockets.get(eio_sid)
        if (
            ws is None
            or ws.closed
            or socket is None
            or not socket.upgraded
            or socket.upgrading
            or socket.closed
            or socket.closing
            or not socket.queue.empty()
        ):
            return None
        return ws

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        ws = self.direct(eio_sid)
        if ws is not None:
            encoded = pkt.encode()
            if isinstance(encoded, str):  # (a list: binary attachments, the stock way)
                try:
                    await ws.send_str("4" + encoded)  # Engine.IO MESSAGE
                except (ConnectionError, RuntimeError):
                    pass  # closing under us: its disconnect is on the way
                return
        await super()._send_packet(eio_sid, pkt)


class Fanout:
    """Sends one event to many Socket.IO sids of one namespace, each frame built once."""

    def __init__(self, sio: SocketServer) -> None:
        self.sio = sio

    def _direct(self, sid: str, namespace: str) -> web.WebSocketResponse | None:
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, namespace)
        return None if eio_sid is None else self.sio.direct(eio_sid)

    async def emit(self, event: str, data: Any, sids: Iterable[str], namespace: str) -> None:
        """Like ``sio.emit(event, data, to=sids, namespace=namespace)``, encoded once."""
        # Engine.IO MESSAGE (4) + Socket.IO EVENT (2) + namespace + the [event, data] array,
        # as python-socketio writes it (no data: a one-element array).
        args = [event] if data is None else [event, data]
        ns = "" if namespace == "/" else namespace + ","
        frame = "42" + ns + orjson.dumps(args).decode()
        queued = []
        for sid in sids:
            ws = self._direct(sid, namespace)
            if ws is None:
                queued.append(sid)
                continue
            try:
                await ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                pass  # closing under us: its disconnect is on the way
        if queued:
            await self.sio.emit(event, data, to=queued, namespace=namespace)
