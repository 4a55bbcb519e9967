"""The dashboard's cookie session (pryvrt.auth.browser_session) over real HTTP and Socket.IO:
what the cookie is, who may use it, and when it stops working."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestClient, TestServer

from pryvrt.app import create_app
from pryvrt.auth.browser_session import COOKIE_NAME, CSRF_HEADER
from pryvrt.config import ConfigError, Settings
from tests.conftest import Api, Reply
from tests.sockets import connect

BrowserApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_browser_api(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> AsyncIterator[BrowserApi]:
    """A server and a client that keeps no cookies: each test sends the cookie it means to."""

    async def factory(**overrides: Any) -> Api:
        app = create_app(replace(settings, **overrides))
        return Api(await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar()))

    yield factory


@pytest.fixture
async def api(make_browser_api: BrowserApi) -> Api:
    return await make_browser_api()


def origin(api: Api) -> str:
    return str(api.client.make_url("/")).rstrip("/")


def page_headers(api: Api, cookie: str | None = None, **headers: str) -> dict[str, str]:
    """What the dashboard page sends: the CSRF header from its own origin (plus the cookie)."""
    sent = {CSRF_HEADER: "1", "Origin": origin(api)}
    if cookie is not None:
        sent["Cookie"] = f"{COOKIE_NAME}={cookie}"
    sent.update(headers)
    return sent


def set_cookies(reply: Reply) -> dict[str, Morsel[str]]:
    jar: SimpleCookie = SimpleCookie()
    for header in reply.headers.getall("Set-Cookie", ()):
        jar.load(header)
    return dict(jar)


async def dashboard_login(api: Api, username: str, **headers: str) -> tuple[Reply, str]:
    """Log in as the dashboard does; (reply, the cookie value as the browser sends it back)."""
    reply = await api.post(
        f"/{username}/dashboard/login",
        {"userName": username, "password": api.passwords[username]},
        headers=headers or page_headers(api),
    )
    assert reply.status == 200, reply
    return reply, set_cookies(reply)[COOKIE_NAME].coded_value


async def logged_in(api: Api) -> tuple[str, str]:
    username = await api.register()
    _, cookie = await dashboard_login(api, username)
    return username, cookie


async def session_ids(database_url: str, username: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT s.id FROM sessions s JOIN users u USING (user_id) WHERE u.username = $1",
            username,
        )
    finally:
        await conn.close()
    return [r["id"] for r in rows]


# -- the cookie -------------------------------------------------------------------------------


async def test_the_dashboard_login_sets_an_encrypted_httponly_strict_cookie_and_no_session_id(
    api: Api, database_url: str
) -> None:
    username = await api.register()
    reply, cookie = await dashboard_login(api, username)

    assert reply.body == {"username": username}
    morsel = set_cookies(reply)[COOKIE_NAME]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert morsel["max-age"] == str(14 * 24 * 3600)  # the session's idle time
    assert not morsel["secure"]  # plain http, nothing says https
    [session_id] = await session_ids(database_url, username)
    # the session id appears nowhere the page could read it, nor in clear in the cookie
    assert session_id not in str(reply.body) and session_id not in str(dict(reply.headers))
    assert session_id not in cookie
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    assert reply.status == 200, reply


async def test_api_clients_still_get_a_session_id_and_no_cookie(api: Api) -> None:
    username = await api.register()
    reply = await api.post(
        f"/{username}/login", {"userName": username, "password": api.passwords[username]}
    )
    assert reply.status == 200 and reply.body["sessionID"]
    assert "Set-Cookie" not in reply.headers
    assert (await api.get(f"/{username}/channels", auth=reply.body["sessionID"])).status == 200


async def test_the_cookie_is_secure_when_configured(make_browser_api: BrowserApi) -> None:
    api = await make_browser_api(cookie_secure=True)
    username = await api.register()
    # behind a TLS proxy the page's origin is https://, whatever this hop was
    reply, cookie = await dashboard_login(api, username, **page_headers(api, Origin=https(api)))
    assert set_cookies(reply)[COOKIE_NAME]["secure"] is True
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    assert reply.status == 401  # a page on http:// is not this site any more


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("auto", None), ("true", True), ("1", True), ("false", False), ("no", False)],
)
def test_pryvrt_cookie_secure_is_auto_true_or_false(raw: str | None, expected: bool | None) -> None:
    env = {} if raw is None else {"PRYVRT_COOKIE_SECURE": raw}
    assert Settings.from_env(env).cookie_secure is expected


def test_a_malformed_pryvrt_cookie_secure_stops_the_server() -> None:
    with pytest.raises(ConfigError, match="PRYVRT_COOKIE_SECURE"):
        Settings.from_env({"PRYVRT_COOKIE_SECURE": "sometimes"})


async def test_the_cookie_is_secure_when_the_page_is_https_behind_a_proxy(
    make_browser_api: BrowserApi,
) -> None:
    api = await make_browser_api(session_ttl=4.0)  # re-issued after 4 / 4 = 1 s
    username = await api.register()
    reply, cookie = await dashboard_login(api, username, **page_headers(api, Origin=https(api)))
    assert set_cookies(reply)[COOKIE_NAME]["secure"] is True
    # re-issued by a same-origin GET (no Origin to tell https), it stays Secure
    await asyncio.sleep(2.1)
    page_get = page_headers(api, cookie, **{"Sec-Fetch-Site": "same-origin"})
    del page_get["Origin"]
    reply = await api.get(f"/{username}/channels", headers=page_get)
    assert set_cookies(reply)[COOKIE_NAME]["secure"] is True
    # and its deletion at logout too
    reply = await api.post(
        f"/{username}/dashboard/logout", headers=page_headers(api, cookie, Origin=https(api))
    )
    assert set_cookies(reply)[COOKIE_NAME]["secure"] is True


def https(api: Api) -> str:
    return origin(api).replace("http://", "https://")


async def test_the_cookie_is_secure_over_tls_and_http_origins_are_then_refused(
    settings: Settings,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    tmp_path: Path,
) -> None:
    server = TestServer(create_app(settings))
    await server.start_server(ssl=self_signed_context(tmp_path))
    client = await aiohttp_client(
        server,
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(ssl=False),
    )
    api = Api(client)
    assert origin(api).startswith("https://")
    username = await api.register()
    reply, cookie = await dashboard_login(api, username)
    assert set_cookies(reply)[COOKIE_NAME]["secure"] is True
    assert (await api.get(f"/{username}/channels", headers=page_headers(api, cookie))).status == 200
    http_origin = origin(api).replace("https://", "http://")
    reply = await api.get(
        f"/{username}/channels", headers=page_headers(api, cookie, Origin=http_origin)
    )
    assert reply.status == 401 and reply.body["id"] == "INVALID_TOKEN"


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


# -- who may use it ---------------------------------------------------------------------------

NOT_FROM_THE_PAGE = {
    "no CSRF header": {CSRF_HEADER: None},
    "another site's Origin": {"Origin": "https://evil.example"},
    "Origin null (a sandboxed document)": {"Origin": "null"},
    "this host on another port": {"Origin": "http://127.0.0.1:1"},
    "cross-site per Sec-Fetch-Site": {"Origin": None, "Sec-Fetch-Site": "cross-site"},
    "a sibling site per Sec-Fetch-Site": {"Origin": None, "Sec-Fetch-Site": "same-site"},
    "neither Origin nor Sec-Fetch-Site": {"Origin": None},
    "a same-origin Origin but cross-site fetch": {"Sec-Fetch-Site": "cross-site"},
}


@pytest.mark.parametrize("changes", NOT_FROM_THE_PAGE.values(), ids=NOT_FROM_THE_PAGE.keys())
async def test_a_request_with_the_cookie_not_from_the_page_has_no_credential(
    api: Api, changes: dict[str, str | None]
) -> None:
    username, cookie = await logged_in(api)
    headers = page_headers(api, cookie)
    for name, value in changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value

    for method, path, body in (
        ("GET", "/channels", None),
        ("POST", "/tokens/personal", {"name": "stolen"}),
        ("GET", "/tokens/stolen-too", None),  # the seed's GET form creates a token too
        ("POST", "/change-password", {"oldPassword": "secret-pw", "newPassword": "taken-over"}),
    ):
        reply = await api.request(method, f"/{username}{path}", json=body, headers=headers)
        assert reply.status == 401, (path, reply)
        assert reply.body["id"] == "INVALID_TOKEN"
        assert "cookie is not accepted" in reply.body["message"]

    # nothing was created, and the session itself still works from the page
    reply = await api.get(f"/{username}/tokens", headers=page_headers(api, cookie))
    assert reply.status == 200 and reply.body == []


PAGE_FORMS = {
    "Origin": {},
    "Sec-Fetch-Site only (a same-origin GET carries no Origin)": {
        "Origin": None,
        "Sec-Fetch-Site": "same-origin",
    },
    "both": {"Sec-Fetch-Site": "same-origin"},
}


@pytest.mark.parametrize("changes", PAGE_FORMS.values(), ids=PAGE_FORMS.keys())
async def test_the_pages_own_requests_use_the_cookie(
    api: Api, changes: dict[str, str | None]
) -> None:
    username, cookie = await logged_in(api)
    headers = page_headers(api, cookie)
    for name, value in changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    reply = await api.get(f"/{username}/user-info", headers=headers)
    assert reply.status == 200 and reply.body["username"] == username


async def test_the_cors_preflight_lets_no_other_origin_send_the_csrf_header(api: Api) -> None:
    username = await api.register()
    async with api.client.options(
        f"/{username}/tokens/personal",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": CSRF_HEADER.lower(),
        },
    ) as resp:
        allowed = resp.headers.get("Access-Control-Allow-Headers", "").lower()
        assert CSRF_HEADER.lower() not in allowed
        assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize(
    "changes",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {CSRF_HEADER: None}],
    ids=["another site", "sandboxed", "no CSRF header"],
)
async def test_the_dashboard_login_is_refused_from_anywhere_but_the_page(
    api: Api, database_url: str, changes: dict[str, str | None]
) -> None:
    username = await api.register()
    headers = page_headers(api)
    for name, value in changes.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    reply = await api.post(
        f"/{username}/dashboard/login",
        {"userName": username, "password": "secret-pw"},
        headers=headers,
    )
    assert reply.status == 403 and reply.body["id"] == "FORBIDDEN", reply
    assert "Set-Cookie" not in reply.headers
    assert await session_ids(database_url, username) == []


async def test_a_wrong_password_sets_no_cookie(api: Api) -> None:
    username = await api.register()
    reply = await api.post(
        f"/{username}/dashboard/login",
        {"userName": username, "password": "wrong-pw"},
        headers=page_headers(api),
    )
    assert reply.status == 401 and reply.body["id"] == "INVALID_CREDENTIALS"
    assert "Set-Cookie" not in reply.headers


async def test_a_cookie_counts_only_for_its_own_user(api: Api) -> None:
    alice, cookie = await logged_in(api)
    bob = await api.register()
    reply = await api.get(f"/{bob}/channels", headers=page_headers(api, cookie))
    assert reply.status == 401 and "another user" in reply.body["message"]
    assert (await api.get(f"/{alice}/channels", headers=page_headers(api, cookie))).status == 200


async def test_an_explicit_credential_wins_over_the_cookie(api: Api) -> None:
    username, cookie = await logged_in(api)
    session = await api.login(username)
    channel = await api.channel(username, session)
    reader = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    headers = page_headers(api, cookie, Authorization=reader)
    reply = await api.post(f"/{username}/channels", {"name": "not allowed"}, headers=headers)
    assert reply.status == 403, reply  # the read-only token's rights, not the session's


async def test_a_tampered_cookie_or_one_from_another_server_is_refused(
    api: Api, make_browser_api: BrowserApi
) -> None:
    username, cookie = await logged_in(api)
    flipped = cookie[:20] + ("A" if cookie[20] != "A" else "B") + cookie[21:]
    other = await make_browser_api(secret_key="another-deployment-" + "x" * 32)
    other.passwords[username] = api.passwords[username]  # same database, other secret
    _, foreign = await dashboard_login(other, username)
    for bad in (flipped, foreign):
        reply = await api.get(f"/{username}/channels", headers=page_headers(api, bad))
        assert reply.status == 401 and reply.body["id"] == "INVALID_TOKEN"


# -- when it stops working --------------------------------------------------------------------


async def test_dashboard_logout_ends_the_session_and_clears_the_cookie(
    api: Api, database_url: str
) -> None:
    username, cookie = await logged_in(api)
    reply = await api.post(f"/{username}/dashboard/logout", headers=page_headers(api, cookie))
    assert reply.status == 200, reply
    cleared = set_cookies(reply)[COOKIE_NAME]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert await session_ids(database_url, username) == []
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    assert reply.status == 401
    # logging out again (a stale cookie) still answers and clears it
    reply = await api.post(f"/{username}/dashboard/logout", headers=page_headers(api, cookie))
    assert reply.status == 200 and set_cookies(reply)[COOKIE_NAME]["max-age"] == "0"


async def test_dashboard_logout_is_refused_from_other_origins(api: Api) -> None:
    username, cookie = await logged_in(api)
    reply = await api.post(
        f"/{username}/dashboard/logout",
        headers=page_headers(api, cookie, Origin="https://evil.example"),
    )
    assert reply.status == 403 and "Set-Cookie" not in reply.headers
    assert (await api.get(f"/{username}/channels", headers=page_headers(api, cookie))).status == 200


async def test_a_password_change_made_elsewhere_ends_the_cookie_session(api: Api) -> None:
    username, cookie = await logged_in(api)
    session = await api.login(username)
    reply = await api.post(
        f"/{username}/change-password",
        {"oldPassword": "secret-pw", "newPassword": "new-secret-pw"},
        auth=session,
    )
    assert reply.status == 200, reply
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    assert reply.status == 401 and reply.body["id"] == "INVALID_TOKEN"


async def test_a_cookie_whose_session_expired_on_the_server_is_refused(
    make_browser_api: BrowserApi, database_url: str
) -> None:
    api = await make_browser_api(cache_seconds=0)
    username, cookie = await logged_in(api)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE sessions SET expires = 1 WHERE user_id ="
            " (SELECT user_id FROM users WHERE username = $1)",
            username,
        )
    finally:
        await conn.close()
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    assert reply.status == 401 and reply.body["id"] == "INVALID_TOKEN"


async def test_a_cookie_older_than_the_session_idle_time_is_refused(
    make_browser_api: BrowserApi,
) -> None:
    api = await make_browser_api(session_ttl=1.0)
    username, cookie = await logged_in(api)
    await asyncio.sleep(2.2)  # the cookie's encrypted timestamp is older than its max age
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    assert reply.status == 401 and "expired or unreadable" in reply.body["message"]


async def test_a_cookie_in_use_is_reissued_with_a_fresh_lifetime(
    make_browser_api: BrowserApi,
) -> None:
    api = await make_browser_api(session_ttl=8.0)  # re-issued after 8 / 4 = 2 s
    username, cookie = await logged_in(api)
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    assert COOKIE_NAME not in set_cookies(reply)
    await asyncio.sleep(2.1)
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, cookie))
    renewed = set_cookies(reply)[COOKIE_NAME]
    assert renewed.coded_value != cookie and renewed["max-age"] == "8"
    assert renewed["httponly"] is True and renewed["samesite"] == "Strict"
    reply = await api.get(f"/{username}/channels", headers=page_headers(api, renewed.coded_value))
    assert reply.status == 200


async def test_a_new_dashboard_login_ends_the_session_the_browser_held(
    api: Api, database_url: str
) -> None:
    username, first = await logged_in(api)
    reply = await api.post(
        f"/{username}/dashboard/login",
        {"userName": username, "password": "secret-pw"},
        headers=page_headers(api, first),
    )
    assert reply.status == 200
    assert len(await session_ids(database_url, username)) == 1
    assert (await api.get(f"/{username}/channels", headers=page_headers(api, first))).status == 401


# -- Socket.IO --------------------------------------------------------------------------------


def socket_headers(api: Api, cookie: str, socket_origin: str | None) -> dict[str, str]:
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"}
    if socket_origin is not None:
        headers["Origin"] = socket_origin
    return headers


async def test_the_dashboards_socket_authenticates_with_the_cookie(api: Api) -> None:
    username, cookie = await logged_in(api)
    url = origin(api) + "/"
    async with connect(url, username, None, headers=socket_headers(api, cookie, origin(api))) as s:
        error, result = await s.call("channels.get")
        assert error is None and result == []
        session = await api.login(username)
        await api.channel(username, session)
        assert await s.next() == ("channelsChanged", None)


async def socket_refusal(url: str, username: str, headers: dict[str, str], auth: Any) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    namespace = f"/{username}"
    refused: list[Any] = []
    client.on("connect_error", lambda data=None: refused.append(data), namespace=namespace)
    try:
        await client.connect(
            url,
            namespaces=[namespace],
            auth=auth,
            headers=headers,
            transports=["websocket"],
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError:
        return refused[0] if refused else None
    finally:
        await client.disconnect()
    raise AssertionError("the connection was accepted")


@pytest.mark.parametrize(
    "socket_origin",
    ["https://evil.example", "null", None, "http://127.0.0.1:1"],
    ids=["another site", "sandboxed", "no Origin", "another port"],
)
async def test_a_socket_handshake_with_the_cookie_from_elsewhere_is_refused(
    api: Api, socket_origin: str | None
) -> None:
    username, cookie = await logged_in(api)
    headers = socket_headers(api, cookie, socket_origin)
    refused = await socket_refusal(origin(api) + "/", username, headers, None)
    assert refused["data"]["id"] == "INVALID_TOKEN"


async def test_a_socket_giving_auth_does_not_fall_back_to_the_cookie(api: Api) -> None:
    username, cookie = await logged_in(api)
    headers = socket_headers(api, cookie, origin(api))
    refused = await socket_refusal(origin(api) + "/", username, headers, {"token": "wrong"})
    assert refused["data"]["id"] == "INVALID_TOKEN"


async def test_a_socket_refuses_another_users_cookie(api: Api) -> None:
    _, cookie = await logged_in(api)
    bob = await api.register()
    headers = socket_headers(api, cookie, origin(api))
    refused = await socket_refusal(origin(api) + "/", bob, headers, None)
    assert refused["data"]["id"] == "INVALID_TOKEN"


@pytest.mark.parametrize("how", ["dashboard logout", "password changed elsewhere"])
async def test_the_cookie_sessions_sockets_are_disconnected_when_it_ends(
    api: Api, how: str
) -> None:
    username, cookie = await logged_in(api)
    url = origin(api) + "/"
    async with connect(url, username, None, headers=socket_headers(api, cookie, origin(api))) as s:
        if how == "dashboard logout":
            reply = await api.post(
                f"/{username}/dashboard/logout", headers=page_headers(api, cookie)
            )
        else:
            session = await api.login(username)
            reply = await api.post(
                f"/{username}/change-password",
                {"oldPassword": "secret-pw", "newPassword": "new-secret-pw"},
                auth=session,
            )
        assert reply.status == 200, reply
        await s.wait_disconnected()
