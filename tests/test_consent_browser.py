"""The app access flow (API.md §13) in a real browser (Debian's Chromium driven by
Playwright): the example app of examples/access-app, served from another site
(``localhost`` while the server is ``127.0.0.1``), asks for access; the user signs in on
the consent page and answers; the app polls and uses its token. Also: refusal, expiry,
reuse, changed permissions, a hostile returnURL, and another site's page posting a
decision or framing the consent page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from pryvrt.app import SERVICES_KEY
from tests import dashboard_page
from tests.conftest import Api
from tests.dashboard_page import in_browser_loop, needs_chromium
from tests.test_dashboard import open_page, origin

pytestmark = [needs_chromium, in_browser_loop]
# The run's one Chromium and this test's servers, in the browser tests' loop.
api, make_api, browser = dashboard_page.api, dashboard_page.make_api, dashboard_page.browser

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "access-app"
EVIL_FORM = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}"><input name="x" value="1"></form>
<script>document.getElementById("f").submit();</script></body></html>"""
EVIL_FRAME = """<!doctype html><html><body><iframe id="victim" src="{target}"></iframe>
</body></html>"""


@pytest_asyncio.fixture(loop_scope="session")
async def other_site() -> AsyncIterator[str]:
    """Another site: the example app, and a hostile page, at http://localhost:PORT."""
    app = web.Application()

    async def evil(request: web.Request) -> web.Response:
        template = EVIL_FORM if request.match_info["kind"] == "form" else EVIL_FRAME
        html = template.format(target=request.query["target"])
        return web.Response(text=html, content_type="text/html")

    app.router.add_get("/evil/{kind}", evil)
    app.router.add_static("/app/", EXAMPLE_DIR)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://localhost:{server.port}"
    finally:
        await server.close()


async def sign_up(api: Api) -> tuple[str, str]:
    username, session = await api.user()
    await api.channel(username, session, id="diary", name="Diary")
    return username, session


async def start_app(browser: Any, api: Api, site: str, errors: list[str]) -> Any:
    """The example app, pointed at the server; its Request button pressed."""
    page = await open_page(browser, errors)
    await page.goto(f"{site}/app/index.html")
    await page.fill("#server", origin(api))
    await page.click("#request")
    await page.wait_for_selector("#consent:not([hidden])")
    return page


async def consent_tab(app_page: Any) -> Any:
    """The consent page, opened from the app's link (a new tab of the same browser)."""
    async with app_page.expect_popup() as opened:
        await app_page.click("#consent-link")
    consent = await opened.value
    consent.set_default_timeout(10_000)
    return consent


async def sign_in(consent: Any, username: str) -> None:
    await consent.wait_for_selector("#signin:not([hidden])")
    await consent.fill("#signin-username", username)
    await consent.fill("#signin-password", "secret-pw")
    await consent.click("#signin-submit")
    await consent.wait_for_selector("#request:not([hidden])")


async def test_the_user_accepts_and_the_app_reads_the_new_channel_and_nothing_else(
    api: Api, browser: Any, other_site: str
) -> None:
    username, session = await sign_up(api)
    errors: list[str] = []
    app = await start_app(browser, api, other_site, errors)
    consent = await consent_tab(app)
    await sign_in(consent, username)
    # What the app asks for, in words, and where the browser goes afterwards.
    assert await consent.text_content("#app-id") == "heart-notes-example"
    item = await consent.text_content("#permissions li")
    assert item is not None and "read and add to your channel Heart" in item
    assert "will be created" in item
    assert await consent.text_content("#return-url") == f"{other_site}/app/index.html"
    assert await consent.is_hidden("#token-state")
    await consent.click("#accept")
    # The consent tab goes back to the app (returnURL), which connects from its query...
    await consent.wait_for_url(f"{other_site}/app/index.html")
    await consent.wait_for_selector("#connected:not([hidden])")
    assert "apiEndpoint" not in consent.url  # the app took the token out of the address bar
    # ... and the app's own tab got the token by polling: it reads Heart, not Diary.
    await app.wait_for_selector("#channels li")
    assert await app.locator("#channels li").all_text_contents() == ["Heart (heart)"]
    await app.click("#note")
    await app.wait_for_selector("#status:has-text('Recorded')")
    [channel] = [
        c for c in (await api.get(f"/{username}/channels", auth=session)).body if c["id"] == "heart"
    ]
    tokens = (await api.get(f"/{username}/tokens", auth=session)).body
    [token] = [t for t in tokens if t["type"] == "app"]
    assert token["name"] == "heart-notes-example"
    events = (await api.get(f"/{username}/heart/events", auth=session)).body
    assert events[0]["createdBy"] == token["accessId"]  # the note, by the app's token
    assert channel["createdBy"] == token["createdBy"]  # both by the consent page's session
    assert errors == []


async def test_a_refusal_reaches_the_app(api: Api, browser: Any, other_site: str) -> None:
    username, session = await sign_up(api)
    errors: list[str] = []
    app = await start_app(browser, api, other_site, errors)
    consent = await consent_tab(app)
    await sign_in(consent, username)
    await consent.click("#refuse")
    await app.wait_for_selector("#status:has-text('Access refused (REFUSED_BY_USER)')")
    await consent.wait_for_url(f"{other_site}/app/index.html")
    assert (await api.get(f"/{username}/tokens", auth=session)).body == []
    assert [c["id"] for c in (await api.get(f"/{username}/channels", auth=session)).body] == [
        "diary"
    ]
    assert errors == []


