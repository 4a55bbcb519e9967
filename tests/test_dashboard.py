"""The dashboard in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: apt-get install -y chromium (.ci/run does it)"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        instance = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        await instance.close()


async def open_page(browser: Any, errors: list[str]) -> Any:
    page = await browser.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


async def login(page: Any, url: str, username: str) -> None:
    await page.goto(url)
    await page.fill("#login-username", username)
    await page.fill("#login-password", "secret-pw")
    await page.click("#login-submit")
    await page.wait_for_selector("#dashboard:not([hidden])")
    await page.wait_for_selector("#conn-state[data-state='connected']")


async def test_a_user_logs_in_records_events_and_sees_other_writes_live(
    api: Api, browser: Any, tmp_path: Path
) -> None:
    username = await api.register()
    errors: list[str] = []
    page = await open_page(browser, errors)
    await login(page, str(api.client.make_url(f"/{username}/")), username)

    await page.fill("#channel-name", "Diary")
    await page.click("#channel-create")
    await page.wait_for_selector("#channels li.selected:has-text('Diary')")
    await page.fill("#folder-name", "Health")
    await page.click("#folder-create")
    await page.wait_for_selector("#folders span:has-text('Health')")

    await page.fill("#note-text", "written in the page")
    await page.fill("#note-tags", "ui, test")
    await page.click("#note-submit")
    await page.wait_for_selector("#events li:has-text('written in the page')")

    # a write from outside the page (curl-equivalent HTTP) appears without a reload
    session = await api.login(username)
    [channel] = (await api.get(f"/{username}/channels", auth=session)).body
    reply = await api.post(
        f"/{username}/{channel['id']}/events",
        {"value": {"type": "mass:kg", "value": 71.5}},
        auth=session,
    )
    assert reply.status == 201, reply
    await page.wait_for_selector("#events li:has-text('mass:kg: 71.5')", timeout=3_000)
    await page.wait_for_selector("#chart canvas")

    # a period started in a folder shows a running timer; stop ends it
    await page.select_option("#period-folder", label="Health")
    await page.click("#period-start")
    await page.wait_for_selector("#events .running")
    await page.click("#period-stop")
    await page.wait_for_selector("#events .running", state="detached")

    # a photo uploaded with an event shows as a thumbnail (fetched through its readToken)
    photo = tmp_path / "dot.png"
    photo.write_bytes(base64.b64decode(PNG_1PX))
    await page.set_input_files("#photo-file", str(photo))
    await page.click("#photo-submit")
    thumb = await page.wait_for_selector("#events img[alt='dot.png']")
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb)

    await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    # a reload keeps the user logged in; logout ends the server session
    await page.reload()
    await page.wait_for_selector("#dashboard:not([hidden])")
    stored = await page.evaluate(f"localStorage.getItem('pryvrt:session:{username}')")
    await page.click("#logout")
    await page.wait_for_selector("#login:not([hidden])")
    assert (await api.get(f"/{username}/channels", auth=stored)).status == 401
    assert errors == []


async def test_api_errors_are_shown_not_swallowed(api: Api, browser: Any) -> None:
    username = await api.register()
    errors: list[str] = []
    page = await open_page(browser, errors)
    await page.goto(str(api.client.make_url(f"/{username}/")))
    await page.fill("#login-username", username)
    await page.fill("#login-password", "wrong-password")
    await page.click("#login-submit")
    await page.wait_for_selector("#error:has-text('INVALID_CREDENTIALS')")


async def test_a_shared_link_opens_the_dashboard_with_the_token(api: Api, browser: Any) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session, name="Shared")
    await api.post(
        f"/{username}/{channel}/events",
        {"value": {"type": "note:txt", "value": "hi"}},
        auth=session,
    )
    token = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    errors: list[str] = []
    page = await open_page(browser, errors)
    await page.goto(str(api.client.make_url(f"/{username}/?auth={token}")))
    await page.wait_for_selector("#events li:has-text('note:txt: hi')")
    assert "shared link" in (await page.text_content("#who") or "")
    assert errors == []
