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
import math
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

import engineio
import engineio.async_socket
import engineio.exceptions
import engineio.packet
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
    return frame(text)


def frame(data: str | bytes) -> bytes:
    """A whole server-to-client websocket frame (RFC 6455: FIN, no mask): text for ``str``
    (opcode 1), binary for ``bytes`` (opcode 2)."""
    if isinstance(data, str):
        payload, first = data.encode(), 0x81
    else:
        payload, first = data, 0x82
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


class LeanSocket(engineio.async_socket.AsyncSocket):
    """engine.io's socket, without a task, a queue or a timer of its own while it idles on
    a websocket.

    Why: an idle stock socket holds four tasks (aiohttp's handler, engine.io's writer, the
    reader's ``wait_for`` task, the ``_send_ping`` sleeper) and an ``asyncio.Queue``: ~33 KiB
    per socket. Here a websocket socket holds only aiohttp's handler task, reading without
    a timeout (engine.io's service task already closes a socket whose pong is late, which
    ends the read); packets are written straight to the transport as whole frames; the next
    ping is a timer handle; the queue exists only while packets wait in it. A writer task
    exists only while a slow reader has a backlog (more than MAX_BUFFERED bytes unsent):
    packets then wait in the queue, in order, and the writer drains it with back-pressure,
    so a slow reader never stalls the sender (a fan-out loop). Long-polling (before an
    upgrade, or clients that stay on it) is engine.io's own code. Same protocol as
    python-engineio 4.x (pinned): probe/upgrade, ping interval/timeout.
    """

    last_ping: float | None  # (engine.io's attributes, typed here)
    connected: bool
    _queue: asyncio.Queue[Any] | None = None
    _websocket: Any = None  # engine.io's aiohttp driver while the socket writes directly
    _transport: asyncio.Transport | None = None
    _writer: asyncio.Task[None] | None = None

    @property
    def queue(self) -> asyncio.Queue[Any]:
        """engine.io's packet queue, built on first use (polling, upgrades, backlogs)."""
        if self._queue is None:
            self._queue = self.server.create_queue()
        return self._queue

    @queue.setter
    def queue(self, value: asyncio.Queue[Any] | None) -> None:
        self._queue = value

    def backlogged(self) -> bool:
        """Whether packets wait in the queue (a direct write would overtake them)."""
        return self._writer is not None or (self._queue is not None and not self._queue.empty())

    def _release_queue(self) -> None:
        if self._queue is not None and self._queue.empty() and self._writer is None:
            self._queue = None

    async def send(self, pkt: engineio.packet.Packet) -> None:
        if not await self.check_ping_timeout():
            return
        self._send_now(pkt)

    def _send_now(self, pkt: engineio.packet.Packet) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            # polling or upgrading: engine.io's way (closing: the read loop ends it soon)
            self.queue.put_nowait(pkt)
        elif self.backlogged() or transport.get_write_buffer_size() > MAX_BUFFERED:
            self.queue.put_nowait(pkt)  # after what waits, in order
            if self._writer is None:
                self._writer = _background(self._drain())
        else:
            transport.write(frame(pkt.encode()))

    async def _drain(self) -> None:
        """Write the backlog with back-pressure (aiohttp's drain), then go back to direct
        writes. ``None`` in the queue (python-engineio's stop signal) closes the websocket."""
        websocket = self._websocket
        try:
            while websocket is not None and self._queue is not None and not self._queue.empty():
                pkt = self._queue.get_nowait()
                self._queue.task_done()
                if pkt is None:
                    await websocket.close()
                    return
                await websocket.send(pkt.encode())
        except Exception:
            log.debug("websocket backlog write failed", exc_info=True)
            if websocket is not None:
                await websocket.close()
        finally:
            self._writer = None
            self._release_queue()

    def schedule_ping(self) -> None:
        # As engine.io: a new ping only once the previous one was answered.
        if self.last_ping:
            self.last_ping = None
            pings = getattr(self.server, "pings", None)
            if pings is None:  # (not our EngineIoServer: a timer of its own)
                loop = asyncio.get_running_loop()
                loop.call_later(self.server.ping_interval, self._ping_due)
            else:
                pings.add(self, self.server.ping_interval)

    def _ping_due(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self._send_now(engineio.packet.Packet(engineio.packet.PING))

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        await super().close(wait=wait, abort=abort, reason=reason)
        websocket = self._websocket
        if websocket is None:
            return  # polling, or the read loop is ending (it closes the websocket)
        if self._writer is not None and not abort:
            self.queue.put_nowait(None)  # the writer closes it after the backlog
            return
        # End the connection as engine.io's writer would once its queue said stop; in the
        # background: aiohttp's close waits for the peer's answer (up to 10 s for a dead
        # one), and the caller may be engine.io's service task, checking every socket.
        if self._writer is not None:
            self._writer.cancel()
        self._websocket = self._transport = None
        _background(websocket.close())

    def handle_get_request(self, environ: dict[str, Any]) -> Awaitable[Any]:
        """engine.io's, but a websocket gets its handler's coroutine back, not awaited here:
        no frame of this method (nor of ``_upgrade_websocket``) stays alive for the
        socket's whole life (engine.io awaits what this returns)."""
        connections = [s.strip() for s in environ.get("HTTP_CONNECTION", "").lower().split(",")]
        upgrade = environ.get("HTTP_UPGRADE", "").lower()
        if (
            "upgrade" in connections
            and upgrade == "websocket"
            and "websocket" in self.upgrade_protocols
        ):
            if self.upgraded:
                raise OSError("Socket has been upgraded already")
            ws = self.server._async["websocket"](self._websocket_handler, self.server)
            return ws(environ)
        return super().handle_get_request(environ)

    async def _websocket_handler(self, ws: Any) -> None:
        """Engine.IO over a websocket: the upgrade handshake, then a read loop.

        The loop reads aiohttp's websocket itself (not through engine.io's ``wait`` nor a
        nested helper): each coroutine awaiting here lives as long as the socket."""
        limit = self.server.max_http_buffer_size
        if self.connected:  # an upgrade from long-polling: probe, then UPGRADE
            self.upgrading = True  # packets queue meanwhile
            try:
                probe = engineio.packet.Packet(encoded_packet=await _read(ws, limit))
                if probe.packet_type != engineio.packet.PING or probe.data != "probe":
                    self.upgrading = False
                    return
                await ws.send(engineio.packet.Packet(engineio.packet.PONG, data="probe").encode())
                self.queue.put_nowait(engineio.packet.Packet(engineio.packet.NOOP))  # end poll
                upgrade = engineio.packet.Packet(encoded_packet=await _read(ws, limit))
            except Exception:
                self.upgrading = False
                return
            if upgrade.packet_type != engineio.packet.UPGRADE:
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True
        # What queued before (the OPEN packet, what the connect handler sent, what waited
        # during an upgrade) goes first; the poll's NOOP is not for the websocket.
        while self._queue is not None and not self._queue.empty():
            pkt = self._queue.get_nowait()
            self._queue.task_done()
            if pkt is not None and pkt.packet_type != engineio.packet.NOOP:
                await ws.send(pkt.encode())
        self._release_queue()
        self._websocket = ws
        self._transport = ws.environ["aiohttp.request"].transport
        response: web.WebSocketResponse = ws._sock
        try:
            while True:
                try:
                    message = await response.receive()
                except Exception:
                    break
                data = message.data
                if not isinstance(data, (str, bytes)):
                    break  # closed by the client (or an error: engine.io's ``wait`` raised)
                if len(data) > limit:
                    break  # packet too large
                try:
                    await self.receive(engineio.packet.Packet(encoded_packet=data))
                except engineio.exceptions.UnknownPacketError:
                    pass
                except engineio.exceptions.SocketIsClosedError:
                    break
                except Exception:
                    log.exception("engine.io receive error")
        finally:
            self._websocket = self._transport = None
            writer = self._writer
            if writer is not None:
                writer.cancel()
            await ws.close()
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)


