"""HTTP transport: routes → method ids, requests → params, results and errors → responses.

Every API route is one line of ``ROUTES``. A user's routes are written without the
username: it comes from the first path segment (``/alice/channels``), from the host
(``alice.example.org`` when PRYVRT_DOMAIN is set) or from ``?userName=`` (API.md §1).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from pryvrt import API_VERSION, __version__, errors
from pryvrt.auth import browser_session, identity
from pryvrt.auth.throttle import request_address
from pryvrt.methods import registry, series_json
from pryvrt.methods.context import CallContext, Services
from pryvrt.methods.results import Download
from pryvrt.transports import exact_json, multipart
from pryvrt.transports.download import stream_download
from pryvrt.transports.multipart import UnreadableBody, body_timed_out, unreadable

log = logging.getLogger(__name__)

REQUEST_ID_KEY = web.RequestKey("request_id", str)


@dataclass(frozen=True, slots=True)
class Route:
    verb: str
    path: str
    method_id: str
    status: int = 200
    # Where a JSON body goes: merged into params (None), or under this key (e.g. arrays).
    body_key: str | None = None
    # Accepts multipart/form-data with files (handled by pryvrt.transports.multipart).
    uploads: bool = False
    # A multipart body must then start with one JSON part: the params (API.md §6).
    params_part: bool = False
    # Answers with a stored file (any content type), not JSON.
    download: bool = False
    # Decodes the JSON body (series points: straight to a numpy matrix, series_json).
    decode: Callable[[bytes], Any] = exact_json.loads


# Order matters where a literal and a {param} compete for a segment: literal first.
ROUTES: tuple[Route, ...] = (
    Route("POST", "/", "batch", body_key="calls"),
    Route("POST", "/login", "admin.login"),
    Route("POST", "/logout", "admin.logout"),
    Route("GET", "/user-info", "admin.getUserInfo"),
    Route("PUT", "/user-info", "admin.updateUserInfo"),
    Route("POST", "/change-password", "admin.changePassword"),
    Route("GET", "/bookmarks", "bookmarks.get"),
    Route("POST", "/bookmarks", "bookmarks.create", 201),
    Route("PUT", "/bookmarks/{id}", "bookmarks.update"),
    Route("DELETE", "/bookmarks/{id}", "bookmarks.delete"),
    Route("GET", "/shares", "shares.get"),
    Route("POST", "/shares/{id}/accept", "shares.accept"),
    Route("DELETE", "/shares/{id}", "shares.decline"),
    Route("GET", "/channels", "channels.get"),
    Route("POST", "/channels", "channels.create", 201),
    Route("PUT", "/channels/{channelId}", "channels.update"),
    Route("DELETE", "/channels/{channelId}", "channels.delete"),
    Route("GET", "/access-info", "tokens.getAccessInfo"),
    Route("GET", "/tokens", "tokens.get"),
    Route("POST", "/tokens", "tokens.create", 201),
    Route("POST", "/tokens/personal", "tokens.getOrCreatePersonal"),
    Route("POST", "/tokens/check-app", "tokens.checkApp"),
    Route("GET", "/tokens/{name}", "tokens.getOrCreatePersonal"),
    Route("PUT", "/tokens/{id}", "tokens.update"),
    Route("DELETE", "/tokens/{id}", "tokens.delete"),
    Route("GET", "/{channelId}/folders", "folders.get"),
    Route("GET", "/{channelId}/folders/{parentId}", "folders.get"),
    Route("POST", "/{channelId}/folders", "folders.create", 201),
    Route("POST", "/{channelId}/folders/{parentId}", "folders.create", 201),
    Route("PUT", "/{channelId}/folders/{id}", "folders.update"),
    Route("POST", "/{channelId}/folders/{id}/move", "folders.move"),
    Route("DELETE", "/{channelId}/folders/{id}", "folders.delete"),
    Route("GET", "/{channelId}/events", "events.get"),
    Route("POST", "/{channelId}/events", "events.create", 201, uploads=True, params_part=True),
    Route("POST", "/{channelId}/events/start", "events.start", 201),
    Route("POST", "/{channelId}/events/stop", "events.stop"),
    Route("GET", "/{channelId}/events/running", "events.getRunning"),
    Route("POST", "/{channelId}/events/batch", "events.batch"),
    Route("GET", "/{channelId}/events/{id}", "events.getOne"),
    Route("POST", "/series/batch", "series.batch"),
    Route(
        "POST",
        "/{channelId}/events/{id}/series",
        "events.addSeriesPoints",
        decode=series_json.loads,
    ),
    Route("GET", "/{channelId}/events/{id}/series", "events.getSeries"),
    Route("PUT", "/{channelId}/events/{id}", "events.update"),
    Route("POST", "/{channelId}/events/{id}", "events.addAttachments", uploads=True),
    Route("DELETE", "/{channelId}/events/{id}", "events.delete"),
    Route("GET", "/{channelId}/events/{id}/{fileName}", "events.getAttachment", download=True),
    Route("DELETE", "/{channelId}/events/{id}/{fileName}", "events.deleteAttachment"),
    # After the channel routes: a request key never equals their literal segments.
    Route("GET", "/access/{key}", "access.review"),
    Route("POST", "/access/{key}/accept", "access.accept"),
    Route("POST", "/access/{key}/refuse", "access.refuse"),
)

# Routes outside any user (registered with aiohttp's router directly).
SERVICE_ROUTES: tuple[Route, ...] = (
    Route("POST", "/users", "users.create", 201),
    # App access requests (API.md §13; pryvrt.web.consent serves them, and the page).
    Route("POST", "/access", "access.request", 201),
    Route("GET", "/access/{key}", "access.poll"),
)

_PARAM = re.compile(r"\{(\w+)\}")


class RouteTable:
    """Matches a user-relative path (already split) to a route and its path params."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        # Per segment count, in ROUTES order: (route, literal segments as (index, text),
        # param segments as (index, name)). Literals are compared first: most routes fail
        # on one, without building params.
        self._by_length: dict[
            int, list[tuple[Route, tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]]
        ] = {}
        for route in routes:
            if route.method_id not in registry.REGISTRY:
                continue  # method not built yet: the route answers 404
            literals: list[tuple[int, str]] = []
            names: list[tuple[int, str]] = []
            for index, part in enumerate(p for p in route.path.split("/") if p):
                m = _PARAM.fullmatch(part)
                (names if m else literals).append((index, m.group(1) if m else part))
            length = len(literals) + len(names)
            self._by_length.setdefault(length, []).append((route, tuple(literals), tuple(names)))

    def match(
        self, verb: str, segments: list[str]
    ) -> tuple[Route | None, dict[str, str], tuple[str, ...]]:
        """(route, path params, allowed verbs): the verbs the path takes tell 405 from 404."""
        allowed: list[str] = []
        for route, literals, names in self._by_length.get(len(segments), ()):
            for index, text in literals:
                if segments[index] != text:
                    break
            else:
                if route.verb == verb:
                    return route, {name: segments[index] for index, name in names}, ()
                if route.verb not in allowed:
                    allowed.append(route.verb)
        return None, {}, tuple(allowed)


