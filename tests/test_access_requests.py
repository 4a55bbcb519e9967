"""App access requests (API.md §13) over real HTTP: an app asks, the user decides with a
session (API clients) or on the consent page with the dashboard's cookie (the page's calls
are refused from anywhere else), the app polls for its token; app tokens (§13 end); and no
token secret in any answer but the token's creation and a session's tokens.get. The whole
flow in a real browser: tests/test_consent_browser.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from pryvrt.app import create_app
from pryvrt.config import Settings
from tests.conftest import Api, Reply
from tests.test_browser_session import dashboard_login, origin, page_headers

HEART = [{"channelId": "heart", "defaultName": "Heart", "level": "manage"}]


def ask(perms: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    return {"requestingAppId": "heart-app", "requestedPermissions": perms or HEART, **fields}


async def open_request(api: Api, **fields: Any) -> dict[str, Any]:
    reply = await api.post("/access", ask(**fields))
    assert reply.status == 201, reply
    return dict(reply.body)


async def poll(api: Api, key: str) -> Reply:
    """The app's poll, waiting out the announced rate when it answers 429."""
    for _ in range(5):
        reply = await api.get(f"/access/{key}")
        if reply.status != 429:
            return reply
        await asyncio.sleep(reply.body["data"]["retryAfter"])
    raise AssertionError("still 429")


async def decide(api: Api, username: str, session: str, key: str, verb: str) -> Reply:
    return await api.post(f"/{username}/access/{key}/{verb}", auth=session)


async def test_the_app_gets_a_token_that_reaches_what_it_asked_for_and_nothing_else(
    api: Api,
) -> None:
    username, session = await api.user()
    other = await api.channel(username, session, id="diary", name="Diary")
    perms = [
        {
            "channelId": "heart",
            "defaultName": "Heart",
            "level": "read",
            "folderPermissions": [
                {"folderId": "rate", "defaultName": "Rate", "level": "contribute"},
                {"folderId": "night", "defaultName": "Night", "parentId": "rate", "level": "read"},
            ],
        }
    ]
    opened = await open_request(api, perms=perms, deviceName="Phone")
    assert opened["status"] == "NEED_SIGNIN"
    assert opened["authUrl"] == opened["poll"] == f"{origin(api)}/access/{opened['key']}"
    assert opened["pollRateMs"] == 1000
    assert (await poll(api, opened["key"])).body["status"] == "NEED_SIGNIN"
    reply = await decide(api, username, session, opened["key"], "accept")
    assert reply.status == 200 and reply.body == {"status": "ACCEPTED", "returnURL": None}, reply
    answer = (await poll(api, opened["key"])).body
    token = answer["token"]
    assert answer == {
        "status": "ACCEPTED",
        "username": username,
        "token": token,
        "apiEndpoint": f"http://{token}@{origin(api).split('://')[1]}/{username}/",
    }
    # What was missing was created, by the accepting session, with the requested names.
    channels = (await api.get(f"/{username}/channels", auth=session)).body
    heart = next(c for c in channels if c["id"] == "heart")
    assert heart["name"] == "Heart"
    [rate] = (await api.get(f"/{username}/heart/folders", auth=session)).body
    assert (rate["id"], rate["name"], rate["children"][0]["id"]) == ("rate", "Rate", "night")
    tokens = (await api.get(f"/{username}/tokens", auth=session)).body
    [app] = [t for t in tokens if t["id"] == token]
    assert app["type"] == "app" and app["name"] == "heart-app" and app["deviceName"] == "Phone"
    assert heart["createdBy"] == app["createdBy"] == rate["createdBy"]
    assert app["permissions"] == [
        {
            "channelId": "heart",
            "level": "read",
            "folderPermissions": [
                {"folderId": "rate", "level": "contribute"},
                {"folderId": "night", "level": "read"},
            ],
        }
    ]
    # The token reads the new channel and nothing else.
    listed = (await api.get(f"/{username}/channels", auth=token)).body
    assert [c["id"] for c in listed] == ["heart"]
    assert (
        await api.post(f"/{username}/heart/events", {"folderId": "rate"}, auth=token)
    ).status == 201
    reply = await api.post(f"/{username}/heart/events", {"folderId": None}, auth=token)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")
    reply = await api.get(f"/{username}/{other}/events", auth=token)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")
    # Answered once: a second decision is refused.
    reply = await decide(api, username, session, opened["key"], "refuse")
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")


