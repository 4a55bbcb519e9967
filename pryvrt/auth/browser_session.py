"""The dashboard's login: an encrypted ``HttpOnly`` cookie that only the dashboard can use.

The dashboard used to keep its session id in ``localStorage``, where any script running on
the server's origin (an uploaded HTML file opened from it, say) could read it and use it
from anywhere for as long as the session lived, long enough to create a personal token
that survives a password change. Now:

- The session id lives only in the cookie ``pryvrt_session``: encrypted and authenticated
  by aiohttp-session's ``EncryptedCookieStorage`` (Fernet) under a key derived from the
  server secret; ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
  page makes the browser send it), ``Secure`` over https. The page never sees the id.
- The cookie is a credential only in requests that show they come from the dashboard: the
  header ``X-Pryvrt-CSRF: 1`` (an HTML form cannot send it, and the CORS preflight does not
  allow it to other origins) and same-origin per ``Origin`` / ``Sec-Fetch-Site`` (``Origin:
  null``, sent by sandboxed documents, is refused). Any other request carrying it is
  treated as carrying no credential: 401 ``INVALID_TOKEN``, never the session.
- A Socket.IO handshake without ``auth`` uses the cookie when its ``Origin`` is this
  server's (against cross-site WebSocket hijacking).
- The cookie names a row of the sessions table, so the session ends as a header session
  does: idle expiry (sliding), logout, a password change made with another session; its
  sockets are disconnected then. The cookie's own lifetime is the session's idle time,
  renewed (re-encrypted) at most once a minute while the dashboard is in use.

What it cannot stop: a script that runs unsandboxed on this origin while the user is logged
in can send requests with the header (the origin is the boundary browsers enforce). It can
no longer read a credential to take away; attachments are served sandboxed (``Origin:
null``), which this module refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from yarl import URL

from pryvrt import errors
from pryvrt.config import Settings

log = logging.getLogger(__name__)

COOKIE_NAME = "pryvrt_session"
CSRF_HEADER = "X-Pryvrt-CSRF"
# The cookie key is derived from the server secret, not the secret itself: the secret also
# signs readTokens, and one key should serve one purpose.
_KEY_LABEL = b"pryvrt dashboard cookie v1"
# A cookie in use is re-issued (new expiry) when it is older than this (or a quarter of
# the session's idle time, when that is shorter).
REFRESH_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class CookieSession:
    """What the cookie holds: the session id and whose it is."""

    username: str
    session_id: str


class CookieStorage(EncryptedCookieStorage):
    """aiohttp-session's encrypted cookie with pryvrt's attributes; ``Secure`` per request."""

    def __init__(self, secret_key: bytes, settings: Settings) -> None:
        key = hmac.new(secret_key, _KEY_LABEL, hashlib.sha256).digest()
        max_age = max(1, math.ceil(settings.session_ttl))
        super().__init__(
            key,
            cookie_name=COOKIE_NAME,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="Strict",
        )
        self.settings = settings
        self.refresh_after = min(REFRESH_SECONDS, max_age / 4)

    def secure_for(self, request: web.Request, session: aiohttp_session.Session) -> bool:
        """The setting; else https seen by us, by the page (its Origin), or at login."""
        if self.settings.cookie_secure is not None:
            return self.settings.cookie_secure
        return request.secure or page_is_https(request) or bool(session.get("secure"))

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: aiohttp_session.Session
    ) -> None:
        await super().save_session(request, response, session)
        morsel = response.cookies.get(COOKIE_NAME)
        if morsel is not None and self.secure_for(request, session):
            morsel["secure"] = True


STORAGE_KEY = web.AppKey("browser_session_storage", CookieStorage)
# Set by the middleware: the cookie's session when this request may use it ...
SESSION_KEY = web.RequestKey("browser_session", aiohttp_session.Session)
COOKIE_KEY = web.RequestKey("browser_session_cookie", CookieSession)
# ... or why it may not (kept for the 401 message); whether the call used it; whether the
# response already sets or clears the cookie (login, logout).
REFUSED_KEY = web.RequestKey("browser_session_refused", str)
USED_KEY = web.RequestKey("browser_session_used", bool)
ISSUED_KEY = web.RequestKey("browser_session_issued", bool)


def setup(app: web.Application, secret_key: bytes, settings: Settings) -> CookieStorage:
    """Our middleware (after the error middleware).

    aiohttp-session's own middleware is not installed: it runs on every request (~5 µs,
    with a string request key that makes aiohttp warn each time) to save sessions that
    change in three places only; those save the cookie themselves.
    """
    storage = CookieStorage(secret_key, settings)
    app[STORAGE_KEY] = storage
    app.middlewares.append(cookie_middleware)
    return storage


# -- is this request from the dashboard? ----------------------------------------------------


def _origin_is_ours(origin: str, request: web.Request, settings: Settings) -> bool:
    """``Origin`` names this server: same host and port as the ``Host`` the browser sent;
    https always (a TLS proxy may stand in front), http only while nothing says the site
    is served over https."""
    try:
        url = URL(origin)
        ours = URL.build(scheme=url.scheme or "http", authority=request.host)
    except (ValueError, TypeError):
        return False
    if url.scheme == "http":
        if settings.cookie_secure or request.secure:
            return False
    elif url.scheme != "https":
        return False  # "null" (sandboxed or opaque documents) included
    return (
        url.raw_path in ("", "/")
        and not url.raw_query_string
        and bool(url.host)
        and url.host == ours.host
        and url.port == ours.port
    )


def dashboard_problem(
    request: web.Request, settings: Settings, *, socket: bool = False
) -> str | None:
    """Why the request cannot be the dashboard's own (None: it can).

    HTTP: the CSRF header, and same-origin per ``Origin`` (sent on every request but
    same-origin GETs) and ``Sec-Fetch-Site``; at least one of the two must be present.
    Socket.IO handshakes carry no custom header but always an ``Origin`` from a browser.
    """
    if not socket and request.headers.get(CSRF_HEADER) != "1":
        return f"the {CSRF_HEADER} header is missing"
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if origin is None and (socket or site is None):
        return "the request has no Origin" + ("" if socket else " nor Sec-Fetch-Site")
    if origin is not None and not _origin_is_ours(origin, request, settings):
        return f"Origin {origin[:100]!r} is not this server's"
    if site is not None and site != "same-origin":
        return f"Sec-Fetch-Site is {site[:30]!r}"
    return None


def page_is_https(request: web.Request) -> bool:
    """The page's Origin (checked as ours by the caller) says the browser talks https to us:
    through a proxy that terminates TLS, ``request.secure`` is False. A client that lies
    here only changes the flags of its own cookie."""
    return request.headers.get("Origin", "").startswith("https://")


def _cookie_of(session: aiohttp_session.Session) -> CookieSession | None:
    session_id, username = session.get("sid"), session.get("user")
    if isinstance(session_id, str) and session_id and isinstance(username, str) and username:
        return CookieSession(username, session_id)
    return None


def _explicit_credential(request: web.Request) -> bool:
    return "Authorization" in request.headers or "auth" in request.query


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
def cookie_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Read the cookie for dashboard requests; re-issue it while in use; explain refusals.

    Not a coroutine: requests without the cookie, with their own credential, or for the
    Socket.IO endpoint (whose handshake reads the cookie itself: ``socket_credential``) get
    the inner handler's coroutine back, so no frame of this middleware stays alive for a
    websocket's whole life."""
    if (
        COOKIE_NAME not in request.cookies
        or _explicit_credential(request)
        or request.path.startswith("/socket.io")
    ):
        return handler(request)
    return _with_cookie(request, handler)