async def _read(ws: Any, limit: int) -> Any:
    """One message of engine.io's websocket driver, refused when over ``limit``."""
    data = await ws.wait()
    if data and len(data) > limit:
        raise ValueError("packet is too large")
    return data


_BACKGROUND: set[asyncio.Task[Any]] = set()


def _background(coroutine: Any) -> asyncio.Task[Any]:
    """A task kept referenced until it ends (the loop holds tasks only weakly)."""
    task = asyncio.ensure_future(coroutine)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


class LeanSockets(dict[str, Any]):
    """engine.io's sid → socket map, turning each new socket into a LeanSocket.

    python-engineio builds ``AsyncSocket`` by name in ``_handle_connect`` and has no factory
    hook; a socket is stored here right after it is built, before any packet is handled.
    """

    def __setitem__(self, sid: str, socket: Any) -> None:
        if type(socket) is engineio.async_socket.AsyncSocket:
            socket.__class__ = LeanSocket
            # Its queue (built by engine.io's __init__) is let go once the socket is on a
            # websocket with nothing waiting, and rebuilt on use.
            socket._queue = socket.__dict__.pop("queue", None)
        super().__setitem__(sid, socket)


class EngineIoServer(engineio.AsyncServer):
    """python-engineio's server with LeanSocket sockets."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sockets = LeanSockets()
        self.pings = PingWheel()


# What is read from a websocket's WSGI-style environ once it is open: python-socketio hands
# it to every namespace connect (pryvrt's reads the query's ``auth`` and the aiohttp request:
# address, host, cookie), engine.io's websocket driver reads the request.
KEPT_ENVIRON = ("REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "aiohttp.request")


def trim_environ(environ: dict[str, Any]) -> None:
    """Drop, in place, what nothing reads after the handshake: the request's headers copied
    as ``HTTP_*`` keys and the WSGI constants (~1 KiB per socket, for its whole life; the
    headers stay readable on ``environ["aiohttp.request"]``). In place: engine.io's and
    python-socketio's frames and maps hold this very dict."""
    kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
    environ.clear()  # (frees the table; deleting keys one by one would keep its size)
    environ.update(kept)