async def test_a_grant_on_the_events_with_no_folder_survives_the_request(api: Api) -> None:
    username, session = await api.user()
    await api.channel(username, session, id="diary", name="Diary")
    perms = [
        {
            "channelId": "diary",
            "level": "read",
            "folderPermissions": [{"folderId": None, "level": "contribute"}],
        }
    ]
    opened = await open_request(api, perms=perms)
    review = (await api.get(f"/{username}/access/{opened['key']}", auth=session)).body
    assert review["requestedPermissions"] == perms
    assert review["permissions"][0]["folderPermissions"] == [
        {"folderId": None, "level": "contribute", "state": "no-folder"}
    ]
    assert (await decide(api, username, session, opened["key"], "accept")).status == 200
    token = (await poll(api, opened["key"])).body["token"]
    assert (await api.post(f"/{username}/diary/events", {}, auth=token)).status == 201


async def test_a_second_request_reuses_the_app_token_and_changed_permissions_replace_its_own(
    api: Api,
) -> None:
    username, session = await api.user()
    first = await open_request(api)
    assert (await decide(api, username, session, first["key"], "accept")).status == 200
    token = (await poll(api, first["key"])).body["token"]
    check = await api.post(
        f"/{username}/tokens/check-app",
        {"requestingAppId": "heart-app", "requestedPermissions": HEART},
        auth=session,
    )
    assert check.status == 200 and set(check.body) == {"matchingToken"}, check
    assert token not in str(check.body)  # named by accessId
    # The same request again: the same token.
    second = await open_request(api)
    review = (await api.get(f"/{username}/access/{second['key']}", auth=session)).body
    assert review["matchingToken"]["accessId"] == check.body["matchingToken"]["accessId"]
    assert (await decide(api, username, session, second["key"], "accept")).status == 200
    assert (await poll(api, second["key"])).body["token"] == token
    # Other permissions: the review shows the mismatch; accepting replaces its permissions.
    narrower = [{"channelId": "heart", "level": "read"}]
    check = await api.post(
        f"/{username}/tokens/check-app",
        {"requestingAppId": "heart-app", "requestedPermissions": narrower},
        auth=session,
    )
    assert check.body["checkedPermissions"] == narrower
    assert check.body["mismatchingToken"]["permissions"] == [
        {"channelId": "heart", "level": "manage"}
    ]
    third = await open_request(api, perms=narrower)
    review = (await api.get(f"/{username}/access/{third['key']}", auth=session)).body
    assert review["mismatchingToken"]["permissions"] == [{"channelId": "heart", "level": "manage"}]
    assert review["permissions"] == [
        {
            "channelId": "heart",
            "level": "read",
            "state": "exists",
            "name": "Heart",
            "trashed": False,
        }
    ]
    assert (await decide(api, username, session, third["key"], "accept")).status == 200
    assert (await poll(api, third["key"])).body["token"] == token
    reply = await api.put(f"/{username}/channels/heart", {"name": "H"}, auth=token)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")  # read only now


async def test_a_refused_request_tells_the_app_and_creates_nothing(api: Api) -> None:
    username, session = await api.user()
    opened = await open_request(api, returnURL="https://app.example/done?from=pryvrt")
    reply = await decide(api, username, session, opened["key"], "refuse")
    assert reply.body == {"status": "REFUSED", "returnURL": "https://app.example/done?from=pryvrt"}
    assert (await poll(api, opened["key"])).body == {
        "status": "REFUSED",
        "reasonId": "REFUSED_BY_USER",
        "message": "the user refused to give access",
    }
    assert (await api.get(f"/{username}/channels", auth=session)).body == []
    assert (await api.get(f"/{username}/tokens", auth=session)).body == []
    reply = await api.get(f"/access/{opened['key']}/return", allow_redirects=False)
    assert reply.status == 303
    back = urlsplit(reply.headers["Location"])
    assert (back.scheme, back.netloc, back.path) == ("https", "app.example", "/done")
    assert parse_qs(back.query) == {
        "from": ["pryvrt"],
        "status": ["REFUSED"],
        "key": [opened["key"]],
    }


