"""The dashboard's sharing and series UI in Debian's Chromium: the Share form (with a user, or
as a link), the incoming shares updating live on ``sharesChanged`` (accept, decline, a taken
bookmark name), the bookmarks list, and a series event's chart (maxPoints = its width, mean
with a min-max band when decimated) refetched on ``seriesChanged``."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import dashboard_page
from tests.conftest import Api
from tests.dashboard_page import (
    axe_violations,
    describe_violations,
    in_browser_loop,
    login,
    needs_chromium,
    no_horizontal_scroll,
    note,
    open_page,
    shot,
    url,
)

pytestmark = [needs_chromium, in_browser_loop]
# The run's one Chromium and this test's servers, in the browser tests' loop.
api, make_api, browser = dashboard_page.api, dashboard_page.make_api, dashboard_page.browser


async def garden(api: Api) -> tuple[str, str, str]:
    """A user with a channel holding a roses note and an admin note."""
    username, session = await api.user()
    channel = await api.channel(username, session, name="Garden")
    await note(api, username, session, channel, "roses bloom", tags=["roses"])
    await note(api, username, session, channel, "tax return", tags=["admin"])
    return username, session, channel


async def open_channel(page: Any, channel: str) -> None:
    await page.click(f"#channels button[data-id='{channel}']")
    await page.wait_for_selector(f"#channels button[data-id='{channel}'][aria-current='true']")


async def unfold(page: Any, details: str) -> None:
    if not await page.eval_on_selector(details, "d => d.open"):
        await page.click(f"{details} > summary")


async def no_serious_violations(page: Any) -> None:
    violations = await axe_violations(page)
    assert violations == [], describe_violations(violations)


# ---- sharing ------------------------------------------------------------------------------


async def test_a_channel_shared_with_a_user_through_the_form_appears_live_and_is_accepted(
    api: Api, browser: Any
) -> None:
    alice, alice_session, channel = await garden(api)
    bob, bob_session = await api.user()
    errors: list[str] = []
    bob_page = await open_page(browser, errors)
    await login(bob_page, url(api, f"/{bob}/"), bob)
    await bob_page.wait_for_selector("#shares-empty:not([hidden])")
    assert await bob_page.locator("#shares li").count() == 0

    alice_page = await open_page(browser, errors)
    await login(alice_page, url(api, f"/{alice}/"), alice)
    await open_channel(alice_page, channel)
    await unfold(alice_page, "#share")
    await alice_page.select_option("#share-level", "read")
    await alice_page.fill("#share-tags", "roses")
    await alice_page.check("#share-how-user")
    await alice_page.fill("#share-user", bob)
    await alice_page.fill("#share-name", "Alice's roses")
    await no_serious_violations(alice_page)
    await alice_page.click("#share-submit")
    await alice_page.wait_for_selector(f"#share-result:not([hidden]):has-text('{bob}')")
    assert not await alice_page.is_visible("#share-link")
    await shot(alice_page, "desktop-share-form")

    # the token the form created: the channel, read, narrowed to the tag, delivered to bob
    tokens = (await api.get(f"/{alice}/tokens", auth=alice_session)).body
    [token] = [t for t in tokens if t["name"] == "Alice's roses"]
    [permission] = token["permissions"]
    assert permission["channelId"] == channel and permission["level"] == "read"
    assert permission["tags"] == ["roses"]

    # bob's page hears sharesChanged: the share shows without a reload
    item = f"#shares li:has-text(\"Alice's roses\"):has-text('from {alice}')"
    await bob_page.wait_for_selector(item)
    await no_serious_violations(bob_page)
    await shot(bob_page, "desktop-share-incoming")
    await bob_page.click(f"{item} button.accept")
    await bob_page.wait_for_selector('#bookmarks li a:has-text("Alice\'s roses")')
    await bob_page.wait_for_selector("#shares-empty:not([hidden])")
    assert await bob_page.locator("#shares li").count() == 0
    href = await bob_page.get_attribute("#bookmarks li a", "href")
    assert href is not None and href.startswith(url(api, f"/{alice}/?auth="))
    assert await bob_page.text_content("#bookmarks li .url") == url(api, f"/{alice}/")
    bookmarks = (await api.get(f"/{bob}/bookmarks", auth=bob_session)).body
    assert [b["name"] for b in bookmarks] == ["Alice's roses"]
    assert (await api.get(f"/{bob}/shares", auth=bob_session)).body == []

    # the bookmark opens the shared data: the roses note, not the admin one
    reader = await open_page(browser, errors)
    await reader.goto(href)
    await reader.wait_for_selector("#events li:has-text('roses bloom')")
    assert await reader.locator("#events li:has-text('tax return')").count() == 0
    assert errors == []


async def test_declining_a_share_removes_it_and_makes_no_bookmark(api: Api, browser: Any) -> None:
    alice, alice_session, channel = await garden(api)
    bob, bob_session = await api.user()
    errors: list[str] = []
    page = await open_page(browser, errors, "phone")
    await login(page, url(api, f"/{bob}/"), bob)
    reply = await api.post(
        f"/{alice}/tokens",
        {
            "name": "for bob",
            "shareWith": bob,
            "permissions": [{"channelId": channel, "level": "read"}],
        },
        auth=alice_session,
    )
    assert reply.status == 201, reply
    await page.wait_for_selector("#shares li:has-text('for bob')")
    scroll, inner = await no_horizontal_scroll(page)
    assert scroll <= inner, f"the phone page is {scroll}px wide"
    await no_serious_violations(page)
    await shot(page, "phone-share-incoming")
    await page.click("#shares li:has-text('for bob') button.decline")
    await page.wait_for_selector("#shares-empty:not([hidden])")
    assert await page.locator("#shares li").count() == 0
    assert await page.locator("#bookmarks li").count() == 0
    assert (await api.get(f"/{bob}/shares", auth=bob_session)).body == []
    assert (await api.get(f"/{bob}/bookmarks", auth=bob_session)).body == []
    assert errors == []


async def test_accepting_a_share_whose_name_is_a_bookmark_asks_for_another_name(
    api: Api, browser: Any
) -> None:
    alice, alice_session, channel = await garden(api)
    bob, bob_session = await api.user()
    reply = await api.post(
        f"/{bob}/bookmarks",
        {"name": "garden", "url": url(api, f"/{alice}/"), "accessToken": "some-token-1234"},
        auth=bob_session,
    )
    assert reply.status == 201, reply
    reply = await api.post(
        f"/{alice}/tokens",
        {
            "name": "garden",
            "shareWith": bob,
            "permissions": [{"channelId": channel, "level": "read"}],
        },
        auth=alice_session,
    )
    assert reply.status == 201, reply
    errors: list[str] = []
    page = await open_page(browser, errors)
    await login(page, url(api, f"/{bob}/"), bob)
    await page.click("#shares li button.accept")
    await page.wait_for_selector("#error:not([hidden]):has-text('ITEM_NAME_ALREADY_EXISTS')")
    assert await page.locator("#shares li").count() == 1, "a failed accept keeps the share"
    await page.fill("#shares li input.rename", "alice's garden")
    await page.click("#shares li button.accept")
    await page.wait_for_selector('#bookmarks li a:has-text("alice\'s garden")')
    await page.wait_for_selector("#shares-empty:not([hidden])")
    names = sorted(b["name"] for b in (await api.get(f"/{bob}/bookmarks", auth=bob_session)).body)
    assert names == ["alice's garden", "garden"]
    assert errors == []


async def test_a_link_share_shows_a_link_that_reads_the_channel_within_its_dates(
    api: Api, browser: Any
) -> None:
    alice, alice_session, channel = await garden(api)
    errors: list[str] = []
    page = await open_page(browser, errors)
    await login(page, url(api, f"/{alice}/"), alice)
    await open_channel(page, channel)
    await unfold(page, "#share")
    await page.check("#share-how-link")
    assert not await page.is_visible("#share-user")
    today = time.strftime("%Y-%m-%d", time.localtime())
    yesterday = time.strftime("%Y-%m-%d", time.localtime(time.time() - 86400))
    await page.fill("#share-from", yesterday)
    await page.fill("#share-to", today)
    await page.fill("#share-name", "garden link")
    await page.click("#share-submit")
    await page.wait_for_selector("#share-link:not([hidden])")
    href = await page.get_attribute("#share-link", "href")
    assert href is not None and href.startswith(url(api, f"/{alice}/?auth="))
    assert await page.text_content("#share-link") == href
    await no_serious_violations(page)

    token = parse_qs(urlsplit(href).query)["auth"][0]
    tokens = (await api.get(f"/{alice}/tokens", auth=alice_session)).body
    [created] = [t for t in tokens if t["name"] == "garden link"]
    assert created["id"] == token
    [permission] = created["permissions"]
    assert permission["channelId"] == channel and permission["level"] == "read"
    # the dates as local days: from the start of yesterday to the end of today
    assert permission["fromTime"] <= time.time() - 86400 + 1
    assert permission["toTime"] >= time.time()
    assert permission["toTime"] - permission["fromTime"] == pytest.approx(2 * 86400 - 1, abs=3601)

    reader = await open_page(browser, errors)
    await reader.goto(href)
    await reader.wait_for_selector("#events li:has-text('roses bloom')")
    await reader.wait_for_selector("#events li:has-text('tax return')")
    assert "shared link" in (await reader.text_content("#who") or "")
    assert not await reader.is_visible("#share"), "a link offers no Share form"
    assert not await reader.is_visible("#sharing"), "nor the shares of a session"
    assert errors == []


# ---- series -------------------------------------------------------------------------------


async def add_points(
    api: Api, username: str, auth: str, channel: str, event: str, points: Any
) -> None:
    body = {"format": "flatJSON", "fields": ["deltaTime", "value"], "points": points}
    reply = await api.post(f"/{username}/{channel}/events/{event}/series", body, auth=auth)
    assert reply.status == 200, reply


async def chart_data(page: Any) -> dict[str, Any]:
    return dict(await page.eval_on_selector("#series-chart", "f => f.chartData"))


async def test_a_series_event_is_charted_and_follows_new_points_live(
    api: Api, browser: Any
) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session, name="Watch")
    start = time.time() - 600
    reply = await api.post(
        f"/{username}/{channel}/events",
        {"type": "series:frequency/bpm", "time": start},
        auth=session,
    )
    assert reply.status == 201, reply
    event = str(reply.body["id"])
    await add_points(api, username, session, channel, event, [[0, 60], [1, 62], [2, 64]])

    errors: list[str] = []
    page = await open_page(browser, errors)
    asked: list[str] = []
    page.on("request", lambda r: "/series?" in r.url and asked.append(r.url))
    await login(page, url(api, f"/{username}/"), username)
    await open_channel(page, channel)
    button = f"#events li[data-id='{event}'] button.chart"
    await page.click(button)
    await page.wait_for_selector("#series:not([hidden]) #series-chart[data-points='3'] canvas")
    assert await page.get_attribute(button, "aria-pressed") == "true"
    data = await chart_data(page)
    assert data["decimated"] is False
    assert data["x"] == pytest.approx([start, start + 1, start + 2])
    assert data["y"] == [60, 62, 64]
    # maxPoints is the chart's width in pixels
    width = await page.eval_on_selector("#series-chart .plot", "p => p.clientWidth")
    assert parse_qs(urlsplit(asked[-1]).query)["maxPoints"] == [str(width)]

    # thousands of new points: seriesChanged, and the chart turns to a mean with a band
    points = [[3 + i * 0.1, 50 + i % 40] for i in range(5000)]
    await add_points(api, username, session, channel, event, points)
    await page.wait_for_function(
        "() => document.querySelector('#series-chart').chartData?.decimated === true"
    )
    data = await chart_data(page)
    assert 3 < len(data["x"]) <= width
    assert len(data["y"]) == len(data["min"]) == len(data["max"]) == len(data["x"])
    assert all(
        lo <= mean <= hi for lo, mean, hi in zip(data["min"], data["y"], data["max"], strict=True)
    )
    assert min(data["min"]) == 50 and max(data["max"]) == 89
    assert data["x"][0] == pytest.approx(start)
    assert "mean" in (await page.text_content("#series-info") or "")
    await no_serious_violations(page)
    await shot(page, "desktop-series")

    # a few more points at the end: the chart follows again, still without a reload
    await add_points(api, username, session, channel, event, [[1000, 120]])
    await page.wait_for_function(
        "() => Math.max(...document.querySelector('#series-chart').chartData.max) === 120"
    )
    # the event's duration follows its points (seriesChanged: no eventsChanged for points)
    await page.wait_for_selector(f"#events li[data-id='{event}']:has-text('duration 16m 40s')")
    await page.click("#series-close")
    assert not await page.is_visible("#series")
    assert errors == []


async def test_the_series_chart_fits_a_phone(api: Api, browser: Any) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session, name="Watch")
    reply = await api.post(
        f"/{username}/{channel}/events",
        {"type": "series:frequency/bpm", "time": time.time() - 600},
        auth=session,
    )
    assert reply.status == 201, reply
    event = str(reply.body["id"])
    await add_points(api, username, session, channel, event, [[i, 60 + i % 7] for i in range(2000)])
    errors: list[str] = []
    page = await open_page(browser, errors, "phone")
    await login(page, url(api, f"/{username}/"), username)
    await open_channel(page, channel)
    await page.click(f"#events li[data-id='{event}'] button.chart")
    await page.wait_for_function(
        "() => document.querySelector('#series-chart').chartData?.decimated === true"
    )
    data = await chart_data(page)
    width = await page.eval_on_selector("#series-chart .plot", "p => p.clientWidth")
    assert len(data["x"]) <= width < 390
    scroll, inner = await no_horizontal_scroll(page)
    assert scroll <= inner, f"the phone page is {scroll}px wide"
    await shot(page, "phone-series")
    assert errors == []
