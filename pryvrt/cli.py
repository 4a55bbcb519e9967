"""Command line: ``pryvrt serve``, ``pryvrt user create``, ``pryvrt doctor`` (thin: the work
is elsewhere). Errors are printed as sentences on stderr, never as Python reprs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from pryvrt import running
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
    level = settings.log_level
    if getattr(args, "func", None) is not serve and "PRYVRT_LOG_LEVEL" not in os.environ:
        level = "WARNING"  # a one-shot command prints its own sentences, not the server's log
    setup_logging(level)
    return settings


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.workers > 1 and not args.worker:
        from pryvrt.workers import supervise

        url = running.local_url(settings.host, settings.port)

        def ready() -> None:
            running.announce(settings.data_dir, url)
            print_banner(settings, url)

        try:
            return supervise(settings, args.shutdown_timeout, on_ready=ready)
        finally:
            running.withdraw(settings.data_dir)
    return serve_worker(settings, args.shutdown_timeout, child=args.worker, ready_fd=args.ready_fd)


def print_banner(settings: Settings, url: str) -> None:
    """What a person starting the server needs: where to go, where the data is."""
    from pryvrt import __version__
    from pryvrt.doctor import describe_database, describe_redis, describe_registration

    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    lines = [
        f"pryvrt {__version__} is serving {url}/{workers}",
        f"  open        {url}/ in a browser (the dashboard; API: {url}/{{username}}/...)",
        f"  data        {settings.data_dir.resolve()}",
        f"  database    {describe_database(settings)}",
        f"  live        {describe_redis(settings)}",
        f"  register    {describe_registration(settings)}",
        "Ctrl+C stops it.",
    ]
    print("\n".join(lines), flush=True)


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
        # A thread running Python (a series body decoded, chunks encoded) hands the GIL to
        # the event loop within this interval when the loop wakes up (default 5 ms, paid at
        # each wake-up: another user's events.get took ~9x its idle time during a series
        # ingest; with 0.5 ms, the same as idle).
        sys.setswitchinterval(0.0005)

    app.on_startup.append(freeze_gc)
    sockets = app[SOCKETIO_KEY]

    def listening(addresses: list[Any]) -> None:
        # Only now does the port accept connections (the database is up, the schema applied).
        port = running.bound_port(addresses, settings.port)
        url = running.local_url(settings.host, port)
        log.info("listening", extra={"host": settings.host, "port": port, "url": url})
        if ready_fd is not None:
            _signal_ready(ready_fd)
        if not child:
            running.announce(settings.data_dir, url)
            print_banner(settings, url)

    try:
        asyncio.run(
            serve(
                app,
                host=settings.host,
                port=settings.port,
                reuse_port=child,
                shutdown_timeout=shutdown_timeout,
                before_drain=lambda: sockets.shutdown(app),
                on_listening=listening,
                guard=ConnectionGuard(settings),
            )
        )
    finally:
        if not child:
            running.withdraw(settings.data_dir)
    return 0


def _signal_ready(fd: int) -> None:
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)


async def _create_user(
    settings: Settings, username: str, password: str, email: str | None, base_url: str
) -> dict[str, Any]:
    from pryvrt.app import make_services, open_storage
    from pryvrt.methods import registry
    from pryvrt.methods.account import RegisterParams, create_user
    from pryvrt.methods.context import CallContext
    from pryvrt.notify import LocalBus

    services = make_services(settings, LocalBus(), secret_key=b"")  # signs nothing here
    async with open_storage(settings, pool_size=2) as storage:
        services.open(storage)
        ctx = CallContext(
            services, transport="cli", request_id=secrets.token_hex(8), base_url=base_url
        )
        raw = {"username": username, "password": password}
        if email:
            raw["email"] = email
        return await create_user(ctx, registry.validate(RegisterParams, raw))


def error_text(exc: Any) -> str:
    """An API error as a person reads it: the message, each problem on its own line, the id
    (for searching the docs) last."""
    lines = [f"error: {exc.message} [{exc.id}]"]
    data = exc.data
    if isinstance(data, dict):
        lines += [f"  {key}: {value}" for key, value in data.items()]
    elif data is not None:
        lines.append(f"  {data}")
    return "\n".join(lines)


def user_create(args: argparse.Namespace) -> int:
    """Create a user in the database the server of this data directory uses (or
    DATABASE_URL's); refuse, naming the directory, when it holds none."""
    from pryvrt.errors import ApiError
    from pryvrt.storage.database import holds_database

    settings = _settings(args)
    data_dir = settings.data_dir.resolve()
    if settings.database_url is None and not holds_database(settings.data_dir):
        print(
            f"error: no pryvrt database in {data_dir}\n"
            "  The server keeps its embedded PostgreSQL in <data dir>/pg, and none is there."
            " Run this from the directory where you ran `pryvrt serve`, or pass the server's"
            " --data-dir (or PRYVRT_DATA_DIR), or set DATABASE_URL to the server's database."
            " `pryvrt serve` creates the database on its first start.",
            file=sys.stderr,
        )
        return 2
    found = running.read(settings.data_dir)
    base_url = args.url or (found.url if found else running.local_url(settings.host, settings.port))
    where = "DATABASE_URL's database" if settings.database_url else f"the database in {data_dir}/pg"
    try:
        result = asyncio.run(
            _create_user(settings, args.username, args.password, args.email, base_url.rstrip("/"))
        )
    except ApiError as exc:
        print(error_text(exc), file=sys.stderr)
        return 1
    except OSError as exc:  # TimeoutError included
        print(f"error: cannot reach {where}: {exc}", file=sys.stderr)
        return 1
    print(f"created user {result['username']} in {where}")
    print(f"  API endpoint  {result['apiEndpoint']}")
    note = "" if found or args.url else " (once `pryvrt serve` runs with these settings)"
    print(f"  log in at     {result['apiEndpoint']}{note}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from pryvrt.doctor import doctor as report

    return report(_settings(args))


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
    p_create.add_argument(
        "--data-dir", help="the server's data directory (default ./var, env PRYVRT_DATA_DIR)"
    )
    p_create.add_argument(
        "--url",
        help="the server's public address, for the printed endpoint (default: the running"
        " server of the data directory, else PRYVRT_HOST and PORT)",
    )
    p_create.set_defaults(func=user_create)

    p_doctor = sub.add_parser(
        "doctor", help="say what is configured (database, Redis, registration) and reachable"
    )
    p_doctor.add_argument("--data-dir", help="data directory (default ./var)")
    p_doctor.set_defaults(func=doctor)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
