"""Serving one worker with a graceful stop that lets in-flight requests finish, uploads too.

aiohttp's own stop (``web.run_app``) marks every connection closing before it waits for the
handlers, and a closing connection drops the bytes it receives: a request still sending its
body at SIGTERM (an attachment upload) then waits for data that never comes, until
``shutdown_timeout`` cuts it. Here SIGTERM (or SIGINT) first closes the listening socket and
the Socket.IO connections, then waits for the HTTP requests in progress (bodies still
flowing) up to the timeout; requests arriving meanwhile on kept-alive connections get 503
``SERVICE_UNAVAILABLE``, and every answer closes its connection. Only then does aiohttp's
cleanup run (closing idle connections, the pool, the embedded PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pryvrt import errors
from pryvrt.transports.connections import ConnectionGuard, json_protocol_errors
from pryvrt.transports.http import error_response, socket_io

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    """Counts the HTTP requests in progress (not Socket.IO's long-lived connections)."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()  # used only while draining: nothing per request before

    @web.middleware
    def middleware(self, request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        """Not a coroutine: a Socket.IO request gets the inner handler's coroutine back,
        with no frame of this middleware kept alive for a websocket's whole life."""
        if socket_io(request):
            return handler(request)
        return self._counted(request, handler)

    async def _counted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.draining:
            response: web.StreamResponse = error_response(
                errors.ServiceUnavailable("the server is shutting down; try again")
            )
            response.force_close()
            return response
        self.count += 1
        try:
            response = await handler(request)
            if self.draining and not response.prepared:
                response.force_close()  # the client reconnects elsewhere
            return response
        finally:
            self.count -= 1
            if self.draining and not self.count:
                self._idle.set()

    async def drained(self, within: float) -> bool:
        """Wait until no request is in progress; False if ``within`` seconds passed first."""
        self.draining = True
        if not self.count:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    reuse_port: bool,
    shutdown_timeout: float,
    before_drain: Callable[[], Awaitable[None]] | None = None,
    on_listening: Callable[[list[Any]], None] | None = None,
    guard: ConnectionGuard | None = None,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then stop as the module docstring says.
    ``on_listening`` is called with the bound addresses once the port accepts connections
    (the "listening" log line, a supervisor's readiness signal);
    ``guard`` bounds slow and greedy connections (``pryvrt.transports.connections``)."""
    in_flight = InFlight()
    app.middlewares.insert(0, in_flight.middleware)
    # aiohttp's own wait, after the drain, only concerns requests the drain gave up on.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=min(1.0, shutdown_timeout),
        **(guard.runner_args() if guard is not None else {}),
    )
    await runner.setup()
    if runner.server is not None:
        json_protocol_errors(runner.server)
        if guard is not None:
            guard.install(runner.server)
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
        await site.start()
        if on_listening is not None:
            on_listening(runner.addresses)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        started = time.monotonic()
        await site.stop()  # no new connections
        if before_drain is not None:
            await before_drain()
        if not await in_flight.drained(shutdown_timeout):
            log.warning("requests still in progress after the shutdown timeout: cutting them")
        log.info("stopping", extra={"drained_in_ms": round((time.monotonic() - started) * 1000, 1)})
    finally:
        await runner.cleanup()
