"""The app access request routes (API.md §13) and the consent page the user answers on.

- ``POST /access``: an app opens a request (``access.request``).
- ``GET /access/{key}``: in a browser (``Accept: text/html``) the consent page, else the
  app's poll (``access.poll``).
- ``GET /access/{key}/review``, ``POST /access/{key}/accept|refuse``: the page's calls,
  with the dashboard's cookie session (``access.review|accept|refuse`` for the user the
  cookie names). Taken only from the page itself: the ``X-Pryvrt-CSRF`` header and a
  same-origin ``Origin``/``Sec-Fetch-Site`` (``browser_session.dashboard_problem``); the
  cookie is ``SameSite=Strict`` too. API clients holding a session use the same methods at
  ``/{username}/access/{key}...``.
- ``GET /access/{key}/return``: once decided, the browser goes back to the app's
  ``returnURL`` (checked http(s) when the request opened) with the answer in its query.

The page cannot be framed (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``) and
runs only its own script (CSP). Its files live in ``pryvrt/web/consent/``; it borrows the
dashboard's stylesheet for the same look.
"""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

from pryvrt import errors
from pryvrt.auth import browser_session
from pryvrt.methods import registry
from pryvrt.methods.access import check_return_url, return_location
from pryvrt.storage.access_requests import PENDING
from pryvrt.transports import http
from pryvrt.transports.http import SERVICE_ROUTES, HttpTransport, Route

PAGE_DIR = Path(__file__).resolve().parent / "consent"

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Answers that may hold a token (the poll, the way back to the app) are never cached nor
# passed on as a Referer.
SECRET_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _route(method_id: str) -> Route:
    return next(r for r in SERVICE_ROUTES if r.method_id == method_id)


class ConsentViews:
    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport
        self.services = transport.services

    async def open_request(self, request: web.Request) -> web.StreamResponse:
        return await self.transport.dispatch(request, _route("access.request"), None, {})

    async def page_or_poll(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if http.wants_html(request):
            return web.FileResponse(PAGE_DIR / "consent.html", headers=PAGE_HEADERS)
        response = await self.transport.dispatch(request, _route("access.poll"), None, {"key": key})
        response.headers.update(SECRET_HEADERS)
        return response

    async def _as_page(self, request: web.Request, method_id: str) -> web.StreamResponse:
        """A call of the page, as the user its cookie names (401: sign in first)."""
        problem = browser_session.dashboard_problem(request, self.services.settings)
        if problem is not None:
            raise errors.Forbidden(f"accepted from the consent page only: {problem}")
        key = request.match_info["key"]
        if await self.services.storage.access_requests.get(key, time.time()) is None:
            # Said before "sign in": nobody need sign in to learn the link is dead.
            raise errors.UnknownAccessRequest("unknown or expired access request")
        cookie = browser_session.cookie_of(request)
        if cookie is None:
            raise errors.InvalidToken("sign in on this page first")
        ctx = self.transport.context(request, cookie.username)
        result = await registry.call(ctx, method_id, {"key": key})
        return http.json_response(result)

    async def review(self, request: web.Request) -> web.StreamResponse:
        return await self._as_page(request, "access.review")

    async def accept(self, request: web.Request) -> web.StreamResponse:
        return await self._as_page(request, "access.accept")

    async def refuse(self, request: web.Request) -> web.StreamResponse:
        return await self._as_page(request, "access.refuse")

    async def go_back(self, request: web.Request) -> web.StreamResponse:
        """303 to the app's returnURL with the answer (404 before the decision)."""
        key = request.match_info["key"]
        req = await self.services.storage.access_requests.get(key, time.time())
        if req is None or req.status == PENDING or req.return_url is None:
            raise errors.UnknownAccessRequest("no answered access request to go back from")
        try:  # checked when the request opened; checked again before the browser goes
            check_return_url(req.return_url)
        except ValueError:
            raise errors.InvalidOperation("the request's returnURL is not http(s)") from None
        ctx = self.transport.context(request, None)
        location = return_location(ctx, req)
        assert location is not None
        raise web.HTTPSeeOther(location, headers=SECRET_HEADERS)


def setup(app: web.Application, transport: HttpTransport) -> None:
    """The routes above (after the dashboard's setup: its cookie middleware reads the
    session), and the page's files at /consent/."""
    views = ConsentViews(transport)
    app.router.add_static("/consent/", PAGE_DIR, append_version=False)
    app.router.add_post("/access", views.open_request)
    app.router.add_get("/access/{key}", views.page_or_poll)
    app.router.add_get("/access/{key}/review", views.review)
    app.router.add_post("/access/{key}/accept", views.accept)
    app.router.add_post("/access/{key}/refuse", views.refuse)
    app.router.add_get("/access/{key}/return", views.go_back)