async def _with_cookie(request: web.Request, handler: Handler) -> web.StreamResponse:
    storage = request.app[STORAGE_KEY]
    problem = dashboard_problem(request, storage.settings)
    if problem is None:
        session = await storage.load_session(request)
        cookie = _cookie_of(session)
        if cookie is None:
            problem = "the cookie is expired or unreadable"
        else:
            request[SESSION_KEY] = session
            request[COOKIE_KEY] = cookie
    if problem is not None:
        request[REFUSED_KEY] = problem
    try:
        response = await handler(request)
    except errors.InvalidToken as exc:
        refused = request.get(REFUSED_KEY)
        if refused and not request.get(USED_KEY):
            raise errors.InvalidToken(
                f"{exc.message} (the dashboard's cookie is not accepted here: {refused})"
            ) from None
        raise
    loaded = request.get(SESSION_KEY)
    if (
        loaded is not None
        and request.get(USED_KEY)
        and not request.get(ISSUED_KEY)
        and isinstance(response, web.Response)  # not a stream already sent
        and not response.prepared
        and time.time() - loaded.created >= storage.refresh_after
    ):
        loaded["sid"] = loaded["sid"]  # a new timestamp: re-encrypted, new Max-Age
        await storage.save_session(request, response, loaded)
    return response


def credential_for(request: web.Request, username: str | None) -> str | None:
    """The session id of the cookie when this request may use it for ``username``."""
    cookie = request.get(COOKIE_KEY)
    if cookie is None:
        return None
    if username is None or cookie.username != username.lower():
        request[REFUSED_KEY] = "it belongs to another user"
        return None
    request[USED_KEY] = True
    return cookie.session_id


def cookie_of(request: web.Request) -> CookieSession | None:
    """The request's cookie when the middleware found it usable (dashboard login/logout)."""
    return request.get(COOKIE_KEY)


async def remember(
    request: web.Request, response: web.StreamResponse, username: str, session_id: str
) -> None:
    """Set the cookie of a new session on ``response``."""
    storage = request.app[STORAGE_KEY]
    session = await storage.new_session()
    session["sid"] = session_id
    session["user"] = username.lower()
    # Kept for re-issues by requests that carry no Origin (same-origin GETs).
    session["secure"] = request.secure or page_is_https(request)
    await storage.save_session(request, response, session)
    request[ISSUED_KEY] = True


async def forget(request: web.Request, response: web.StreamResponse) -> None:
    """Clear the cookie in the browser (``Max-Age=0``) with ``response``."""
    storage = request.app[STORAGE_KEY]
    await storage.save_session(request, response, await storage.new_session())  # empty
    request[ISSUED_KEY] = True


# -- Socket.IO --------------------------------------------------------------------------------


async def socket_credential(environ: dict[str, Any], username: str) -> str | None:
    """The cookie's session id for a Socket.IO handshake without ``auth``: only when the
    handshake comes from this server's own origin and the cookie is ``username``'s."""
    request = environ.get("aiohttp.request")
    if not isinstance(request, web.Request) or COOKIE_NAME not in request.cookies:
        return None
    storage = request.app.get(STORAGE_KEY)
    if storage is None:
        return None
    problem = dashboard_problem(request, storage.settings, socket=True)
    if problem is not None:
        log.info("socket handshake: dashboard cookie ignored: %s", problem)
        return None
    try:
        cookie = _cookie_of(await storage.load_session(request))
    except Exception:  # the connect handler must answer with a refusal, never raise
        log.exception("socket handshake: dashboard cookie unreadable")
        return None
    if cookie is None or cookie.username != username.lower():
        return None
    return cookie.session_id
