"""Driving the dashboard in Debian's Chromium (Playwright): the browser, pages at a desktop or a
phone size, the login, screenshots for review, and the axe-core accessibility check."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pryvrt.config import Settings
from tests.conftest import Api, AppFactory, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The mark of every test module that drives Chromium.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: apt-get install -y chromium (.ci/run does it)"
)
ROOT = Path(__file__).resolve().parent.parent
# Screenshots of the main states, written by the tests for review (README shows two of them,
# copied to docs/screenshots/). PRYVRT_SCREENSHOTS moves the folder.
SHOTS = Path(os.environ.get("PRYVRT_SCREENSHOTS") or ROOT / "build" / "screenshots")
# axe-core, vendored from npm (tests/vendor/axe-core/README.md): nothing is downloaded.
AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"

VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}


@contextlib.asynccontextmanager
async def launched() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        assert CHROMIUM is not None
        instance = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()


# -- one Chromium for every browser test ---------------------------------------------------
#
# Starting Playwright's driver and a Chromium takes 2-6 s on a busy machine, longer than most
# browser tests themselves. So one Chromium (and one driver) serves the whole run, and each
# test gets browser contexts of its own (cookies, storage, cache), all closed after it. The
# driver belongs to the event loop it started in: the browser tests, and the async fixtures
# they use, run in the session's loop (``in_browser_loop``, ``api``, ``make_api``, ``browser``
# below, which a module assigns to its own names to use them; shared_chromium is in
# tests/conftest.py, to be one for the whole run).
in_browser_loop = pytest.mark.asyncio(loop_scope="session")


class SharedChromium:
    """The run's Chromium, launched on first use and again if it went away (a crash ends
    one test, not every browser test after it)."""

    def __init__(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        self.instance: Any = None

    async def get(self) -> Any:
        if self.instance is None or not self.instance.is_connected():
            await self.close()
            self.instance = await self.stack.enter_async_context(launched())
        return self.instance

    async def close(self) -> None:
        self.instance = None
        with contextlib.suppress(Exception):  # a crashed browser cannot be closed cleanly
            await self.stack.aclose()
        self.stack = contextlib.AsyncExitStack()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(shared_chromium: SharedChromium) -> AsyncIterator[Any]:
    """The shared Chromium; the contexts (and their pages) a test opened are closed after it,
    so no page of a finished test keeps a socket or a timer running. An async event listener
    (``page.on``) that may fail should keep its errors for the test to check."""
    from playwright.async_api import Error as PlaywrightError

    instance = await shared_chromium.get()
    try:
        yield instance
    finally:
        for context in list(instance.contexts):
            with contextlib.suppress(Exception):
                await context.close()
        # Playwright raises the error of a failed async event listener at the connection's
        # next call: one more call now makes it this test's error, not the next test's.
        try:
            await (await instance.new_context()).close()
        except PlaywrightError as error:
            if "has been closed" not in error.message:  # not a listener cut by the closing
                raise


@pytest_asyncio.fixture(loop_scope="session")
async def make_api(settings: Settings) -> AsyncIterator[AppFactory]:
    """``make_api`` of tests/conftest.py, in the browser tests' loop."""
    async with serving(settings) as factory:
        yield factory


@pytest_asyncio.fixture(loop_scope="session")
async def api(make_api: AppFactory) -> Api:
    """``api`` of tests/conftest.py, in the browser tests' loop."""
    return await make_api()


async def open_page(browser: Any, errors: list[str], size: str = "desktop") -> Any:
    """A page in a browser profile of its own (cookies, storage) at that size; uncaught page
    errors go to ``errors``."""
    context = await browser.new_context(**VIEWPORTS[size])
    page = await context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


async def login(page: Any, url: str, username: str, password: str = "secret-pw") -> None:
    await page.goto(url)
    await page.fill("#login-username", username)
    await page.fill("#login-password", password)
    await page.click("#login-submit")
    await page.wait_for_selector("#dashboard:not([hidden])")
    await page.wait_for_selector("#conn-state[data-state='connected']")
    # The socket's connect refetches everything (set busy in the same task as "connected"):
    # a test acting before that reload ends measures or edits what it replaces.
    await page.wait_for_selector("#content[aria-busy='false']", state="attached")


async def shot(page: Any, name: str, full_page: bool = True) -> Path:
    """Save a screenshot of the page as it is now (``full_page=False``: the screen only)."""
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA rules on the page as shown; the serious and critical ones.

    The page's CSP allows only its own scripts: axe is evaluated through the DevTools
    protocol, which the CSP does not govern (the page itself is not changed)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    result = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
                resultTypes: ["violations"],
            });
            return r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" ") + " " + (n.failureSummary || "")),
            }));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    return json.dumps(violations, indent=1)[:4000]


async def no_horizontal_scroll(page: Any) -> tuple[int, int]:
    """The page's scroll width and the viewport's width."""
    sizes = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return int(sizes[0]), int(sizes[1])


NOTE = "note:txt"


def url(api: Any, path: str) -> str:
    """The absolute URL of ``path`` on the test server of ``api``."""
    return str(api.client.make_url(path))


async def note(api: Any, username: str, auth: str, channel: str, text: str, **extra: Any) -> str:
    """A note event written over HTTP; its id."""
    reply = await api.post(
        f"/{username}/{channel}/events",
        {"value": {"type": NOTE, "value": text}, **extra},
        auth=auth,
    )
    assert reply.status == 201, reply
    return str(reply.body["id"])
