"""Packets written straight to websockets: encode-once fan-out, and acks without a detour.

Why: stock ``sio.emit`` to N sockets costs ~42 µs per socket here (a task per socket, a
queue and a writer-task wake-up per message in engine.io, per-frame deflate), so 500
sockets wait ~21 ms for the last one (``../shared/ECOSYSTEM.md``). Writing the same
pre-built text frame to each aiohttp websocket costs a few µs per socket. A method call's
ack takes the same short cut (``SocketServer._send_packet``): no queue, no writer wake-up.

How: engine.io's aiohttp websocket driver is swapped for a subclass that turns compression
off (small JSON frames gain nothing from deflate) and records, per engine.io session, the
aiohttp ``WebSocketResponse`` its handler runs on and its transport; a frame is built once
(RFC 6455 header + payload) and handed to each transport's ``write``. A packet goes the direct way only to a
socket that is fully on websocket (not polling, not upgrading, not closing) and whose
engine.io queue is empty, so it cannot overtake a packet engine.io still holds; every other
socket gets the stock path. python-engineio has no public hook for this: the driver is set
on ``AsyncServer._async`` (pinned engine.io 4.x; tests use real python and JS clients).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import engineio
import orjson
import socketio
from aiohttp import web
from engineio.async_drivers.aiohttp import WebSocket as EngineIoWebSocket

# Writes beyond this many bytes waiting in a socket's buffer (a slow reader) go the stock
# way, through engine.io's queue, instead of growing the buffer.
MAX_BUFFERED = 256 * 1024


@dataclass(frozen=True, slots=True)
class Websocket:
    sid: str  # engine.io's
    response: web.WebSocketResponse
    transport: asyncio.Transport


def text_frame(text: str) -> bytes:
    """A whole server-to-client websocket text frame (RFC 6455: FIN, opcode 1, no mask)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def install(sio: socketio.AsyncServer) -> dict[str, Websocket]:
    """Swap ``sio``'s websocket driver; return the live map engine.io sid → websocket."""
    sockets: dict[str, Websocket] = {}

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
            transport = request.transport
            recorded = None
            # (uvloop's transports are not asyncio.Transport subclasses: no isinstance here)
            if isinstance(eio_sid, str) and transport is not None:
                recorded = sockets[eio_sid] = Websocket(eio_sid, self._sock, transport)
            try:
                await self.handler(self)
            finally:
                if recorded is not None and sockets.get(recorded.sid) is recorded:
                    del sockets[recorded.sid]
            return self._sock

    eio: engineio.AsyncServer = sio.eio
    eio._async = {**eio._async, "websocket": RecordedWebSocket}
    return sockets


class SocketServer(socketio.AsyncServer):
    """python-socketio's server, writing to websocket-only sockets directly."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.websockets = install(self)

    def direct(self, eio_sid: str) -> asyncio.Transport | None:
        """The transport to write a whole frame to now, if nothing engine.io or aiohttp
        holds could be overtaken and the reader keeps up."""
        ws = self.websockets.get(eio_sid)
        socket = self.eio.sockets.get(eio_sid)
        if (
            ws is None
            or ws.response.closed
            or ws.transport.is_closing()
            or ws.transport.get_write_buffer_size() > MAX_BUFFERED
            or socket is None
            or not socket.upgraded
            or socket.upgrading
            or socket.closed
            or socket.closing
            or not socket.queue.empty()
        ):
            return None
        return ws.transport

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        transport = self.direct(eio_sid)
        if transport is not None:
            encoded = pkt.encode()
            if isinstance(encoded, str):  # (a list: binary attachments, the stock way)
                transport.write(text_frame("4" + encoded))  # Engine.IO MESSAGE
                return
        await super()._send_packet(eio_sid, pkt)

    async def emit_once(self, event: str, data: Any, sids: Iterable[str], namespace: str) -> None:
        """Like ``emit(event, data, to=sids, namespace=namespace)``, the frame built once."""
        # Engine.IO MESSAGE (4) + Socket.IO EVENT (2) + namespace + the [event, data] array,
        # as python-socketio writes it (no data: a one-element array).
        args = [event] if data is None else [event, data]
        ns = "" if namespace == "/" else namespace + ","
        frame = text_frame("42" + ns + orjson.dumps(args).decode())
        queued = []
        for sid in sids:
            eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
            transport = None if eio_sid is None else self.direct(eio_sid)
            if transport is None:
                queued.append(sid)
            else:
                transport.write(frame)
        if queued:
            await self.emit(event, data, to=queued, namespace=namespace)
