"""Packets written straight to websockets: encode-once fan-out, and acks without a detour.
Every use of python-socketio's and engine.io's internals lives in this module.

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
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import engineio
import orjson
import socketio
from aiohttp import web
from engineio.async_drivers.aiohttp import WebSocket as EngineIoWebSocket

from pryvrt import errors
from pryvrt.transports import exact_json

log = logging.getLogger(__name__)

# The event name a packet gets when it is not a Socket.IO event we can read: invalid JSON
# (see OrjsonJson.loads), or JSON that is not an array starting with a name (see Server).
UNDECODABLE = "\x00undecodable"


class LenientJson:
    """The JSON hook of Socket.IO packets (never engine.io's): a module-like object over orjson.

    ``dumps`` accepts ``separators=`` and returns ``str``. ``loads`` turns invalid JSON (NaN,
    1e400, nested over 1024 deep...) into an event named UNDECODABLE: python-socketio would
    otherwise drop the packet and the caller would wait for an ack that never comes; the ack
    id is parsed before the JSON, so the call still gets its error answer. Engine.io must not
    get this hook: it tells its own text packets (``2probe`` during the polling → websocket
    upgrade) from JSON by the ``ValueError`` of its hook.
    """

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        try:
            return exact_json.loads(data)  # an integer beyond 64 bits is refused too
        except orjson.JSONDecodeError:
            return [UNDECODABLE]


class SocketIoPacket(socketio.packet.Packet):
    """Socket.IO packets with their own JSON hook.

    Passed as ``serializer=`` rather than ``json=``: python-socketio's ``json=`` also sets
    engine.io's process-wide packet hook (see LenientJson). Engine.io keeps the stdlib
    ``json``: it decodes only handshake-sized packets.
    """

    json = LenientJson

    def encode(self) -> Any:
        """Every ack gets out: a result orjson cannot encode (nested over 255 levels, an
        integer over 64 bits...) is answered with UNEXPECTED_ERROR, as HTTP answers 500,
        instead of leaving the caller waiting for an ack that never comes."""
        try:
            return super().encode()
        except orjson.JSONEncodeError as exc:
            if self.packet_type != socketio.packet.ACK:
                raise
            log.error("socket ack not encodable: %s", exc)
            self.data = [
                errors.UnexpectedError(
                    "unexpected error: the result could not be encoded"
                ).to_dict(),
                None,
            ]
            return super().encode()


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
    """python-socketio's server, writing to websocket-only sockets directly, with one guard
    on incoming events.

    An event's payload must be a JSON array whose first item is the event name; python-socketio
    indexes it without checking, so ``{}``, ``[]`` or ``[["x"]]`` raised inside the library:
    no ack (the caller waits forever) and a traceback in the log per message. Such payloads
    are handed on as the UNDECODABLE event, which is answered with an error ack.
    (``_handle_event`` is internal: python-socketio is pinned below 6, and
    tests/test_malformed_input.py sends these payloads raw.)
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.websockets = install(self)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> Any:
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            data = [UNDECODABLE]
        return await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        """A long-polling client that closes its session gets its pending GET answered at
        once (with a NOOP), as engine.io in node does. python-engineio leaves that GET
        waiting up to ping interval + timeout (45 s), and python-socketio's clients wait
        for it: ``disconnect()`` took that long. (``_handle_eio_disconnect`` is internal:
        see above.) Only the client's own close (sent with ``abort``, so nothing waits for
        the queue to drain) of a socket still on polling."""
        await super()._handle_eio_disconnect(eio_sid, reason)
        socket = self.eio.sockets.get(eio_sid)
        if (
            reason == self.reason.CLIENT_DISCONNECT
            and socket is not None
            and not socket.upgraded
            and not socket.upgrading
        ):
            socket.queue.put_nowait(engineio.packet.Packet(engineio.packet.NOOP))

    def is_open(self, sid: str, namespace: str) -> bool:
        """Whether the client of ``sid`` is still there (not gone, not closing)."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        socket = self.eio.sockets.get(eio_sid)
        return socket is not None and not socket.closed and not socket.closing

    async def close_all(self) -> None:
        """Drop every engine.io connection without an Engine.IO CLOSE nor a Socket.IO
        disconnect packet: clients see a transport close and reconnect (to another worker)
        on their own (python-socketio's clients never reconnected after a CLOSE)."""
        eio = self.eio
        for socket in list(eio.sockets.values()):
            try:
                await socket.close(wait=False, abort=True, reason=eio.reason.SERVER_DISCONNECT)
                # Wake the writer: a websocket's closes its connection, a pending long-poll
                # answers with no packet (the client's next poll finds no session).
                socket.queue.put_nowait(None)
            except Exception:  # pragma: no cover - best effort while stopping
                log.debug("engine.io close failed", exc_info=True)
        eio.sockets.clear()

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
