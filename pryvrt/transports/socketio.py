"""Socket.IO transport (API.md §10): per-user namespaces, method calls by ack, live notifications.

A client connects to the namespace ``/{username}`` with a credential (v4 ``auth: {token}``
or the seed-era ``?auth=``). Every event it emits is a method call: the event name is the
method id (or ``command`` with ``{id: "{channelId}.events.get", params}``), the first
argument the params, and the ack receives ``(error, result)`` — ``error`` is ``None`` or
the §3 error object, ``result`` the HTTP body. Calls go through ``registry.call`` like HTTP.

Notifications come from the bus: this worker keeps its sockets grouped per user
(``user id → {sid: Peer}``) and subscribes to a user's changes while it holds one of
their sockets. Who hears what is ``notify.routing``'s answer; one change is encoded once
and written to every socket that hears it (``fanout``, the only module that touches
python-socketio's and engine.io's internals).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import socketio
from aiohttp import web

from pryvrt import errors
from pryvrt.auth import browser_session
from pryvrt.auth.throttle import request_address
from pryvrt.methods import registry
from pryvrt.methods.context import CallContext, Services
from pryvrt.notify import Change, rechecks, routing
from pryvrt.transports import fanout

if TYPE_CHECKING:
    from pryvrt.auth.permissions import Access
    from pryvrt.storage.users import User

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Peer:
    """One connected socket: who it is and what its credential may see."""

    sid: str
    namespace: str
    user: User
    credential: str
    access: Access
    client_ip: str | None
    base_url: str
    eio_sid: str | None = None  # its engine.io session (fan-outs write to it directly)
    # Its credential's key in the cap counters (a keyed digest, never the credential).
    credential_key: bytes = b""
    counted: bool = False  # counted in the caps (until it leaves its user's group)
    shared: bool = False  # counted as a shared or app token's
    # Its credential was revoked: the disconnect is on its way; calls meanwhile are refused.
    revoked: bool = False

    @property
    def user_id(self) -> str:
        return self.user.id


def credential_from(auth: Any, environ: dict[str, Any]) -> str | None:
    """The v4 ``auth: {token}`` (a bare string is accepted too), else ``?auth=``."""
    if isinstance(auth, dict):
        token = auth.get("token") or auth.get("auth")
        if isinstance(token, str) and token:
            return token
    elif isinstance(auth, str) and auth:
        return auth
    values = parse_qs(environ.get("QUERY_STRING", "")).get("auth")
    return values[0] if values else None


def split_command_id(command_id: str) -> tuple[str, str | None]:
    """Seed form ``"{channelId}.events.get"`` → (``events.get``, channel id); ids without a
    channel prefix (``channels.get``) pass through. Channel ids may contain dots."""
    if command_id in registry.REGISTRY:
        return command_id, None
    for index, char in enumerate(command_id):
        if char == "." and index > 0 and command_id[index + 1 :] in registry.REGISTRY:
            return command_id[index + 1 :], command_id[:index]
    return command_id, None


def parse_call(event: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """(method id, raw params) of one emitted event; missing params mean ``{}``."""
    if event == fanout.UNDECODABLE:
        raise errors.InvalidRequestStructure(
            "the message must be a JSON array [method, params]: valid JSON, nested at most"
            " 1024 levels, without NaN or numbers out of range"
        )
    if event == "command":
        command = args[0] if args else None
        if not isinstance(command, dict) or not isinstance(command.get("id"), str):
            raise errors.InvalidParametersFormat(
                "command expects {id, params}", {"id": "expected a method id"}
            )
        method_id, channel_id = split_command_id(command["id"])
        params = command.get("params")
        if params is None:
            params = {}
        if channel_id is not None and isinstance(params, dict):
            params = {**params, "channelId": channel_id}
    else:
        method_id = event
        params = args[0] if args and args[0] is not None else {}
    if method_id == "batch" and isinstance(params, list):
        params = {"calls": params}  # the HTTP body of a batch is the bare array of calls
    method = registry.REGISTRY.get(method_id)
    if method is None or not method.socket:
        raise errors.UnknownMethod(f"unknown method {method_id!r} (or not callable over Socket.IO)")
    return method_id, params


def refusal(exc: errors.ApiError) -> socketio.exceptions.ConnectionRefusedError:
    """A connect error the client sees as ``err.message`` / ``err.data = {id, message}``."""
    return socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_dict())


class SocketTransport:
    """The Socket.IO server of one worker and the registry of its connected sockets."""

    def __init__(self, services: Services, *, websocket_only: bool = False) -> None:
        self.services = services
        self.sio = fanout.SocketServer(
            async_mode="aiohttp",
            namespaces="*",
            serializer=fanout.SocketIoPacket,
            # Credentials travel in the handshake (auth or ?auth=), so a foreign origin gains
            # nothing by connecting: allow any origin, like the HTTP API. (The dashboard's
            # cookie counts only from our own origin: see browser_session.socket_credential.)
            cors_allowed_origins="*",
            # Also caps one websocket message: a batch may be as large as an HTTP body.
            max_http_buffer_size=services.settings.max_body_size,
            # Long-polling needs sticky sessions when several workers share a port.
            transports=["websocket"] if websocket_only else ["polling", "websocket"],
            logger=False,
            engineio_logger=False,
        )
        self.sio.on("connect", self.on_connect, namespace="*")
        self.sio.on("disconnect", self.on_disconnect, namespace="*")
        self.sio.on("*", self.on_call, namespace="*")
        self.peers: dict[str, Peer] = {}
        self.by_user: dict[str, dict[str, Peer]] = {}
        # The caps' counts, kept as sockets come and go (counting them at each connect cost
        # O(sockets of the user): 10,000 sockets of one user took ~25 s of CPU to connect).
        self._per_credential: dict[bytes, int] = {}
        self._shared_per_user: dict[str, int] = {}
        self._key = secrets.token_bytes(32)
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        services.bus.set_listener(self.deliver)

    def attach(self, app: web.Application) -> None:
        """Serve ``/socket.io/`` (register it before the users' catch-all route)."""
        self.sio.attach(app, socketio_path="socket.io")

    async def sweep_sessions(self) -> None:
        """Every ``socket_recheck_seconds``: disconnect the sockets whose session expired
        (an expiry is no write: nothing else would announce it to a socket that listens)."""
        interval = max(self.services.settings.socket_recheck_seconds, 0.1)
        while True:
            await asyncio.sleep(interval)
            try:
                gone = await rechecks.expired_sessions(self.services, list(self.peers.values()))
            except Exception as exc:  # the database is down: try again next time
                log.warning("session sweep failed: %s", type(exc).__name__)
                continue
            for peer in gone:
                await self._disconnect(peer.sid)

    # -- connections ------------------------------------------------------------------------

    def _context(
        self, environ: dict[str, Any], username: str, credential: str | None
    ) -> CallContext:
        request = environ.get("aiohttp.request")
        return CallContext(
            services=self.services,
            transport="socket.io",
            request_id=secrets.token_hex(8),
            username=username,
            credential=credential,
            client_ip=request_address(request, self.services.settings.trusted_proxies),
            base_url=f"{request.scheme}://{request.host}" if request is not None else "",
        )

    async def on_connect(
        self, namespace: str, sid: str, environ: dict[str, Any], auth: Any = None
    ) -> bool | None:
        """Accept the socket when its credential belongs to the namespace's user."""
        if sid in self.peers:
            return None  # a client emitting an event named "connect": not a new connection
        if self.closing:
            raise refusal(errors.ServiceUnavailable("the server is shutting down"))
        username = namespace.lstrip("/")
        # No auth given: the dashboard's cookie, if the handshake comes from our own origin.
        credential = credential_from(auth, environ) or await browser_session.socket_credential(
            environ, username
        )
        ctx = self._context(environ, username, credential)
        try:
            access = await registry.identify(ctx)
        except errors.ApiError as exc:
            raise refusal(exc) from None
        if not self.sio.is_open(sid, namespace):
            return False  # the client left while we checked its credential
        assert ctx.user is not None and ctx.credential is not None
        # Checked after the last await, so concurrent connects cannot all slip under the cap.
        credential_key = self._credential_key(ctx.user.id, ctx.credential)
        refused = self._over_cap(ctx.user.id, credential_key, access)
        if refused is not None:
            log.warning(
                "socket refused: too many sockets",
                extra={"request_id": ctx.request_id, "username": ctx.user.username},
            )
            raise refusal(refused)
        peer = Peer(
            sid,
            namespace,
            ctx.user,
            ctx.credential,
            access,
            ctx.client_ip,
            ctx.base_url,
            self.sio.eio_sid(sid, namespace),
            credential_key,
        )
        self.peers[sid] = peer
        self.by_user.setdefault(peer.user.id, {})[sid] = peer
        self._count(peer, 1)
        log.info(
            "socket connected",
            extra={"request_id": ctx.request_id, "username": peer.user.username, "sid": sid},
        )
        await self.services.bus.subscribe(peer.user.id)
        return True

    def _credential_key(self, user_id: str, credential: str) -> bytes:
        """A keyed digest of (user, credential): the cap counters' key. Looking it up in a
        dict tells nothing about the credential (the key is this process's secret)."""
        message = f"{user_id}\x00{credential}".encode()
        return hmac.digest(self._key, message, "sha256")

    def _count(self, peer: Peer, step: int) -> None:
        """Count a peer in (1) or out (-1) of the caps, once each way."""
        if peer.counted == (step > 0):
            return
        peer.counted = step > 0
        if step > 0:
            peer.shared = not peer.access.is_full
        key, user_id = peer.credential_key, peer.user.id
        self._per_credential[key] = self._per_credential.get(key, 0) + step
        if not self._per_credential[key]:
            del self._per_credential[key]
        if peer.shared:
            self._shared_per_user[user_id] = self._shared_per_user.get(user_id, 0) + step
            if not self._shared_per_user[user_id]:
                del self._shared_per_user[user_id]

    def _over_cap(
        self, user_id: str, credential_key: bytes, access: Access
    ) -> errors.ApiError | None:
        """TOO_MANY_SOCKETS when one more socket would pass a cap on this worker: per
        credential, per user, or, for shared and app tokens, the user's cap less the
        headroom kept for the owner's sessions and personal tokens (one credential's worth):
        however many sockets a shared token opens, the owner can still connect."""
        settings = self.services.settings
        group = self.by_user.get(user_id, {})
        same = self._per_credential.get(credential_key, 0)
        shared = self._shared_per_user.get(user_id, 0)
        per_credential = settings.max_sockets_per_credential
        per_user = settings.max_sockets_per_user
        if same >= per_credential:
            return errors.TooManySockets(
                f"this credential already has {same} open sockets on this server"
                " (PRYVRT_MAX_SOCKETS_PER_CREDENTIAL)"
            )
        if len(group) >= per_user:
            return errors.TooManySockets(
                f"this user already has {len(group)} open sockets on this server"
                " (PRYVRT_MAX_SOCKETS_PER_USER)"
            )
        if not access.is_full and shared >= per_user - per_credential:
            return errors.TooManySockets(
                f"this user's shared tokens already hold {shared} open sockets on this server;"
                " the rest is kept for the owner's sessions and personal tokens"
                " (PRYVRT_MAX_SOCKETS_PER_USER less PRYVRT_MAX_SOCKETS_PER_CREDENTIAL)"
            )
        return None

    async def on_disconnect(self, namespace: str, sid: str, reason: Any = None) -> None:
        if self.sio.manager.is_connected(sid, namespace):
            return  # a client emitting an event named "disconnect": still connected
        peer = self.peers.pop(sid, None)
        if peer is None:
            return
        group = self.by_user.get(peer.user.id)
        if group is not None:
            group.pop(sid, None)
            if not group:
                del self.by_user[peer.user.id]
        self._count(peer, -1)
        log.info("socket disconnected", extra={"username": peer.user.username, "sid": sid})
        if not self.closing:
            await self.services.bus.unsubscribe(peer.user.id)

    # -- method calls -----------------------------------------------------------------------

    async def on_call(
        self, event: str, namespace: str, sid: str, *args: Any
    ) -> tuple[dict[str, Any] | None, Any]:
        """Any event: a method call answered as ack ``(error, result)``. Never raises."""
        try:
            peer = self.peers.get(sid)
            if peer is None or peer.revoked:
                raise errors.InvalidToken("this socket is not authenticated")
            method_id, params = parse_call(event, args)
            # Every call checks its credential like an HTTP call (through the worker's
            # cache: no database round trip while the entry is fresh).
            ctx = CallContext(
                services=self.services,
                transport="socket.io",
                request_id=secrets.token_hex(8),
                username=peer.user.username,
                credential=peer.credential,
                client_ip=peer.client_ip,
                base_url=peer.base_url,
                user=peer.user,
                known_credential=True,  # checked at connect: not throttled
            )
            try:
                return None, await registry.call(ctx, method_id, params)
            finally:
                if ctx.access is not None:
                    peer.access = ctx.access  # what it may see now (routing, the sweep)
        except errors.InvalidToken as exc:
            if sid in self.peers:
                self._spawn(self._disconnect(sid))  # after the ack is queued
            return exc.to_dict(), None
        except errors.ApiError as exc:
            return exc.to_dict(), None
        except Exception:
            log.exception("socket call failed", extra={"method": event})
            return errors.UnexpectedError("unexpected error").to_dict(), None

    # -- notifications ----------------------------------------------------------------------

    async def deliver(self, user_id: str, changes: Sequence[Change]) -> None:
        """The bus listener: send what ``notify.routing`` says, each frame encoded once."""
        group = self.by_user.get(user_id)
        if not group:
            return
        plan = routing.route(changes, list(group.values()))
        for peer in plan.revoked:
            # No more notifications, no more calls, and the disconnect in a task: when the
            # socket revoked its own credential (admin.logout over Socket.IO), the task runs
            # once this call's ack is queued, so the client still gets its answer.
            group.pop(peer.sid, None)
            self._count(peer, -1)
            peer.revoked = True
            self._spawn(self._disconnect(peer.sid))
        await self._send(plan.sends)
        if plan.resync:
            gone, sends = await rechecks.resync(self.services, user_id, list(group.values()))
            for peer in gone:
                await self._disconnect(peer.sid)
            await self._send(sends)

    async def _send(self, sends: Sequence[routing.Send[Peer]]) -> None:
        """One frame per message and namespace, written to every socket (see ``fanout``)."""
        for send in sends:
            by_namespace: dict[str, list[tuple[str, str | None]]] = {}
            for peer in send.to:
                by_namespace.setdefault(peer.namespace, []).append((peer.sid, peer.eio_sid))
            for namespace, to in by_namespace.items():
                await self.sio.emit_once(send.event, send.data, to, namespace)

    async def _disconnect(self, sid: str) -> None:
        peer = self.peers.get(sid)
        if peer is not None:
            await self.sio.disconnect(sid, namespace=peer.namespace, ignore_queue=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- shutdown ---------------------------------------------------------------------------

    async def shutdown(self, app: web.Application) -> None:
        """Close every socket before aiohttp waits for open connections (which could hang).

        Connections are dropped without a Socket.IO disconnect packet and without an
        Engine.IO CLOSE packet, so clients see a transport close and reconnect (to another
        worker, or to this server once restarted) on their own. (python-socketio's clients
        take an Engine.IO CLOSE for a deliberate disconnect and never reconnect; the
        JavaScript client reconnects either way.) Runs once (the graceful stop calls it
        before draining HTTP requests, aiohttp again on shutdown).
        """
        if self.closing:
            return
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        await self.sio.close_all()
        await self.sio.shutdown()
