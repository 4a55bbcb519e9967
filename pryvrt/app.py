"""create_app(settings): the aiohttp application, read as a table of contents.

This module owns the wiring: the long-lived parts of one worker (``make_services``), the
application keys, and the lifecycle. Every part that must start and stop is one
``cleanup_ctx`` (started in order, stopped in reverse):

1. ``storage_ctx``: the PostgreSQL pool (and the embedded server when no DATABASE_URL),
   the schema applied, ``Services.storage`` opened (``open_storage``, shared with the CLI);
2. ``bus_ctx``: the notification bus (Redis or in-process);
3. ``sweep_ctx``: the periodic sweeps (expired sessions deleted, expired sockets closed).

Sockets close in ``on_shutdown``, the one step that must run before aiohttp waits for the
open connections (a websocket would hold that wait until its timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from pryvrt import methods  # noqa: F401  (registers every method)
from pryvrt import web as web_dashboard
from pryvrt.auth.cache import AccessCache
from pryvrt.auth.secret_key import load_secret_key
from pryvrt.auth.throttle import CredentialThrottle, LoginThrottle, RequestRate
from pryvrt.config import Settings
from pryvrt.methods.context import Services
from pryvrt.notify import Bus, LocalBus
from pryvrt.storage import Storage
from pryvrt.storage.database import apply_schema, create_pool, keep_running, start_embedded
from pryvrt.transports import http, openapi
from pryvrt.transports.socketio import SocketTransport
from pryvrt.web import consent_page

log = logging.getLogger(__name__)

SETTINGS_KEY = web.AppKey("settings", Settings)
SERVICES_KEY = web.AppKey("services", Services)
SOCKETIO_KEY = web.AppKey("socketio", SocketTransport)


def make_bus(settings: Settings) -> Bus:
    """Redis pub/sub when REDIS_URL is set (several workers), else in-process delivery."""
    if settings.redis_url and settings.redis_cluster:
        from pryvrt.notify.cluster_bus import ClusterBus

        return ClusterBus(settings.redis_url)
    if settings.redis_url:
        from pryvrt.notify.redis_bus import RedisBus

        return RedisBus(settings.redis_url)
    return LocalBus()


def make_services(
    settings: Settings, bus: Bus | None = None, *, secret_key: bytes | None = None
) -> Services:
    """The long-lived parts of one worker; ``storage`` opens with ``open_storage``. The
    server secret is loaded (or generated) unless given."""
    bus = bus if bus is not None else make_bus(settings)
    cache = AccessCache(settings.cache_seconds, bus.invalidations_live)
    bus.set_invalidation_handler(cache.invalidate)
    return Services(
        settings=settings,
        bus=bus,
        throttle=LoginThrottle(
            settings.login_max_failures,
            settings.login_max_failures_per_ip,
            settings.login_block_seconds,
        ),
        credential_throttle=CredentialThrottle(
            settings.token_max_failures_per_ip, settings.token_block_seconds
        ),
        cache=cache,
        access_rate=RequestRate(settings.access_requests_per_minute),
        secret_key=load_secret_key(settings) if secret_key is None else secret_key,
    )


@asynccontextmanager
async def open_storage(
    settings: Settings, *, pool_size: int | None = None
) -> AsyncIterator[Storage]:
    """The database, ready: the embedded server started when there is no DATABASE_URL, a
    pool opened, the schema applied; all of it stopped on exit."""
    embedded = None
    watchdog = None
    dsn = settings.database_url
    if dsn is None:
        embedded = await start_embedded(settings.data_dir / "pg")
        dsn = embedded.uri
        log.info("embedded PostgreSQL started", extra={"data_dir": str(embedded.data_dir)})
        # Restarted if its postmaster dies; the pool reconnects by itself.
        watchdog = asyncio.create_task(keep_running(embedded), name="embedded-pg-watchdog")
    try:
        pool = await create_pool(
            dsn,
            size=pool_size or settings.db_pool_size,
            query_timeout=settings.db_timeout,
            bulk_rows=settings.max_batch_events,
            transaction_pooler=settings.db_transaction_pooler,
        )
        try:
            await apply_schema(pool)
            yield Storage(pool)
        finally:
            await pool.close()
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES_KEY]
    async with open_storage(app[SETTINGS_KEY]) as storage:
        services.open(storage)
        yield


async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
    bus = app[SERVICES_KEY].bus
    await bus.start()
    yield
    await app[SERVICES_KEY].coalescer.close()
    await bus.close()


async def sweep_ctx(app: web.Application) -> AsyncIterator[None]:
    """Periodic work: expired sessions and app access requests are deleted (an expiry is no
    write, so nothing else would), and the sockets of expired sessions are closed."""
    services = app[SERVICES_KEY]

    async def purge_sessions() -> None:
        interval = services.settings.session_purge_seconds
        while True:
            try:
                purged = await services.storage.sessions.purge_expired(time.time())
                if purged:
                    log.info("expired sessions deleted", extra={"count": purged})
                purged = await services.storage.access_requests.purge_expired(time.time())
                if purged:
                    log.info("expired access requests deleted", extra={"count": purged})
            except Exception as exc:  # the database is down: try again next time
                log.warning("session purge failed: %s", type(exc).__name__)
            await asyncio.sleep(interval)

    tasks = [
        asyncio.create_task(purge_sessions(), name="purge-sessions"),
        asyncio.create_task(app[SOCKETIO_KEY].sweep_sessions(), name="sweep-sockets"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_size)
    services = make_services(settings)
    app[SETTINGS_KEY] = settings
    app[SERVICES_KEY] = services
    # Several workers share the port without sticky sessions: websocket only (no polling).
    sockets = SocketTransport(services, websocket_only=settings.workers > 1)
    app[SOCKETIO_KEY] = sockets

    app.cleanup_ctx.extend((storage_ctx, bus_ctx, sweep_ctx))
    app.on_shutdown.append(sockets.shutdown)

    transport = http.setup(app, services)
    app.router.add_get("/openapi.json", openapi.handle_openapi)
    sockets.attach(app)  # /socket.io/, before the users' catch-all route
    web_dashboard.setup(app, transport)
    consent_page.setup(app, transport)  # app access requests (its views use the cookie)
    http.add_user_routes(app, transport)
    return app