class PingWheel:
    """The due pings of every socket of a server, one timer per tick rather than one per
    socket (a timer handle, its callback and context: ~0.4 KiB per idle socket).

    A socket is pinged at the first tick after its ping interval: up to ``TICK`` late,
    well inside the ping timeout the client allows. A socket closed meanwhile is skipped
    when its tick comes (and let go then)."""

    TICK = 0.25

    def __init__(self) -> None:
        self._due: dict[int, list[LeanSocket]] = {}

    def add(self, socket: LeanSocket, delay: float) -> None:
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + delay) / self.TICK)
        bucket = self._due.get(tick)
        if bucket is None:
            bucket = self._due[tick] = []
            loop.call_at(tick * self.TICK, self._fire, tick)
        bucket.append(socket)

    def _fire(self, tick: int) -> None:
        for socket in self._due.pop(tick, ()):
            try:
                socket._ping_due()
            except Exception:  # pragma: no cover - one socket must not stop the others
                log.exception("engine.io ping failed")

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._due.values())


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
            trim_environ(environ)
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

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return EngineIoServer

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
        holds could be overtaken and the reader keeps up.

        Per socket of a fan-out: a LeanSocket's ``_transport`` is set only while it reads
        its websocket (upgraded, not upgrading, its read loop running), so the checks left
        are the closes under way and the backlogs."""
        socket = self.eio.sockets.get(eio_sid)
        transport = getattr(socket, "_transport", None)
        if (
            transport is None
            or socket.closing
            or socket.closed
            or socket.backlogged()
            or socket._websocket._sock.closed
            or transport.is_closing()
            or transport.get_write_buffer_size() > MAX_BUFFERED
        ):
            return None
        return transport

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        transport = self.direct(eio_sid)
        if transport is not None:
            encoded = pkt.encode()
            if isinstance(encoded, str):  # (a list: binary attachments, the stock way)
                transport.write(text_frame("4" + encoded))  # Engine.IO MESSAGE
                return
        await super()._send_packet(eio_sid, pkt)

    def eio_sid(self, sid: str, namespace: str) -> str | None:
        """The engine.io session of a connected Socket.IO socket (fixed for its life)."""
        eio_sid: str | None = self.manager.eio_sid_from_sid(sid, namespace)
        return eio_sid

    async def emit_once(
        self, event: str, data: Any, to: Iterable[tuple[str, str | None]], namespace: str
    ) -> None:
        """Like ``emit(event, data, to=sids, namespace=namespace)``, the frame built once;
        ``to`` holds (Socket.IO sid, engine.io sid) pairs (see ``eio_sid``)."""
        # Engine.IO MESSAGE (4) + Socket.IO EVENT (2) + namespace + the [event, data] array,
        # as python-socketio writes it (no data: a one-element array).
        args = [event] if data is None else [event, data]
        ns = "" if namespace == "/" else namespace + ","
        frame = text_frame("42" + ns + orjson.dumps(args).decode())
        queued = []
        direct = self.direct
        for sid, eio_sid in to:
            transport = None if eio_sid is None else direct(eio_sid)
            if transport is None:
                queued.append(sid)
            else:
                transport.write(frame)
        if queued:
            await self.emit(event, data, to=queued, namespace=namespace)
