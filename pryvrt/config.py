"""Settings: one frozen object built from the environment; malformed values fail loudly."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


REGISTRATION_MODES = ("open", "key", "closed")
# folders.get nests two JSON levels per folder level, plus clientData (at most 64 levels):
# deeper than this, answers would pass orjson's 255-level limit.
FOLDER_DEPTH_CEILING = 64
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _tristate(env: Mapping[str, str], name: str) -> bool | None:
    """``auto`` (or unset) → None; true/false in the usual spellings."""
    raw = (env.get(name) or "auto").strip().lower()
    if raw == "auto":
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be auto, true or false, got {raw!r}")


def _float(env: Mapping[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses or networks (``10.0.0.0/8``)."""
    values = tuple(v.strip() for v in (env.get(name) or "").split(",") if v.strip())
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not an IP address or network") from None
    return values


DEFAULT_CHANNELS = "diary:Diary"


def _channels(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """``id:Name`` pairs, comma-separated (unset: ``DEFAULT_CHANNELS``; empty: none)."""
    from pryvrt.methods.params import ID_PATTERN, RESERVED_IDS

    raw = env.get(name)
    raw = DEFAULT_CHANNELS if raw is None else raw
    out: list[tuple[str, str]] = []
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        channel_id, sep, label = (part.strip() for part in item.partition(":"))
        if not sep or not label:
            raise ConfigError(f"{name}: {item!r} is not id:Name")
        if not ID_PATTERN.fullmatch(channel_id) or channel_id in RESERVED_IDS:
            raise ConfigError(f"{name}: {channel_id!r} is not a valid channel id")
        if any(channel_id == c or label == n for c, n in out):
            raise ConfigError(f"{name}: {item!r} repeats an id or a name")
        out.append((channel_id, label))
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment (see the README's table)."""

    host: str = "127.0.0.1"
    port: int = 3000
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster (PRYVRT_REDIS_CLUSTER): notifications then
    # use sharded pub/sub (redis-py has no cluster URL scheme: the client class decides).
    redis_cluster: bool = False
    domain: str | None = None
    registration: str = "open"
    admin_key: str | None = None
    session_ttl: float = 14 * 24 * 3600.0
    max_body_size: int = 10 * 1024 * 1024
    max_attachment_size: int = 100 * 1024 * 1024
    max_batch_calls: int = 1000
    max_batch_events: int = 100_000
    max_events_limit: int = 10_000
    # Points one request may add (events.addSeriesPoints, series.batch all together).
    max_series_points: int = 1_000_000
    # Seconds a request body may take to arrive (JSON: whole body; uploads: between reads).
    body_timeout: float = 30.0
    # Sockets one credential may hold open on one worker.
    max_sockets_per_credential: int = 100
    # Sockets one user may hold open on one worker, all credentials together; shared and app
    # tokens together stop max_sockets_per_credential short of it (the owner's headroom).
    max_sockets_per_user: int = 1000
    # Seconds a connection may take to send a request's line and headers, from its opening
    # or from the previous answer (also the idle time of a kept-alive connection).
    header_timeout: float = 15.0
    # Open HTTP connections per client address (IPv6: per /64) on one worker; 0: no cap;
    # None: a quarter of the worker's file-descriptor limit (see transports.connections).
    max_connections_per_ip: int | None = None
    # Proxies whose X-Forwarded-For is believed (addresses or networks): the client address
    # of the throttles is then the forwarded one, and their connections are not capped.
    trusted_proxies: tuple[str, ...] = ()
    # Folders: nesting depth and count per channel (each call loads a channel's whole tree).
    max_folder_depth: int = 32
    max_folders_per_channel: int = 5_000
    # Failed logins per username, and per client address (guesses spread over accounts),
    # in a window of login_block_seconds; then 429 until the window ends.
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 50
    login_block_seconds: float = 300.0
    # Wrong credentials (401 INVALID_TOKEN) per client address in token_block_seconds.
    token_max_failures_per_ip: int = 100
    token_block_seconds: float = 60.0
    db_pool_size: int = 10
    # DATABASE_URL is a pooler in transaction mode (PgBouncer): no named prepared statements
    # nor startup parameters (see pryvrt.storage.pool and docs/scaling.md).
    db_transaction_pooler: bool = False
    db_timeout: float = 10.0
    password_hash_fast: bool = False
    # Seconds between two sweeps closing the sockets of expired sessions (a socket's calls
    # check their credential like any call, through the cache).
    socket_recheck_seconds: float = 5.0
    # Seconds a worker may serve a credential or channel from its cache (0: no cache); writes
    # invalidate it at once, on every worker (see pryvrt.auth.cache).
    cache_seconds: float = 5.0
    # Worker processes sharing the port (``pryvrt serve --workers``); > 1 needs Redis.
    workers: int = 1
    # Server secret (readToken signatures, dashboard cookie); unset: generated once into
    # the data directory (see pryvrt.auth.secret_key).
    secret_key: str | None = None
    # Uploads one user may send at once to one worker (more: 429 TOO_MANY_REQUESTS).
    max_uploads_per_user: int = 4
    # Where uploaded files wait, whole, before they are written to the database (None: the
    # system's temporary directory). The files have no name there and vanish when closed.
    upload_dir: Path | None = None
    # The dashboard's cookie gets ``Secure``: True/False, or None (auto: when the request
    # came over TLS or the page's Origin is https://). See pryvrt.auth.browser_session.
    cookie_secure: bool | None = None
    # Logging threshold (PRYVRT_LOG_LEVEL): one of LOG_LEVELS.
    log_level: str = "INFO"
    # Seconds between two deletions of expired sessions (each worker runs them).
    session_purge_seconds: float = 3600.0
    # App access requests (API.md §13): seconds a request lives (then polling it answers
    # 404 UNKNOWN_ACCESS_REQUEST), the polling period announced to apps (faster polls of one
    # request answer 429), and requests one client address may open per minute (per worker).
    access_request_ttl: float = 600.0
    access_poll_ms: int = 1000
    access_requests_per_minute: int = 30
    # Channels (id, name) every new user starts with (API.md §14). The environment's default
    # is a "diary" channel named "Diary" (PRYVRT_DEFAULT_CHANNELS); settings built in code
    # (tests, embedding) start with none unless they say so.
    default_channels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables, then apply explicit overrides."""
        env = os.environ if env is None else env
        registration = env.get("PRYVRT_REGISTRATION", "open") or "open"
        if registration not in REGISTRATION_MODES:
            raise ConfigError(f"PRYVRT_REGISTRATION must be one of {', '.join(REGISTRATION_MODES)}")
        log_level = (env.get("PRYVRT_LOG_LEVEL") or "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"PRYVRT_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        admin_key = env.get("PRYVRT_ADMIN_KEY") or None
        if registration == "key" and not admin_key:
            raise ConfigError("PRYVRT_REGISTRATION=key needs PRYVRT_ADMIN_KEY")
        settings = cls(
            host=env.get("PRYVRT_HOST", cls.host) or cls.host,
            port=_int(env, "PORT", _int(env, "PRYVRT_PORT", cls.port, 0), 0),
            data_dir=Path(env.get("PRYVRT_DATA_DIR", "var") or "var"),
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            redis_cluster=_tristate(env, "PRYVRT_REDIS_CLUSTER") or False,
            domain=(env.get("PRYVRT_DOMAIN") or "").lower().strip(".") or None,
            registration=registration,
            admin_key=admin_key,
            session_ttl=_float(env, "PRYVRT_SESSION_TTL", cls.session_ttl),
            max_body_size=_int(env, "PRYVRT_MAX_BODY_SIZE", cls.max_body_size, 1024),
            max_attachment_size=_int(env, "PRYVRT_MAX_ATTACHMENT_SIZE", cls.max_attachment_size, 1),
            max_batch_calls=_int(env, "PRYVRT_MAX_BATCH_CALLS", cls.max_batch_calls, 1),
            max_batch_events=_int(env, "PRYVRT_MAX_BATCH_EVENTS", cls.max_batch_events, 1),
            max_events_limit=_int(env, "PRYVRT_MAX_EVENTS_LIMIT", cls.max_events_limit, 1),
            max_series_points=_int(env, "PRYVRT_MAX_SERIES_POINTS", cls.max_series_points, 1),
            body_timeout=_float(env, "PRYVRT_BODY_TIMEOUT", cls.body_timeout),
            max_sockets_per_credential=_int(
                env, "PRYVRT_MAX_SOCKETS_PER_CREDENTIAL", cls.max_sockets_per_credential, 1
            ),
            max_sockets_per_user=_int(
                env, "PRYVRT_MAX_SOCKETS_PER_USER", cls.max_sockets_per_user, 1
            ),
            max_folder_depth=_int(env, "PRYVRT_MAX_FOLDER_DEPTH", cls.max_folder_depth, 1),
            max_folders_per_channel=_int(
                env, "PRYVRT_MAX_FOLDERS_PER_CHANNEL", cls.max_folders_per_channel, 1
            ),
            header_timeout=_float(env, "PRYVRT_HEADER_TIMEOUT", cls.header_timeout),
            max_connections_per_ip=(
                _int(env, "PRYVRT_MAX_CONNECTIONS_PER_IP", 0, 0)
                if env.get("PRYVRT_MAX_CONNECTIONS_PER_IP")
                else None
            ),
            trusted_proxies=_networks(env, "PRYVRT_TRUSTED_PROXIES"),
            login_max_failures=_int(env, "PRYVRT_LOGIN_MAX_FAILURES", cls.login_max_failures, 1),
            login_max_failures_per_ip=_int(
                env, "PRYVRT_LOGIN_MAX_FAILURES_PER_IP", cls.login_max_failures_per_ip, 1
            ),
            login_block_seconds=_float(env, "PRYVRT_LOGIN_BLOCK_SECONDS", cls.login_block_seconds),
            token_max_failures_per_ip=_int(
                env, "PRYVRT_TOKEN_MAX_FAILURES_PER_IP", cls.token_max_failures_per_ip, 1
            ),
            token_block_seconds=_float(env, "PRYVRT_TOKEN_BLOCK_SECONDS", cls.token_block_seconds),
            db_pool_size=_int(env, "PRYVRT_DB_POOL_SIZE", cls.db_pool_size, 1),
            db_transaction_pooler=_tristate(env, "PRYVRT_DB_TRANSACTION_POOLER") or False,
            db_timeout=_float(env, "PRYVRT_DB_TIMEOUT", cls.db_timeout),
            cache_seconds=_float(env, "PRYVRT_CACHE_SECONDS", cls.cache_seconds, allow_zero=True),
            workers=_int(env, "WEB_CONCURRENCY", cls.workers, 1),
            secret_key=env.get("PRYVRT_SECRET_KEY") or None,
            max_uploads_per_user=_int(
                env, "PRYVRT_MAX_UPLOADS_PER_USER", cls.max_uploads_per_user, 1
            ),
            upload_dir=Path(env["PRYVRT_UPLOAD_DIR"]) if env.get("PRYVRT_UPLOAD_DIR") else None,
            cookie_secure=_tristate(env, "PRYVRT_COOKIE_SECURE"),
            log_level=log_level,
            access_request_ttl=_float(env, "PRYVRT_ACCESS_REQUEST_TTL", cls.access_request_ttl),
            access_poll_ms=_int(env, "PRYVRT_ACCESS_POLL_MS", cls.access_poll_ms, 100),
            access_requests_per_minute=_int(
                env, "PRYVRT_ACCESS_REQUESTS_PER_MINUTE", cls.access_requests_per_minute, 1
            ),
            default_channels=_channels(env, "PRYVRT_DEFAULT_CHANNELS"),
        )
        settings = replace(settings, **overrides) if overrides else settings
        if not 1 <= settings.max_folder_depth <= FOLDER_DEPTH_CEILING:
            raise ConfigError(
                f"PRYVRT_MAX_FOLDER_DEPTH must be between 1 and {FOLDER_DEPTH_CEILING},"
                f" got {settings.max_folder_depth}"
            )
        if settings.workers < 1:
            raise ConfigError(f"the number of workers must be >= 1, got {settings.workers}")
        if settings.max_sockets_per_user < settings.max_sockets_per_credential:
            raise ConfigError(
                "PRYVRT_MAX_SOCKETS_PER_USER must be >= PRYVRT_MAX_SOCKETS_PER_CREDENTIAL"
                f" ({settings.max_sockets_per_user} < {settings.max_sockets_per_credential})"
            )
        if settings.workers > 1 and not settings.redis_url:
            raise ConfigError(
                f"{settings.workers} workers need REDIS_URL: without Redis, notifications"
                " would not reach sockets held by another worker"
            )
        if settings.redis_cluster and not settings.redis_url:
            raise ConfigError("PRYVRT_REDIS_CLUSTER needs REDIS_URL (any node of the cluster)")
        return settings
