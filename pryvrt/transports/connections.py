"""Slow and greedy HTTP connections: a bound on the time to send request headers, and a cap
on the connections one client address holds open.

aiohttp has no header-read timeout: a client that sends part of a request line or of its
headers (or one byte every few seconds) held its connection for an hour (the default
keep-alive timeout, 3630 s), and 80 of them used up a low file-descriptor limit. aiohttp's
keep-alive timer is armed when a connection opens and after each answer, and closes the
connection if no complete request head has arrived when it fires: set to
``PRYVRT_HEADER_TIMEOUT``, it bounds both the time to send the headers and the idle time of a
kept-alive connection. Bodies have their own bound (``PRYVRT_BODY_TIMEOUT``); websockets
and requests being handled are not affected.

The cap (``PRYVRT_MAX_CONNECTIONS_PER_IP``) counts open connections per client address
(IPv6: per /64); a connection beyond it is answered 429 ``TOO_MANY_REQUESTS`` and closed at
once. Unset, it is a quarter of the worker's file-descriptor limit: one address can never
take the descriptors every other client, the database and /health need. Trusted proxies (``PRYVRT_TRUSTED_PROXIES``) carry many clients and are not capped:
a proxy in front should bound headers time and connections per client itself (nginx:
``client_header_timeout``, ``limit_conn``; HAProxy: ``timeout http-request``,
``src_conn_cur``).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from pryvrt import errors
from pryvrt.auth.throttle import address_key, is_trusted
from pryvrt.config import Settings

log = logging.getLogger(__name__)


def _refusal() -> bytes:
    body = orjson.dumps(
        {
            "id": "TOO_MANY_REQUESTS",
            "message": "too many open connections from this address"
            " (PRYVRT_MAX_CONNECTIONS_PER_IP)",
        }
    )
    head = (
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal()


def default_cap() -> int:
    """A quarter of this process's file-descriptor limit (at least 64)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 0
    return max(64, soft // 4)


PROTOCOL_ERROR_IDS = {
    500: errors.UnexpectedError.id,
    503: errors.ServiceUnavailable.id,
    504: errors.ServiceUnavailable.id,
}


class JsonErrorsRequestHandler(RequestHandler):
    """aiohttp's request handler, answering the errors it writes itself as API errors."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if answer started
        if status >= 500:  # no detail of a failure inside the server leaves it
            message = "the server could not answer this request"
        body = {
            "id": PROTOCOL_ERROR_IDS.get(status, errors.InvalidRequestStructure.id),
            "message": message or HTTPStatus(status).phrase,
        }
        answer = web.Response(
            status=status, body=orjson.dumps(body), content_type="application/json"
        )
        answer.force_close()
        return answer


def json_protocol_errors(server: web.Server) -> None:
    """Answer the errors aiohttp writes itself as API errors (``{id, message}``, JSON).

    A broken request line, a header over 8 KB or a bad chunk never reach the application:
    aiohttp's ``RequestHandler.handle_error`` answers them in text/plain, and aiohttp has no
    setting for the handler's class. Each new connection's handler becomes a
    ``JsonErrorsRequestHandler`` (same slots, only ``handle_error`` differs)."""
    made = server.connection_made

    def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
        handler.__class__ = JsonErrorsRequestHandler
        made(handler, transport)

    server.connection_made = connection_made  # type: ignore[method-assign]


class ConnectionGuard:
    """Header timeout and per-address cap for one worker's HTTP server."""

    def __init__(self, settings: Settings) -> None:
        self.header_timeout = settings.header_timeout
        self.per_address = (
            default_cap()
            if settings.max_connections_per_ip is None
            else settings.max_connections_per_ip
        )
        self.trusted = settings.trusted_proxies
        self.open: dict[str, int] = {}  # address key -> open connections
        self._counted: dict[object, str] = {}  # request handler -> its address key
        self.refused = 0

    def runner_args(self) -> dict[str, Any]:
        """Keyword arguments of ``web.AppRunner`` (passed on to each request handler)."""
        return {"keepalive_timeout": self.header_timeout}

    def install(self, server: web.Server) -> None:
        """Count the connections of ``runner.server`` (after ``runner.setup()``): wraps its
        ``connection_made``/``connection_lost``, which every request handler calls."""
        if not self.per_address:
            return
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._admit(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            key = self._counted.pop(handler, None)
            if key is not None:
                left = self.open[key] - 1
                if left:
                    self.open[key] = left
                else:
                    del self.open[key]
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _admit(self, handler: object, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else None
        if ip is None or is_trusted(ip, self.trusted):
            return
        key = address_key(ip)
        held = self.open.get(key, 0)
        if held >= self.per_address:
            self.refused += 1
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warning(
                    "connection refused: too many from one address",
                    extra={"address": key, "open": held, "refused_so_far": self.refused},
                )
            transport.write(REFUSAL)
            transport.close()  # after the write is flushed
            return
        self.open[key] = held + 1
        self._counted[handler] = key