def not_allowed(request: web.Request, allowed: tuple[str, ...]) -> errors.ApiError:
    """405 METHOD_NOT_ALLOWED with the ``Allow`` header (RFC 9110 §15.5.6)."""
    verbs = ", ".join(sorted({*allowed, "OPTIONS"}))
    return errors.MethodNotAllowed(
        f"{request.method} is not allowed on {request.path}: use {' or '.join(sorted(allowed))}",
        {"allowed": sorted(allowed)},
        headers={"Allow": verbs},
    )


def unknown_route(request: web.Request) -> errors.ApiError:
    return errors.UnknownResource(
        f"no route {request.method} {request.path} (the routes are in /openapi.json)"
    )


def error_response(exc: errors.ApiError) -> web.Response:
    return web.Response(
        body=orjson.dumps(exc.to_dict()),
        status=exc.status,
        content_type="application/json",
        headers=exc.headers or None,
    )


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def credential_of(request: web.Request) -> str | None:
    """``Authorization: <credential>`` (or ``Bearer <credential>``), else ``?auth=``."""
    header = request.headers.get("Authorization")
    if header:
        header = header.strip()
        if header[:7].lower() == "bearer ":
            header = header[7:].strip()
        return header or None
    return request.query.get("auth") or None


def split_user(request: web.Request, domain: str | None) -> tuple[str | None, list[str]]:
    """(username, remaining path segments) per the three addressing forms of API.md §1."""
    segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].split("/") if s]
    override = request.query.get("userName")
    if override:
        return override, segments
    if domain:
        host = (request.host or "").rsplit(":", 1)[0].lower()
        suffix = "." + domain
        if host.endswith(suffix) and "." not in host[: -len(suffix)]:
            return host[: -len(suffix)], segments
    if not segments:
        return None, []
    return segments[0], segments[1:]


