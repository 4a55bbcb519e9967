"""The method registry and ``call()``: the single choke point every transport goes through.

A method is declared once with ``@method(id, Params, auth=..., need=...)`` next to its
handler. ``call()`` resolves the user and the credential (``auth.identity``), checks the
credential kind, validates the parameters, opens what a channel method declared it needs
(``scope.open_scope``: transaction, channel lock, folder tree, addressed item, the level
checked once on the declared target), runs the handler, turns every failure into an
``ApiError`` (``api_error``: the one place where database errors become API errors) and
publishes the recorded changes once the handler has returned (its transaction committed).
HTTP, Socket.IO and batch calls all use it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, ValidationError

from pryvrt import errors
from pryvrt.auth import identity
from pryvrt.auth.permissions import Access
from pryvrt.methods.context import CallContext
from pryvrt.methods.params import ChannelParams
from pryvrt.methods.scope import Lock, Need, open_scope, refuse_early
from pryvrt.methods.uploads import received_files
from pryvrt.notify.bus import invalidates
from pryvrt.storage.pool import UNAVAILABLE

log = logging.getLogger(__name__)


class Auth(Enum):
    """Which credentials a method accepts."""

    NONE = "none"  # no credential needed (registration, login)
    ACCESS = "access"  # any token or session; data permissions: the method's ``need``
    PERSONAL = "personal"  # a session or a personal token
    # A session, a personal token or an app token: token management (an app token manages
    # the shared tokens it created, API.md §13).
    TOKENS = "tokens"
    SESSION = "session"  # an admin session only


Handler = Callable[[CallContext, Any], Awaitable[Any]]
P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Method:
    id: str
    params: type[BaseModel]
    handler: Handler
    auth: Auth
    # Channel methods: the level, target, lock and tree they need (see ``scope``).
    need: Need | None
    # When it says so (a download by readToken), the call carries no credential: no
    # authentication, no scope; the handler checks what it was given.
    anonymous: Callable[[Any, CallContext], bool] | None
    user_scoped: bool
    # Carries a file (an upload or a download): HTTP only. Every other method is callable
    # over Socket.IO and inside batches (tests/test_registry.py enumerates them).
    files: bool
    summary: str
    errors: tuple[str, ...]

    @property
    def socket(self) -> bool:
        """Callable over Socket.IO and inside batches: every method that carries no file."""
        return not self.files


REGISTRY: dict[str, Method] = {}


def method(
    method_id: str,
    params: type[P],
    *,
    auth: Auth = Auth.ACCESS,
    need: Need | None = None,
    anonymous: Callable[[Any, CallContext], bool] | None = None,
    user_scoped: bool = True,
    files: bool = False,
    errors: tuple[str, ...] = (),
) -> Callable[
    [Callable[[CallContext, P], Awaitable[Any]]], Callable[[CallContext, P], Awaitable[Any]]
]:
    """Register the decorated handler as API method ``method_id``. ``errors`` are the ids
    its handler answers with; those of authentication and of the declared ``need`` are
    added here (the permission matrix holds every answer to the declared ones)."""
    if need is not None and not issubclass(params, ChannelParams):
        raise TypeError(f"{method_id}: channel methods take ChannelParams")
    implied = ["INVALID_PARAMETERS_FORMAT"]
    if user_scoped:
        implied.append("UNKNOWN_USER")
    if auth is not Auth.NONE:
        implied.append("INVALID_TOKEN")
    if auth in (Auth.PERSONAL, Auth.SESSION, Auth.TOKENS):
        implied.append("FORBIDDEN")
    if need is not None:
        implied.extend(need.implied_errors())
    declared = tuple(dict.fromkeys((*implied, *errors)))

    def register(
        handler: Callable[[CallContext, P], Awaitable[Any]],
    ) -> Callable[[CallContext, P], Awaitable[Any]]:
        if method_id in REGISTRY:
            raise ValueError(f"method {method_id} registered twice")
        doc = (handler.__doc__ or "").strip().splitlines()
        REGISTRY[method_id] = Method(
            id=method_id,
            params=params,
            handler=handler,
            auth=auth,
            need=need,
            anonymous=anonymous,
            user_scoped=user_scoped,
            files=files,
            summary=doc[0] if doc else method_id,
            errors=declared,
        )
        return handler

    return register


def validation_error(exc: ValidationError) -> errors.ApiError:
    """Pydantic errors → INVALID_PARAMETERS_FORMAT with one entry per field (or INVALID_ITEM_ID)."""
    problems: dict[str, str] = {}
    item_id_problem = False
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"]) or "params"
        # "Value error, " is pydantic's prefix for our validators' own messages.
        problems.setdefault(path, err["msg"].removeprefix("Value error, "))
        item_id_problem = item_id_problem or err["type"] == "invalid_item_id"
    if item_id_problem and len(problems) == 1:
        return errors.InvalidItemId("invalid id", problems)
    return errors.InvalidParametersFormat("invalid parameters", problems)


def validate(model: type[P], raw: Any) -> P:
    if not isinstance(raw, dict):
        raise errors.InvalidParametersFormat(
            "parameters must be a JSON object", {"params": "expected an object"}
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def resolve_user(ctx: CallContext) -> None:
    if ctx.user is None:
        ctx.user = await identity.find_user(ctx.services, ctx.username)


async def authenticate(ctx: CallContext) -> Access:
    """The credential of the call as an ``Access`` (see ``auth.identity``)."""
    if ctx.access is None:
        assert ctx.user is not None, "authenticate after resolve_user"
        ctx.access = await identity.authenticate(
            ctx.services,
            ctx.user,
            ctx.credential,
            client_ip=ctx.client_ip,
            known=ctx.known_credential,
        )
    return ctx.access


def check_credential_kind(method: Method, access: Access) -> None:
    if method.auth is Auth.PERSONAL and not access.is_full:
        raise errors.Forbidden(f"{method.id} needs a session or a personal token")
    if method.auth is Auth.TOKENS and not (access.is_full or access.kind == "app"):
        raise errors.Forbidden(f"{method.id} needs a session, a personal or an app token")
    if method.auth is Auth.SESSION and not access.is_session:
        raise errors.Forbidden(f"{method.id} needs an admin session")


# PostgreSQL text and jsonb cannot hold the NUL character (U+0000): a value carrying it is
# the client's error, found only when it reaches the database (no per-call scan for it).
UNSTORABLE_TEXT = (asyncpg.UntranslatableCharacterError, asyncpg.CharacterNotInRepertoireError)


def api_error(exc: Exception, ctx: CallContext, what: str) -> errors.ApiError:
    """Any failure of a call as the ``ApiError`` the client gets (logged when it is not the
    client's fault). The one place where database errors become API errors."""
    if isinstance(exc, errors.ApiError):
        return exc
    if isinstance(exc, UNSTORABLE_TEXT):
        return errors.InvalidParametersFormat("text cannot contain the NUL character (\\u0000)")
    extra = {"request_id": ctx.request_id, "method": what}
    if isinstance(exc, UNAVAILABLE):  # storage.pool: unreachable, frozen or restarting
        log.error("database unavailable: %s", type(exc).__name__, extra=extra)
        return errors.ServiceUnavailable("the database is unavailable; try again later")
    log.error("unexpected error in %s", what, exc_info=exc, extra=extra)
    return errors.UnexpectedError(f"unexpected error (request id {ctx.request_id})")


async def identify(ctx: CallContext) -> Access:
    """The Socket.IO handshake: the addressed user and the credential's access, with the
    errors a call would get (raises only ``ApiError``)."""
    try:
        await resolve_user(ctx)
        return await authenticate(ctx)
    except Exception as exc:
        raise api_error(exc, ctx, "connect") from None


async def _run(ctx: CallContext, method: Method, raw: Any) -> Any:
    """Who calls, what they may do, the params, the scope, the handler: in this order."""
    if method.user_scoped:
        await resolve_user(ctx)
    params = None
    anonymous = False
    if method.anonymous is not None:  # whether a credential is needed depends on the params
        params = validate(method.params, raw)
        anonymous = method.anonymous(params, ctx)
    if method.auth is not Auth.NONE and not anonymous:
        check_credential_kind(method, await authenticate(ctx))
    if params is None:
        params = validate(method.params, raw)
    if method.need is None or anonymous:
        return await method.handler(ctx, params)
    assert isinstance(params, ChannelParams)
    need = method.need
    ctx.channel = await identity.find_channel(ctx.services, ctx.user_id, params.channelId)
    refuse_early(ctx.require_access(), params.channelId, need.level)
    lock = need.lock_for(params, ctx)
    rows = need.rows_for(params, ctx)  # (may refuse: too many, before any connection)
    if ctx.uploads is not None:
        # Files arrive whole on disk before any transaction opens (no pooled connection held
        # while a body trickles in), and only for a call that may write: the scope is
        # checked without a lock first, then opened (and checked again) once they are in.
        await open_scope(ctx, need, params, Lock.NONE, None)
        async with received_files(ctx) as ctx.files, ctx.storage.transaction(rows) as conn:
            ctx.scope = await open_scope(ctx, need, params, lock, conn)
            return await method.handler(ctx, params)
    if not need.in_transaction(lock):  # reads, and marks inserted alone (storage.events)
        ctx.scope = await open_scope(ctx, need, params, lock, None)
        return await method.handler(ctx, params)
    async with ctx.storage.transaction(rows) as conn:
        ctx.scope = await open_scope(ctx, need, params, lock, conn)
        return await method.handler(ctx, params)


async def call(ctx: CallContext, method_id: str, raw: Any, *, publish: bool = True) -> Any:
    """Run one API method; raise only ``ApiError``; publish changes after success."""
    method = REGISTRY.get(method_id)
    if method is None:
        raise errors.UnknownMethod(f"unknown method {method_id!r}")
    started = time.perf_counter()
    outcome = "ok"
    try:
        result = await _run(ctx, method, raw)
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except Exception as exc:
        error = api_error(exc, ctx, method_id)
        outcome = error.id
        if error is exc:
            raise
        raise error from None
    finally:
        if log.isEnabledFor(logging.INFO):  # the record's fields cost more than its check
            log.info(
                "call %s",
                method_id,
                extra={
                    "request_id": ctx.request_id,
                    "method": method_id,
                    "transport": ctx.transport,
                    "username": ctx.user.username if ctx.user else ctx.username,
                    "outcome": outcome,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
    if ctx.user is not None and invalidates(ctx.changes):
        # This worker at once (later calls of a batch included); others through the bus.
        ctx.services.cache.invalidate(ctx.user.id)
    if publish and ctx.changes and ctx.user is not None:
        bus = ctx.services.bus
        changes = ctx.services.coalescer.hold(ctx.user.id, ctx.changes, bus.publish)
        if changes:
            await bus.publish(ctx.user.id, sorted(changes, key=_change_order))
        ctx.changes.clear()
    return result


def _change_order(change: Any) -> tuple[str, str, str]:
    return (change.kind, change.subject or "", change.item or "")
