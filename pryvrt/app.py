"""create_app(settings): the aiohttp application, read as a table of contents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from pryvrt import methods  # noqa: F401  (registers every method)
from pryvrt import web as web_dashboard
from pryvrt.auth.cache import AccessCache
from pryvrt.auth.secret_key import load_secret_key
from pryvrt.auth.throttle import CredentialThrottle, LoginThrottle
from pryvrt.config import Settings
from pryvrt.methods.context import Services
from pryvrt.notify import Bus, LocalBus
from pryvrt.storage import Storage
from pryvrt.storage.database import (
    EmbeddedPostgres,
    apply_schema,
    create_pool,
    keep_running,
    start_embedded,
)
from pryvrt.transports import http
from pryvrt.transports.socketio import SocketTransport

log = logging.getLogger(__name__)

SETTINGS_KEY = web.AppKey("settings", Settings)
EMBEDDED_PG_KEY = web.AppKey("embedded_pg", EmbeddedPostgres)


def make_bus(settings: Settings) -> Bus:
    """Redis pub/sub when REDIS_URL is set (several workers), else in-process delivery."""
    if settings.redis_url:
        from pryvrt.notify.redis_bus import RedisBus

        return RedisBus(settings.redis_url)
    return LocalBus()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the database connection (and the embedded server when no DATABASE_URL)."""
    settings = app[SETTINGS_KEY]
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
            size=settings.db_pool_size,
            query_timeout=settings.db_timeout,
            bulk_rows=settings.max_batch_events,
        )
        await apply_schema(pool)
        services = app[http.SERVICES_KEY]
        services.storage.attach(pool)
        await services.bus.start()
        yield
        await services.bus.close()
        await pool.close()
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_size)
    app[SETTINGS_KEY] = settings
    bus = make_bus(settings)
    cache = AccessCache(settings.cache_seconds, bus.invalidations_live)
    bus.set_invalidation_handler(cache.invalidate)
    services = Services(
        settings=settings,
        storage=Storage(),  # attached to its pool in database_ctx
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
        secret_key=load_secret_key(settings),
    )
    app[http.SERVICES_KEY] = services
    app.cleanup_ctx.append(database_ctx)
    transport = http.setup(app, services)
    # Several workers share the port without sticky sessions: websocket only (no polling).
    SocketTransport(services, websocket_only=settings.workers > 1).attach(app)
    web_dashboard.setup(app, transport)
    http.add_user_routes(app, transport)
    return app