def query_params(request: web.Request) -> dict[str, Any]:
    """Query string → params: repeated keys and ``key[]`` become lists."""
    params: dict[str, Any] = {}
    for key in set(request.query.keys()):
        if key in ("auth", "userName"):
            continue
        values = request.query.getall(key)
        if key.endswith("[]"):
            params[key[:-2]] = list(values)
        else:
            params[key] = values[0] if len(values) == 1 else list(values)
    return params


JSON_TYPES = ("application/json", "text/json")
# A body larger than this is decoded in a thread (series points, large batches: ~100 ms of
# parsing per 100 000 points), so the event loop keeps serving other requests meanwhile.
LARGE_BODY = 1024 * 1024


async def body_params(
    request: web.Request, within: float, decode: Callable[[bytes], Any] = exact_json.loads
) -> Any:
    """The JSON body (None when empty); it must arrive whole within ``within`` seconds."""
    if not request.body_exists:
        return None
    ctype = request.content_type
    if (
        ctype not in JSON_TYPES
        and not ctype.endswith("+json")
        and ctype != "application/octet-stream"
    ):
        raise errors.InvalidRequestStructure(
            f"expected a JSON body (Content-Type: application/json), got {ctype!r}"
        )
    try:
        if request.content.is_eof():  # the whole body came with the headers (most do)
            raw = await request.read()
        else:
            async with asyncio.timeout(within):
                raw = await request.read()
    except TimeoutError:
        raise body_timed_out(within) from None
    except web.RequestPayloadError as exc:
        raise unreadable(exc) from None
    if not raw.strip():
        return None
    try:
        if len(raw) > LARGE_BODY:
            return await asyncio.to_thread(decode, raw)
        return decode(raw)
    except exact_json.NumberOutOfRange as exc:
        raise errors.InvalidRequestStructure(
            f"the body holds a number out of range: {exc}"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidRequestStructure(f"the body is not valid JSON: {exc}") from None


# Request ids only tell requests apart in logs and answers (no secret rests on them): 32
# random bits drawn once per process, then a counter (no system call per request).
_REQUEST_ID_PREFIX = secrets.token_hex(4)
_request_counter = itertools.count()


def new_request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    if 0 < len(given) <= 64 and given.replace("-", "").isalnum():
        return given
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter) & 0xFFFFFFFF:08x}"