async def test_going_back_to_the_app_carries_the_answer_once_decided(api: Api) -> None:
    username, session = await api.user()
    opened = await open_request(api, returnURL="http://localhost:8000/app.html")
    reply = await api.get(f"/access/{opened['key']}/return", allow_redirects=False)
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_ACCESS_REQUEST")  # not yet
    assert (await decide(api, username, session, opened["key"], "accept")).status == 200
    reply = await api.get(f"/access/{opened['key']}/return", allow_redirects=False)
    assert reply.status == 303 and reply.headers["Cache-Control"] == "no-store"
    query = parse_qs(urlsplit(reply.headers["Location"]).query)
    token = (await poll(api, opened["key"])).body["token"]
    assert query["status"] == ["ACCEPTED"] and query["key"] == [opened["key"]]
    assert query["apiEndpoint"] == [f"http://{token}@{origin(api).split('://')[1]}/{username}/"]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.domain)",
        "JavaScript://app.example/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/relative/path",
        "ftp://app.example/",
        "http:///no-host",
        "https://app.example/with space",
        "https://app.example/\nline",
        "https://app.example/" + "x" * 2000,
    ],
)
async def test_a_return_url_other_than_http_or_https_is_refused(api: Api, url: str) -> None:
    reply = await api.post("/access", ask(returnURL=url))
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
    assert "returnURL" in reply.body["data"]


@pytest.mark.parametrize(
    ("perms", "field"),
    [
        ([], "requestedPermissions"),
        ([{"channelId": "*", "defaultName": "All"}], "requestedPermissions.0"),
        ([{"channelId": "bad id", "defaultName": "X"}], "requestedPermissions.0"),
        ([{"channelId": "events", "defaultName": "X"}], "requestedPermissions.0"),
        ([{"channelId": "x", "level": "owner"}], "requestedPermissions.0.level"),
    ],
)
async def test_malformed_requests_are_refused(
    api: Api, perms: list[dict[str, Any]], field: str
) -> None:
    reply = await api.post(
        "/access", ask(perms) if perms else {**ask(), "requestedPermissions": []}
    )
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
    assert field in reply.body["data"]
    reply = await api.post("/access", {**ask(), "requestingAppId": "no spaces"})
    assert "requestingAppId" in reply.body["data"]


async def test_request_keys_are_long_random_and_distinct(make_api: Any) -> None:
    api = await make_api(access_requests_per_minute=1000)
    keys = [(await open_request(api))["key"] for _ in range(40)]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", k) for k in keys)  # 256 bits, base64url
    reply = await api.get("/access/" + keys[0][:-1] + ("A" if keys[0][-1] != "A" else "B"))
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_ACCESS_REQUEST")


async def test_an_expired_request_is_unknown_to_the_app_and_the_user(make_api: Any) -> None:
    api = await make_api(access_request_ttl=0.5)
    username, session = await api.user()
    opened = await open_request(api)
    await asyncio.sleep(0.7)
    reply = await api.get(f"/access/{opened['key']}")
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_ACCESS_REQUEST")
    for reply in (
        await decide(api, username, session, opened["key"], "accept"),
        await api.get(f"/{username}/access/{opened['key']}", auth=session),
    ):
        assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_ACCESS_REQUEST"), reply
    assert (await api.get(f"/{username}/channels", auth=session)).body == []


async def test_polling_faster_than_the_announced_rate_answers_429(make_api: Any) -> None:
    api = await make_api(access_poll_ms=600)
    opened = await open_request(api)
    assert opened["pollRateMs"] == 600
    assert (await api.get(f"/access/{opened['key']}")).status == 200
    reply = await api.get(f"/access/{opened['key']}")
    assert (reply.status, reply.body["id"]) == (429, "TOO_MANY_REQUESTS")
    assert reply.headers["Retry-After"] == "1"
    await asyncio.sleep(0.31)  # half the announced rate is tolerated
    assert (await api.get(f"/access/{opened['key']}")).status == 200


async def test_opening_requests_is_limited_per_client_address(make_api: Any) -> None:
    api = await make_api(access_requests_per_minute=3)
    for _ in range(3):
        await open_request(api)
    reply = await api.post("/access", ask())
    assert (reply.status, reply.body["id"]) == (429, "TOO_MANY_REQUESTS")
    assert int(reply.headers["Retry-After"]) > 0


