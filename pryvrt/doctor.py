"""``pryvrt doctor``: what this environment configures, and whether each part answers.

Every line is about one part (data directory, database, Redis, registration, the server):
what the settings say, then whether it is reachable. Nothing is created or changed: an
embedded database that does not exist yet is reported, not initialised.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pryvrt import __version__, running
from pryvrt.config import Settings
from pryvrt.storage.database import EmbeddedPostgres, holds_database, probe


@dataclass
class Check:
    part: str
    configured: str
    reached: str | None = None  # None: nothing to reach
    ok: bool = True


def masked(url: str) -> str:
    """A URL with its password replaced by ``***`` (safe to print)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def describe_database(settings: Settings) -> str:
    if settings.database_url:
        return f"PostgreSQL at {masked(settings.database_url)} (DATABASE_URL)"
    return f"embedded PostgreSQL in {(settings.data_dir / 'pg').resolve()}"


def describe_redis(settings: Settings) -> str:
    if settings.redis_url:
        return f"Redis at {masked(settings.redis_url)} (REDIS_URL)"
    return "in-process notifications (no REDIS_URL: one worker)"


def describe_registration(settings: Settings) -> str:
    return {
        "open": "open: anyone may POST /users",
        "key": "key: POST /users needs Authorization: $PRYVRT_ADMIN_KEY",
        "closed": "closed: users are created with `pryvrt user create`",
    }[settings.registration]


def server_url(settings: Settings) -> str:
    """The running server's address when it said so in the data directory, else the
    configured one."""
    found = running.read(settings.data_dir)
    return found.url if found else running.local_url(settings.host, settings.port)


async def check_database(settings: Settings) -> Check:
    check = Check("database", describe_database(settings))
    embedded = None
    try:
        if settings.database_url:
            dsn = settings.database_url
        else:
            if importlib.util.find_spec("pgserver") is None:
                check.reached = (
                    "the embedded PostgreSQL needs the pgserver package, not installed"
                    " (no wheel for this Python): set DATABASE_URL"
                )
                check.ok = False
                return check
            if not holds_database(settings.data_dir):
                check.reached = "no database yet (`pryvrt serve` creates it there)"
                return check
            embedded = EmbeddedPostgres(settings.data_dir / "pg")
            dsn = await asyncio.to_thread(embedded.start)
        found = await probe(dsn)
    except Exception as exc:  # any failure to reach it is the answer
        check.reached = f"unreachable: {type(exc).__name__}: {exc}"
        check.ok = False
        return check
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)  # stops it only if no server uses it
    if found.schema_version is None:
        check.reached = f"reached (PostgreSQL {found.server_version}); no pryvrt schema yet"
    else:
        check.reached = (
            f"reached (PostgreSQL {found.server_version}, schema v{found.schema_version},"
            f" {found.users} user{'' if found.users == 1 else 's'})"
        )
    return check


async def check_redis(settings: Settings) -> Check:
    check = Check("redis", describe_redis(settings))
    if not settings.redis_url:
        return check
    import redis.asyncio as redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        started = time.perf_counter()
        await client.ping()
        check.reached = f"reached (PING in {(time.perf_counter() - started) * 1000:.1f} ms)"
    except Exception as exc:
        check.reached = f"unreachable: {type(exc).__name__}: {exc}"
        check.ok = False
    finally:
        await client.aclose()
    return check


def check_server(settings: Settings) -> Check:
    url = server_url(settings)
    check = Check("server", f"{url}/ (data directory's server, else PRYVRT_HOST:PORT)")
    try:
        with urllib.request.urlopen(url + "/health", timeout=3) as reply:
            check.reached = f"running: GET {url}/health answered {reply.status}"
    except urllib.error.HTTPError as exc:
        check.reached = f"running but unhealthy: GET /health answered {exc.code}"
        check.ok = False
    except OSError:
        check.reached = "not running (start it with `pryvrt serve`)"
    return check


async def run_checks(settings: Settings) -> list[Check]:
    data_dir = settings.data_dir.resolve()
    checks = [
        Check(
            "data directory",
            str(data_dir),
            "exists" if data_dir.is_dir() else "does not exist yet",
            True,
        ),
    ]
    checks += await asyncio.gather(check_database(settings), check_redis(settings))
    checks.append(Check("registration", describe_registration(settings)))
    checks.append(await asyncio.to_thread(check_server, settings))
    return checks


def doctor(settings: Settings) -> int:
    """Print the report; exit status 1 when a configured part cannot be reached."""
    print(f"pryvrt {__version__} (Python {sys.version.split()[0]})")
    checks = asyncio.run(run_checks(settings))
    width = max(len(c.part) for c in checks)
    for check in checks:
        print(f"  {check.part:<{width}}  {check.configured}")
        if check.reached:
            mark = "ok" if check.ok else "!!"
            print(f"  {'':<{width}}  {mark} {check.reached}")
    failed = [c.part for c in checks if not c.ok]
    print("problems: " + ", ".join(failed) if failed else "everything configured answers")
    return 1 if failed else 0