class HttpTransport:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.table = RouteTable(ROUTES)
        self._service_paths: dict[str, tuple[str, ...]] | None = None
        # Set by the dashboard module: serves GET /{username}/ (and GET / with a user).
        self.user_root_view: (
            Callable[[web.Request, str | None], Awaitable[web.StreamResponse]] | None
        ) = None
        # Also the dashboard's: (verb, user-relative path) → view, e.g. its cookie login.
        self.user_views: dict[
            tuple[str, str], Callable[[web.Request, str], Awaitable[web.StreamResponse]]
        ] = {}

    def context(self, request: web.Request, username: str | None) -> CallContext:
        """The call's context; the credential is the explicit one (header or ``?auth=``),
        else the dashboard's cookie session when the request may use it."""
        credential = credential_of(request)
        if credential is None:
            credential = browser_session.credential_for(request, username)
        return CallContext(
            services=self.services,
            transport="http",
            request_id=request[REQUEST_ID_KEY],
            username=username,
            credential=credential,
            client_ip=request_address(request, self.services.settings.trusted_proxies),
            base_url=f"{request.scheme}://{request.host}",
        )

    async def dispatch(
        self, request: web.Request, route: Route, username: str | None, path_params: dict[str, str]
    ) -> web.StreamResponse:
        ctx = self.context(request, username)
        params: dict[str, Any] = query_params(request)
        if route.uploads and request.content_type.startswith("multipart/"):
            body, ctx.uploads = await multipart.open_uploads(request, self.services.settings)
            if route.params_part and body is None:
                raise errors.InvalidRequestStructure(
                    "a multipart body needs one JSON part (the params) before the files"
                )
        else:
            body = await body_params(request, self.services.settings.body_timeout, route.decode)
        if route.body_key is not None:
            if body is not None:
                params[route.body_key] = body
        elif body is not None:
            if not isinstance(body, dict):
                raise errors.InvalidRequestStructure("the JSON body must be an object")
            params.update(body)
        params.update(path_params)
        try:
            result = await registry.call(ctx, route.method_id, params)
        finally:
            if ctx.uploads is not None and hasattr(ctx.uploads, "release"):
                await ctx.uploads.release()
        if isinstance(result, Download):
            return await stream_download(request, result)
        return json_response(result, route.status)

    def service_methods(self, request: web.Request) -> tuple[str, ...]:
        """The verbs of the service route at this exact path, if any (``service_paths``,
        read once the router is frozen: no route can be added any more)."""
        paths = self._service_paths
        if paths is None:
            router = request.app.router
            paths = service_paths(router)
            if router.frozen:
                self._service_paths = paths
        return paths.get(request.path, ())

    async def handle_user(self, request: web.Request) -> web.StreamResponse:
        """Every path not taken by a service route: a user's API (or the service root)."""
        service_verbs = self.service_methods(request)
        if service_verbs:  # e.g. GET /users: the path is a service route, not a user
            raise not_allowed(request, service_verbs)
        username, segments = split_user(request, self.services.settings.domain)
        if username is None:
            if request.method == "GET":
                if self.user_root_view is not None and wants_html(request):
                    return await self.user_root_view(request, None)
                return json_response(service_info(self.services))
            raise not_allowed(request, ("GET",))
        if not segments and request.method == "GET":
            return await self.user_root(request, username)
        view = self.user_views.get((request.method, "/".join(segments)))
        if view is not None:
            return await view(request, username)
        route, path_params, allowed = self.table.match(request.method, segments)
        if route is None:
            if allowed:
                raise not_allowed(request, allowed)
            raise unknown_route(request)
        return await self.dispatch(request, route, username, path_params)

    async def user_root(self, request: web.Request, username: str) -> web.StreamResponse:
        """``GET /{username}/``: the dashboard, for a browser and an existing user.

        A name that is no user (``/helth``, a typo) is 404 whatever the client: never the
        dashboard page. A browser at ``/alice`` is sent to ``/alice/``; an API client gets
        405 (the user root takes ``POST``: a batch)."""
        try:
            await identity.find_user(self.services, username)
        except errors.UnknownUser:
            raise unknown_route(request) from None
        if self.user_root_view is None or not wants_html(request):
            raise not_allowed(request, ("POST",))
        if not request.path.endswith("/"):
            location = (
                request.path + "/" + (f"?{request.query_string}" if request.query_string else "")
            )
            raise web.HTTPPermanentRedirect(location)
        return await self.user_root_view(request, username)

    async def handle_register(self, request: web.Request) -> web.StreamResponse:
        return await self.dispatch(request, SERVICE_ROUTES[0], None, {})

    async def handle_health(self, request: web.Request) -> web.Response:
        """200 when the database answers, else 503 SERVICE_UNAVAILABLE."""
        try:
            await self.services.storage.ping()
        except Exception as exc:
            log.warning("health check failed: %s", type(exc).__name__)
            raise errors.ServiceUnavailable(
                "the database is unavailable", {"database": "down"}
            ) from None
        return json_response({"status": "ok", "database": "ok", "version": __version__})


def service_paths(router: web.UrlDispatcher) -> dict[str, tuple[str, ...]]:
    """The fixed paths of the service routes (``/users``, ``/health``...) → their verbs:
    the users' catch-all route also matches those paths."""
    verbs: dict[str, list[str]] = {}
    for resource in router.resources():
        if "{" not in resource.canonical:
            verbs.setdefault(resource.canonical, []).extend(
                r.method for r in resource if r.method not in ("HEAD", "*")
            )
    return {path: tuple(dict.fromkeys(v)) for path, v in verbs.items() if v}


def wants_html(request: web.Request) -> bool:
    """A browser navigating (Accept: text/html first), not an API client."""
    return request.headers.get("Accept", "").startswith("text/html")


def service_info(services: Services) -> dict[str, Any]:
    return {
        "name": "pryvrt",
        "version": __version__,
        "apiVersion": API_VERSION,
        "registration": services.settings.registration,
        "domain": services.settings.domain,
    }


# Error ids for aiohttp's own HTTP errors (router misses, oversized bodies...).
_HTTP_ERROR_IDS = {
    400: ("INVALID_REQUEST_STRUCTURE", errors.InvalidRequestStructure),
    404: ("UNKNOWN_RESOURCE", errors.UnknownResource),
    405: ("METHOD_NOT_ALLOWED", errors.MethodNotAllowed),
    413: ("PAYLOAD_TOO_LARGE", errors.PayloadTooLarge),
}


# How long a connection whose body was given up on stays half-closed, its incoming bytes
# read and dropped, before it is closed.
LINGER_SECONDS = 2.0