async def test_a_request_answered_by_one_user_is_unknown_to_another(api: Api) -> None:
    alice, alice_session = await api.user()
    bob, bob_session = await api.user()
    opened = await open_request(api)
    assert (await decide(api, alice, alice_session, opened["key"], "accept")).status == 200
    for reply in (
        await api.get(f"/{bob}/access/{opened['key']}", auth=bob_session),
        await decide(api, bob, bob_session, opened["key"], "refuse"),
    ):
        assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_ACCESS_REQUEST"), reply


async def test_a_request_that_cannot_be_fulfilled_changes_nothing(api: Api) -> None:
    username, session = await api.user()
    await api.channel(username, session, id="mine", name="Heart")  # the name is taken
    perms = [
        {"channelId": "heart", "defaultName": "Heart", "level": "read"},
        {
            "channelId": "mine",
            "level": "read",
            "folderPermissions": [
                {"folderId": "f", "defaultName": "F", "parentId": "nowhere", "level": "read"}
            ],
        },
    ]
    opened = await open_request(api, perms=perms)
    review = (await api.get(f"/{username}/access/{opened['key']}", auth=session)).body
    assert len(review["problems"]) == 2, review
    reply = await decide(api, username, session, opened["key"], "accept")
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert [c["id"] for c in (await api.get(f"/{username}/channels", auth=session)).body] == [
        "mine"
    ]
    assert (await api.get(f"/{username}/mine/folders", auth=session)).body == []
    assert (await poll(api, opened["key"])).body["status"] == "NEED_SIGNIN"


# -- the consent page's calls: the cookie, from the page only --------------------------------


@pytest.fixture
async def browser_api(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> AsyncIterator[Api]:
    """A client that keeps no cookies: each call sends the one it means to."""
    app = create_app(replace(settings))
    yield Api(await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar()))


async def test_the_page_decides_with_the_cookie_session_and_only_from_itself(
    browser_api: Api,
) -> None:
    api = browser_api
    username = await api.register()
    _, cookie = await dashboard_login(api, username)
    opened = await open_request(api)
    key = opened["key"]
    reply = await api.get(f"/access/{key}/review", headers=page_headers(api))
    assert (reply.status, reply.body["id"]) == (401, "INVALID_TOKEN")  # sign in first
    reply = await api.get(f"/access/{key}/review", headers=page_headers(api, cookie))
    assert reply.status == 200 and reply.body["username"] == username, reply
    # A form of another site (no CSRF header, its own Origin), a page of another origin
    # holding the header, a sandboxed document: refused, and the request stays open.
    for headers in (
        {"Cookie": page_headers(api, cookie)["Cookie"], "Origin": "https://evil.example"},
        page_headers(api, cookie, Origin="https://evil.example"),
        page_headers(api, cookie, Origin="null"),
        {**page_headers(api, cookie), "X-Pryvrt-CSRF": "0"},
    ):
        reply = await api.post(f"/access/{key}/accept", headers=headers)
        assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN"), (headers, reply)
    assert (await poll(api, key)).body["status"] == "NEED_SIGNIN"
    reply = await api.post(f"/access/{key}/accept", headers=page_headers(api, cookie))
    assert reply.status == 200 and reply.body["status"] == "ACCEPTED", reply
    assert "token" not in str(reply.body)
    assert (await poll(api, key)).body["status"] == "ACCEPTED"


async def test_the_consent_page_is_served_unframeable_to_browsers(api: Api) -> None:
    opened = await open_request(api)
    reply = await api.get(f"/access/{opened['key']}", headers={"Accept": "text/html"})
    assert reply.status == 200 and b"consent.js" in reply.body
    policy = reply.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert reply.headers["X-Frame-Options"] == "DENY"
    # The page's poll (JSON) is not an HTML page: it does not count as a browser view.
    reply = await api.get(f"/access/{opened['key']}")
    assert reply.body == {"status": "NEED_SIGNIN", "pollRateMs": 1000}
    assert reply.headers["Cache-Control"] == "no-store"


# -- app tokens (API.md §13 end) ----------------------------------------------------------------


async def app_token(api: Api, username: str, session: str, perms: list[dict[str, Any]]) -> str:
    opened = await open_request(api, perms=perms)
    assert (await decide(api, username, session, opened["key"], "accept")).status == 200
    return str((await poll(api, opened["key"])).body["token"])


