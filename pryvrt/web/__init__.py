"""The dashboard: static files shipped in the package, served at /{username}/ and /static/.

The page keeps its session id in its own localStorage and sends it in ``Authorization``
like any API client: no cookie is involved, so no cross-origin page can act with it.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from pryvrt.transports.http import HttpTransport

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


def setup(app: web.Application, transport: HttpTransport) -> None:
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    transport.user_root_view = dashboard_page
