"""Command line: ``pryvrt serve`` and ``pryvrt user create`` (thin: the work is elsewhere)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from pryvrt.config import ConfigError, Settings
from pryvrt.logs import setup_logging

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment and the command's flags; logging set up at their level."""
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = Path(value) if name == "data_dir" else value
    settings = Settings.from_env(**overrides)
    setup_logging(settings.log_level)
    return settings


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.workers > 1 and not args.worker:
        from pryvrt.workers import supervise

        return supervise(settings, args.shutdown_timeout)
    return serve_worker(settings, args.shutdown_timeout, child=args.worker, ready_fd=args.ready_fd)


def serve_worker(
    settings: Settings, shutdown_timeout: float, *, child: bool, ready_fd: int | None = None
) -> int:
    """One process serving HTTP and Socket.IO (alone, or as one of ``--workers``).

    ``ready_fd``: a pipe from the supervisor; one byte is written to it once the port is
    bound (see ``pryvrt.workers``)."""
    import gc

    from aiohttp import web

    from pryvrt.app import SOCKETIO_KEY, create_app
    from pryvrt.shutdown import serve
    from pryvrt.transports.connections import ConnectionGuard

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        pass
    app = create_app(settings)
    if child:
        from pryvrt.workers import exit_with_parent

        app.cleanup_ctx.append(exit_with_parent)

    async def freeze_gc(app: web.Application) -> None:
        # Start-up objects never die: keep full GC passes (tens of ms) off the hot path.
        gc.freeze()
        # Young-generation passes every 700 allocations cost a large batch (10 000 events:
        # ~600 000 objects) about a tenth of its time; every 50 000 is a few MB of garbage
        # at most between passes.
        gc.set_threshold(50_000, 20, 10)

    app.on_startup.append(freeze_gc)
    log.info("listening", extra={"host": settings.host, "port": settings.port})
    sockets = app[SOCKETIO_KEY]
    asyncio.run(
        serve(
            app,
            host=settings.host,
            port=settings.port,
            reuse_port=child,
            shutdown_timeout=shutdown_timeout,
            before_drain=lambda: sockets.shutdown(app),
            on_listening=None if ready_fd is None else lambda: _signal_ready(ready_fd),
            guard=ConnectionGuard(settings),
        )
    )
    return 0


def _signal_ready(fd: int) -> None:
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)


async def _create_user(settings: Settings, username: str, password: str, email: str | None) -> None:
    from pryvrt.app import make_services, open_storage
    from pryvrt.methods import registry
    from pryvrt.methods.account import RegisterParams, create_user
    from pryvrt.methods.context import CallContext
    from pryvrt.notify import LocalBus

    services = make_services(settings, LocalBus(), secret_key=b"")  # signs nothing here
    async with open_storage(settings, pool_size=2) as storage:
        services.open(storage)
        ctx = CallContext(
            services,
            transport="cli",
            request_id=secrets.token_hex(8),
            base_url=f"http://{settings.host}:{settings.port}",
        )
        raw = {"username": username, "password": password}
        if email:
            raw["email"] = email
        result = await create_user(ctx, registry.validate(RegisterParams, raw))
        print(f"created user {result['username']}: {result['apiEndpoint']}")


def user_create(args: argparse.Namespace) -> int:
    from pryvrt.errors import ApiError

    settings = _settings(args)
    try:
        asyncio.run(_create_user(settings, args.username, args.password, args.email))
    except ApiError as exc:
        print(f"error: {exc.id}: {exc.message} {exc.data or ''}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pryvrt", description="pryvrt event server")
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the HTTP + Socket.IO server")
    p_serve.add_argument("--host", help="address to bind (default 127.0.0.1, env PRYVRT_HOST)")
    p_serve.add_argument("--port", type=int, help="port (default 3000, env PORT)")
    p_serve.add_argument("--data-dir", help="embedded PostgreSQL data (default ./var)")
    p_serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds to let in-flight requests finish on SIGTERM",
    )
    p_serve.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the port (default 1, env WEB_CONCURRENCY); >1 needs REDIS_URL",
    )
    p_serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p_serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    p_serve.set_defaults(func=serve)

    p_user = sub.add_parser("user", help="manage users")
    user_sub = p_user.add_subparsers(dest="user_command", required=True)
    p_create = user_sub.add_parser("create", help="create a user (even with registration closed)")
    p_create.add_argument("username")
    p_create.add_argument("--password", required=True)
    p_create.add_argument("--email")
    p_create.add_argument("--data-dir", help="embedded PostgreSQL data (default ./var)")
    p_create.set_defaults(func=user_create)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