async def test_an_app_token_manages_only_the_shared_tokens_it_created(api: Api) -> None:
    username, session = await api.user()
    await api.channel(username, session, id="other", name="Other")
    app = await app_token(api, username, session, HEART)
    theirs = await api.shared_token(username, session, [{"channelId": "heart", "level": "read"}])
    within = [{"channelId": "heart", "level": "contribute"}]
    reply = await api.post(
        f"/{username}/tokens", {"name": "doctor", "permissions": within}, auth=app
    )
    assert reply.status == 201 and set(reply.body) == {"id", "accessId"}, reply
    mine, mine_access = reply.body["id"], reply.body["accessId"]
    assert (await api.get(f"/{username}/heart/events", auth=mine)).status == 200
    for body in (
        {"name": "wider", "permissions": [{"channelId": "other", "level": "read"}]},
        {"name": "all", "permissions": [{"channelId": "*", "level": "read"}]},
        {"name": "an-app", "type": "app", "permissions": within},
    ):
        reply = await api.post(f"/{username}/tokens", body, auth=app)
        assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN"), body
    listed = (await api.get(f"/{username}/tokens", auth=app)).body
    assert [t["accessId"] for t in listed] == [mine_access] and "id" not in listed[0]
    reply = await api.put(f"/{username}/tokens/{mine_access}", {"name": "dr"}, auth=app)
    assert reply.status == 200, reply
    tokens = {t["id"]: t for t in (await api.get(f"/{username}/tokens", auth=session)).body}
    theirs_access = tokens[theirs]["accessId"]
    for ref in (theirs, theirs_access, app):
        reply = await api.delete(f"/{username}/tokens/{ref}", auth=app)
        assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_TOKEN"), ref
    assert (await api.delete(f"/{username}/tokens/{mine_access}", auth=app)).status == 200
    assert (await api.get(f"/{username}/heart/events", auth=mine)).status == 401
    # A shared token manages no token at all.
    reply = await api.get(f"/{username}/tokens", auth=theirs)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")


# -- no secret shown -------------------------------------------------------------------------


async def test_no_token_secret_in_any_answer_but_its_creation_and_a_sessions_token_list(
    api: Api,
) -> None:
    """Every answer of a tour of the API (lists, items, tokens, reviews, checks, errors) is
    searched for every token secret; only the token's creation (and the app's poll, which
    hands it over) and tokens.get for a session may hold one."""
    username, session = await api.user()
    personal = await api.personal_token(username, session)
    app = await app_token(api, username, session, HEART)
    reply = await api.post(
        f"/{username}/tokens",
        {"name": "shared", "permissions": [{"channelId": "heart", "level": "read"}]},
        auth=personal,
    )
    shared = reply.body["id"]
    secrets = {"personal": personal, "app": app, "shared": shared, "session": session}
    await api.post(f"/{username}/heart/folders", {"id": "f", "name": "F"}, auth=app)
    await api.post(f"/{username}/heart/events", {"folderId": "f", "tags": ["t"]}, auth=app)
    opened = await open_request(api, perms=[{"channelId": "heart", "level": "read"}])
    answers: list[tuple[str, Any]] = []
    for who, credential in (("session", session), ("personal", personal), ("app", app)):
        for path in (
            "/channels",
            "/heart/folders",
            "/heart/events",
            "/heart/events/running",
            "/tokens",
            f"/access/{opened['key']}",
            "/user-info",
        ):
            reply = await api.get(f"/{username}{path}", auth=credential)
            if not (who == "session" and path == "/tokens"):
                answers.append((f"{who} GET {path}", reply.body))
        reply = await api.post(
            f"/{username}/tokens/check-app",
            {"requestingAppId": "heart-app", "requestedPermissions": HEART},
            auth=credential,
        )
        answers.append((f"{who} checkApp", reply.body))
    answers.append(("shared channels", (await api.get(f"/{username}/channels", auth=shared)).body))
    answers.append(
        ("review", (await api.get(f"/{username}/access/{opened['key']}", auth=session)).body)
    )
    answers.append(("accept", (await decide(api, username, session, opened["key"], "accept")).body))
    answers.append(
        (
            "batch",
            (
                await api.post(
                    f"/{username}/", [{"method": "tokens.get", "params": {}}], auth=personal
                )
            ).body,
        )
    )
    assert len(answers) > 20
    for what, body in answers:
        for name, secret in secrets.items():
            assert secret not in str(body), f"the {name} secret in {what}"