async def test_an_expired_request_says_so_on_the_consent_page(make_api: Any, browser: Any) -> None:
    api = await make_api(access_request_ttl=1.0)
    reply = await api.post(
        "/access",
        {"requestingAppId": "late-app", "requestedPermissions": [{"channelId": "x"}]},
    )
    await asyncio.sleep(1.2)
    errors: list[str] = []
    page = await open_page(browser, errors)
    await page.goto(reply.body["authUrl"])
    await page.wait_for_selector("#done:not([hidden])")
    assert await page.text_content("#done-title") == "This request has expired"
    assert errors == []


async def test_a_second_request_reuses_the_token_and_changed_permissions_show_the_mismatch(
    api: Api, browser: Any, other_site: str
) -> None:
    username, session = await sign_up(api)
    errors: list[str] = []
    app = await start_app(browser, api, other_site, errors)
    consent = await consent_tab(app)
    await sign_in(consent, username)
    await consent.click("#accept")
    await app.wait_for_selector("#channels li")
    first = [t for t in (await api.get(f"/{username}/tokens", auth=session)).body]
    # The same app asks again: the browser is signed in already; the token is reused.
    await app.click("#request")
    again = await consent_tab(app)
    await again.wait_for_selector("#request:not([hidden])")
    notice = await again.text_content("#token-state")
    assert notice is not None and "its token is reused" in notice
    await again.click("#accept")
    await app.wait_for_selector("#status:has-text('Connected')")
    assert (await api.get(f"/{username}/tokens", auth=session)).body == first
    # The app asks for something else: the page shows what its token holds now.
    reply = await api.post(
        "/access",
        {
            "requestingAppId": "heart-notes-example",
            "requestedPermissions": [{"channelId": "diary", "level": "manage"}],
        },
    )
    changed = await open_page(browser, errors)  # a new profile: sign in again
    await changed.goto(reply.body["authUrl"])
    await sign_in(changed, username)
    notice = await changed.text_content("#token-state")
    assert notice is not None and "other permissions (contribute on channel heart)" in notice
    item = await changed.text_content("#permissions li")
    assert item is not None and "read, add to and manage your channel Diary" in item
    await changed.click("#accept")
    await changed.wait_for_selector("#done:not([hidden])")
    [token] = (await api.get(f"/{username}/tokens", auth=session)).body
    assert token["id"] == first[0]["id"]
    assert token["permissions"] == [{"channelId": "diary", "level": "manage"}]
    assert errors == []


async def test_a_hostile_return_url_is_refused_and_never_followed(
    api: Api, browser: Any, other_site: str
) -> None:
    username, _ = await sign_up(api)
    errors: list[str] = []
    page = await open_page(browser, errors)
    await page.goto(f"{other_site}/app/index.html")
    opened = await page.evaluate(
        """async (server) => {
            const res = await fetch(server + "/access", {method: "POST",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({requestingAppId: "evil", returnURL: "javascript:alert(1)",
                                    requestedPermissions: [{channelId: "diary"}]})});
            return [res.status, await res.json()];
        }""",
        origin(api),
    )
    assert opened[0] == 400 and opened[1]["id"] == "INVALID_PARAMETERS_FORMAT"
    # Had one slipped into the database, the page would still not run it.
    reply = await api.post(
        "/access",
        {
            "requestingAppId": "evil",
            "requestedPermissions": [{"channelId": "diary"}],
            "returnURL": "https://app.example/",
        },
    )
    key = reply.body["key"]
    pool = api.client.app[SERVICES_KEY].storage.pool
    await pool.execute(
        "UPDATE access_requests SET return_url = 'javascript:alert(document.domain)'"
        " WHERE key = $1",
        key,
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    await page.goto(reply.body["authUrl"])
    await sign_in(page, username)
    await page.click("#accept")
    await page.wait_for_load_state("networkidle")
    await asyncio.sleep(0.3)
    assert dialogs == []
    assert not page.url.startswith("javascript:")


async def test_another_site_can_neither_post_a_decision_nor_frame_the_page(
    api: Api, browser: Any, other_site: str
) -> None:
    username, session = await sign_up(api)
    reply = await api.post(
        "/access",
        {"requestingAppId": "victim-app", "requestedPermissions": [{"channelId": "diary"}]},
    )
    key = reply.body["key"]
    errors: list[str] = []
    page = await open_page(browser, errors)
    await page.goto(reply.body["authUrl"])
    await sign_in(page, username)  # the browser holds a live session cookie
    # A page of another site posts the decision with a form (the browser navigates to it).
    target = f"{origin(api)}/access/{key}/accept"
    async with page.expect_response(target) as answered:
        await page.goto(f"{other_site}/evil/form?target={target}")
    response = await answered.value
    assert response.status == 403
    assert (await response.json())["id"] == "FORBIDDEN"
    reply = await api.get(f"/{username}/access/{key}", auth=session)
    assert reply.body["status"] == "NEED_SIGNIN"
    assert (await api.get(f"/{username}/tokens", auth=session)).body == []
    # Framed by another site, the consent page does not load.
    await page.goto(f"{other_site}/evil/frame?target={origin(api)}/access/{key}")
    await asyncio.sleep(0.5)
    frame = page.frame_locator("#victim")
    assert await frame.locator("#request").count() == 0
    assert await frame.locator("#signin").count() == 0
