"""The dashboard: static files shipped in the package, served at /{username}/ and /static/,
and its cookie login (``POST /{username}/dashboard/login`` and ``.../dashboard/logout``).

The page holds no credential a script could read: after a login its session lives in an
encrypted ``HttpOnly`` cookie that the API accepts only from the page itself (see
pryvrt.auth.browser_session); a shared link's token stays in the page's memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from pryvrt import errors
from pryvrt.auth import browser_session
from pryvrt.methods import registry
from pryvrt.transports import http
from pryvrt.transports.http import HttpTransport

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data: blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def dashboard_page(request: web.Request, username: str | None) -> web.StreamResponse:
    """The single page; it reads the username from the path (or asks for it)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


class DashboardSession:
    """The dashboard's login and logout: ``admin.login``/``admin.logout`` with the session
    kept in the cookie instead of the answer."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport
        self.services = transport.services

    def _check_origin(self, request: web.Request) -> None:
        problem = browser_session.dashboard_problem(request, self.services.settings)
        if problem is not None:
            raise errors.Forbidden(f"accepted from the dashboard page only: {problem}")

    async def login(self, request: web.Request, username: str) -> web.StreamResponse:
        """Body as ``POST /login``; answers ``{username}`` and sets the cookie."""
        self._check_origin(request)
        body = await http.body_params(request, self.services.settings.body_timeout)
        if not isinstance(body, dict):
            raise errors.InvalidRequestStructure("the JSON body must be an object")
        ctx = self.transport.context(request, username)
        result = await registry.call(ctx, "admin.login", body)
        assert ctx.user is not None
        previous = browser_session.cookie_of(request)
        if previous is not None:
            # This browser holds one dashboard session: the one it replaces ends now.
            try:
                await self._end(request, previous)
            except errors.ApiError as exc:
                log.warning("previous dashboard session not ended: %s", exc.id)
        response = http.json_response({"username": ctx.user.username})
        await browser_session.remember(request, response, ctx.user.username, result["sessionID"])
        return response

    async def logout(self, request: web.Request, username: str) -> web.StreamResponse:
        """End the cookie's session (if it still lives) and clear the cookie."""
        self._check_origin(request)
        cookie = browser_session.cookie_of(request)
        if cookie is not None:
            await self._end(request, cookie)
        response = http.json_response({})
        await browser_session.forget(request, response)
        return response

    async def _end(self, request: web.Request, cookie: browser_session.CookieSession) -> None:
        ctx = self.transport.context(request, cookie.username)
        ctx.credential = cookie.session_id
        try:
            await registry.call(ctx, "admin.logout", {})
        except (errors.InvalidToken, errors.UnknownUser):
            pass  # ended already (expired, logged out, password changed elsewhere)


async def favicon(request: web.Request) -> web.StreamResponse:
    """``/favicon.ico``: browsers ask for it on every origin (it was a 404 in every log)."""
    return web.FileResponse(
        STATIC_DIR / "favicon.ico",
        headers={"Content-Type": "image/x-icon", "Cache-Control": "public, max-age=86400"},
    )


def setup(app: web.Application, transport: HttpTransport) -> None:
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    app.router.add_get("/favicon.ico", favicon)
    transport.user_root_view = dashboard_page
    services = transport.services
    browser_session.setup(app, services.secret_key, services.settings)
    session = DashboardSession(transport)
    transport.user_views[("POST", "dashboard/login")] = session.login
    transport.user_views[("POST", "dashboard/logout")] = session.logout