async def close_after_answer(request: web.Request) -> None:
    """Close a connection whose client may still be sending its body, in stages.

    Closed at once, the kernel answers the client's next bytes with a reset, which can
    destroy the answer before the client reads it (RFC 9112 §9.6; seen as a
    ConnectionResetError instead of the 408). So: end our side (the client reads the answer,
    then the end of the stream), read and drop what still comes until the client closes or
    for ``LINGER_SECONDS``, then close.
    """
    transport = request.transport
    if transport is not None and not transport.is_closing() and transport.can_write_eof():
        transport.write_eof()
        # Ends on the client's close, a stream that cannot be read, or the time limit.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(LINGER_SECONDS):
                while await request.content.readany():
                    pass
    if request.protocol is not None:
        request.protocol.force_close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def socket_io(request: web.Request) -> bool:
    """A request of the Socket.IO endpoint (python-socketio answers it, CORS included)."""
    return request.path.startswith("/socket.io")


def socket_upgrade(request: web.Request) -> bool:
    """A websocket upgrade of the Socket.IO endpoint: a request that lasts as long as the
    socket (hours), where every awaiting middleware would keep a coroutine frame alive."""
    return socket_io(request) and request.headers.get("Upgrade", "").lower() == "websocket"


@web.middleware
def error_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Request id, CORS preflight, and every error rendered as ``{id, message, data?}``.

    A plain function, not a coroutine: for a Socket.IO websocket it hands back the inner
    handler's coroutine instead of awaiting it, so no frame of its own stays alive for the
    socket's whole life (~0.4 KiB per idle socket). Such a request still gets its request
    id (its 101 answer carries ``X-Request-Id``); engine.io answers its own refusals, and
    what happens on the socket afterwards is no HTTP response to render."""
    request[REQUEST_ID_KEY] = new_request_id(request)
    if socket_upgrade(request):
        return handler(request)
    return _rendering_errors(request, handler)


async def _rendering_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=200)
    try:
        return await handler(request)
    except (errors.RequestTimeout, UnreadableBody) as exc:
        # Answer, then close in stages (close_after_answer): aiohttp would otherwise keep
        # reading the rest of the body for up to 10 s ("lingering"), from a client that may
        # never send it or from a stream that cannot be read.
        response = error_response(exc)
        response.force_close()  # says "Connection: close": the client opens a new one
        with contextlib.suppress(ConnectionError):  # the client may be gone already
            await response.prepare(request)
            await response.write_eof()
        await close_after_answer(request)
        return response
    except errors.ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        _, cls = _HTTP_ERROR_IDS.get(exc.status, ("", errors.InvalidRequestStructure))
        allow = exc.headers.get("Allow")
        api_error = cls(
            exc.reason or "request refused",
            status=exc.status,
            headers={"Allow": allow} if allow else None,
        )
        return error_response(api_error)
    except HttpProcessingError as exc:
        # aiohttp's parsers (multipart parts, chunked bodies) reading a malformed body.
        status = exc.code if 400 <= exc.code < 500 else 400
        _, cls = _HTTP_ERROR_IDS.get(status, ("", errors.InvalidRequestStructure))
        return error_response(cls(f"malformed request: {exc.message}", status=status))
    except Exception:
        log.exception("unexpected error", extra={"request_id": request[REQUEST_ID_KEY]})
        return error_response(
            errors.UnexpectedError(f"unexpected error (request id {request[REQUEST_ID_KEY]})")
        )


# Never add the dashboard's X-Pryvrt-CSRF here: other origins must not be able to send it
# (pryvrt.auth.browser_session); nor Access-Control-Allow-Credentials anywhere.
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-Id"
CORS_EXPOSE_HEADERS = "Server-Time, API-Version, X-Request-Id"


_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
    "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
    "Access-Control-Max-Age": "86400",
}


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Server-Time and API-Version on every response (errors and 404s too), plus CORS."""
    headers = response.headers
    headers["Server-Time"] = f"{time.time():.3f}"
    headers["API-Version"] = API_VERSION
    request_id = request.get(REQUEST_ID_KEY)
    if request_id:
        headers["X-Request-Id"] = request_id
    if socket_io(request):
        return  # python-socketio answers CORS for its own endpoint
    origin = request.headers.get("Origin")
    headers["Access-Control-Allow-Origin"] = origin or "*"
    if origin:
        headers["Vary"] = "Origin"
    headers.update(_CORS_HEADERS)


def setup(app: web.Application, services: Services) -> HttpTransport:
    """Middleware, headers and the service routes; call ``add_user_routes`` last."""
    transport = HttpTransport(services)
    app.middlewares.append(error_middleware)
    app.on_response_prepare.append(add_common_headers)
    app.router.add_post("/users", transport.handle_register)
    app.router.add_get("/health", transport.handle_health)
    return transport


def add_user_routes(app: web.Application, transport: HttpTransport) -> None:
    """The catch-all for users' APIs: registered after every more specific route."""
    app.router.add_route("*", "/{tail:.*}", transport.handle_user)
