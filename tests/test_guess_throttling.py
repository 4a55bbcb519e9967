"""Guessing secrets is throttled: passwords (admin.login), credentials (401 INVALID_TOKEN
over HTTP and at Socket.IO connect) and the registration key, per username and per client
address, counted before the check so that concurrent guesses cannot overtake the count."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pytest

from pryvrt.auth.throttle import address_key, client_address
from pryvrt.config import ConfigError, Settings
from tests.conftest import Api, AppFactory, Reply
from tests.sockets import connect, refusal


def statuses(replies: list[Reply]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for reply in replies:
        counts[reply.status] = counts.get(reply.status, 0) + 1
    return counts


def assert_throttled(reply: Reply) -> None:
    assert reply.status == 429, reply
    assert reply.body["id"] == "TOO_MANY_REQUESTS"
    assert reply.body["data"]["retryAfter"] >= 1
    assert reply.headers["Retry-After"] == str(reply.body["data"]["retryAfter"])


async def login(api: Api, username: str, password: str) -> Reply:
    return await api.post(f"/{username}/login", {"userName": username, "password": password})


# -- passwords -----------------------------------------------------------------------------


async def test_concurrent_wrong_logins_get_exactly_the_allowed_number_of_checks(
    make_api: AppFactory,
) -> None:
    """60 guesses sent at once: 5 are checked (401), 55 refused (429). The old code checked
    the block before the password and counted after: 59 were checked."""
    api = await make_api(login_max_failures=5, login_block_seconds=60)
    username = await api.register()
    replies = await asyncio.gather(*(login(api, username, f"guess-{i}") for i in range(60)))
    assert statuses(list(replies)) == {401: 5, 429: 55}
    assert_throttled(next(r for r in replies if r.status == 429))
    assert_throttled(await login(api, username, "secret-pw"))  # even the right one


async def test_a_typing_user_blocks_that_account_only_not_the_address(
    make_api: AppFactory,
) -> None:
    """A developer on localhost mistyping one password five times is not locked out of
    every other account: the per-address limit is much higher."""
    api = await make_api(login_max_failures=5, login_max_failures_per_ip=50)
    alice, bob = await api.register(), await api.register()
    for _ in range(5):
        assert (await login(api, alice, "typo")).status == 401
    assert_throttled(await login(api, alice, "secret-pw"))
    assert (await login(api, bob, "secret-pw")).status == 200


async def test_a_login_to_ones_own_account_does_not_clear_the_address_failures(
    make_api: AppFactory,
) -> None:
    """Guesses spread over accounts, with a login to the guesser's own account between the
    rounds, reach the per-address limit (the old code reset the address's count on every
    success, so they were never blocked)."""
    api = await make_api(login_max_failures=5, login_max_failures_per_ip=12)
    own = await api.register()
    victims = [await api.register() for _ in range(4)]
    answers = []
    for victim in victims:
        for i in range(4):  # under the per-username limit
            answers.append((await login(api, victim, f"guess-{i}")).status)
        answers.append((await login(api, own, "secret-pw")).status)
    assert answers[:14] == [401] * 4 + [200] + [401] * 4 + [200] + [401] * 4
    assert set(answers[14:]) == {429}  # the 12th failure was the last one checked
    assert_throttled(await login(api, own, "secret-pw"))


async def test_a_success_clears_only_that_usernames_own_failures(make_api: AppFactory) -> None:
    api = await make_api(login_max_failures=3, login_max_failures_per_ip=100)
    alice, bob = await api.register(), await api.register()
    for _ in range(2):
        await login(api, alice, "typo")
        await login(api, bob, "typo")
    assert (await login(api, alice, "secret-pw")).status == 200
    for _ in range(3):  # alice starts again from zero
        assert (await login(api, alice, "typo")).status == 401
    assert (await login(api, bob, "typo")).status == 401  # bob's two failures still count
    assert_throttled(await login(api, bob, "secret-pw"))


async def test_many_successful_logins_never_block_the_address(make_api: AppFactory) -> None:
    """Successes take their attempt back. (Attempts in flight count until answered: more
    concurrent logins of one account than its limit are refused.)"""
    api = await make_api(login_max_failures=2, login_max_failures_per_ip=3)
    username = await api.register()
    for _ in range(10):
        assert (await login(api, username, "secret-pw")).status == 200
    replies = await asyncio.gather(*(login(api, username, "secret-pw") for _ in range(2)))
    assert statuses(list(replies)) == {200: 2}


# -- credentials ---------------------------------------------------------------------------


async def test_concurrent_wrong_credentials_are_throttled_per_address(
    make_api: AppFactory,
) -> None:
    """60 guessed credentials at once, 20 allowed: 20 answers 401, 40 answer 429; then
    even a valid credential is refused from that address (no oracle) until the window ends."""
    api = await make_api(token_max_failures_per_ip=20, token_block_seconds=1.0)
    username, session = await api.user()
    token = await api.personal_token(username, session)
    replies = await asyncio.gather(
        *(api.get(f"/{username}/channels", auth=secrets.token_hex(1)) for _ in range(60))
    )
    assert statuses(list(replies)) == {401: 20, 429: 40}
    assert_throttled(next(r for r in replies if r.status == 429))
    assert_throttled(await api.get(f"/{username}/channels", auth=token))
    await asyncio.sleep(1.1)
    assert (await api.get(f"/{username}/channels", auth=token)).status == 200


async def test_valid_credentials_never_count_as_failures(make_api: AppFactory) -> None:
    api = await make_api(token_max_failures_per_ip=3, cache_seconds=0)  # every call looks up
    username, session = await api.user()
    token = await api.personal_token(username, session)
    replies = await asyncio.gather(
        *(api.get(f"/{username}/channels", auth=token) for _ in range(30))
    )
    assert statuses(list(replies)) == {200: 30}
    assert (await api.get(f"/{username}/channels", auth="wrong-1")).status == 401


async def test_a_client_with_one_bad_token_is_not_locked_out_by_the_default_limit(
    api: Api,
) -> None:
    username, session = await api.user()
    for _ in range(30):  # a client retrying a stale token every second for half a minute
        assert (await api.get(f"/{username}/channels", auth="stale-token")).status == 401
    assert (await api.get(f"/{username}/channels", auth=session)).status == 200


async def test_socket_connects_with_wrong_credentials_are_throttled_too(
    make_api: AppFactory,
) -> None:
    api = await make_api(token_max_failures_per_ip=3, token_block_seconds=60)
    username, session = await api.user()
    url = str(api.client.make_url("/"))
    for _ in range(3):
        refused = await refusal(url, username, "guess-" + secrets.token_hex(2))
        assert refused["data"]["id"] == "INVALID_TOKEN", refused
    refused = await refusal(url, username, session)  # valid, but from a refused address
    assert refused["data"]["id"] == "TOO_MANY_REQUESTS", refused
    assert refused["data"]["data"]["retryAfter"] >= 1
    assert_throttled(await api.get(f"/{username}/channels", auth=session))


async def test_a_refused_address_keeps_its_open_sockets(make_api: AppFactory) -> None:
    """A socket's credential was accepted at connect: checking it again (here at every call)
    is no guess, and goes on while the address is refused."""
    api = await make_api(
        token_max_failures_per_ip=2,
        token_block_seconds=60,
        socket_recheck_seconds=0,
        cache_seconds=0,
    )
    username, session = await api.user()
    async with connect(str(api.client.make_url("/")), username, session) as sock:
        for _ in range(2):
            await api.get(f"/{username}/channels", auth="wrong")
        assert_throttled(await api.get(f"/{username}/channels", auth=session))
        error, result = await sock.call("channels.get", {})
        assert error is None and result == []


async def test_wrong_registration_keys_are_throttled(make_api: AppFactory) -> None:
    api = await make_api(registration="key", admin_key="k" * 32, token_max_failures_per_ip=3)
    body = {"username": "newbie1", "password": "secret-pw"}
    for _ in range(3):
        assert (await api.post("/users", body, auth="wrong-key")).status == 401
    assert_throttled(await api.post("/users", body, auth="k" * 32))


def test_addresses_are_counted_per_ipv4_address_and_per_ipv6_64() -> None:
    assert address_key("203.0.113.7") == "ip:203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "ip:203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key(None) == address_key("") == "ip:?"


# -- token ids -----------------------------------------------------------------------------


async def test_client_chosen_token_ids_need_twenty_characters(api: Api) -> None:
    """A token id is the credential: a 2-character one was found by guessing in 394
    requests. Shorter than 20 characters is INVALID_ITEM_ID; longer ones work as before."""
    username, session = await api.user()
    for short in ("ab", "x" * 19):
        reply = await api.post(f"/{username}/tokens", {"id": short, "name": short}, auth=session)
        assert reply.status == 400, reply
        assert reply.body["id"] == "INVALID_ITEM_ID"
        assert "20" in reply.body["data"]["id"]
    for good in ("y" * 20, str(uuid.uuid4())):
        reply = await api.post(f"/{username}/tokens", {"id": good, "name": good}, auth=session)
        assert reply.status == 201, reply
        assert (await api.get(f"/{username}/channels", auth=good)).status == 200
    schema = (await api.get("/openapi.json")).body
    assert "{20,100}" in str(schema)


# -- addresses behind a proxy --------------------------------------------------------------


async def test_behind_a_trusted_proxy_each_forwarded_address_is_throttled_on_its_own(
    make_api: AppFactory,
) -> None:
    api = await make_api(trusted_proxies=("127.0.0.1",), token_max_failures_per_ip=2)
    username = await api.register()

    async def guess(forwarded: str) -> Reply:
        headers = {"X-Forwarded-For": forwarded}
        return await api.get(f"/{username}/channels", auth="guess", headers=headers)

    # What the client wrote before the proxy's own entry is not believed.
    assert (await guess("198.51.100.1, 203.0.113.5")).status == 401
    assert (await guess("198.51.100.2, 203.0.113.5")).status == 401
    assert_throttled(await guess("198.51.100.3, 203.0.113.5"))
    assert (await guess("203.0.113.6")).status == 401  # another client of the proxy


async def test_forwarded_addresses_are_ignored_unless_the_proxy_is_trusted(
    make_api: AppFactory,
) -> None:
    api = await make_api(token_max_failures_per_ip=2)
    username = await api.register()
    for i in range(2):
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}
        reply = await api.get(f"/{username}/channels", auth="guess", headers=headers)
        assert reply.status == 401
    headers = {"X-Forwarded-For": "203.0.113.99"}
    assert_throttled(await api.get(f"/{username}/channels", auth="guess", headers=headers))


def test_the_client_address_is_the_last_one_before_the_trusted_proxies() -> None:
    trusted = ("10.0.0.0/8", "127.0.0.1")
    assert client_address("127.0.0.1", "1.1.1.1, 2.2.2.2, 10.1.1.1", trusted) == "2.2.2.2"
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_address("8.8.8.8", "2.2.2.2", trusted) == "8.8.8.8"  # not a proxy
    assert client_address("127.0.0.1", "10.0.0.7", trusted) == "10.0.0.7"
    assert client_address("127.0.0.1", "2.2.2.2", ()) == "127.0.0.1"


def test_the_throttle_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PRYVRT_LOGIN_MAX_FAILURES_PER_IP": "70",
            "PRYVRT_TOKEN_MAX_FAILURES_PER_IP": "300",
            "PRYVRT_TOKEN_BLOCK_SECONDS": "30",
            "PRYVRT_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
        }
    )
    assert settings.login_max_failures_per_ip == 70
    assert (settings.token_max_failures_per_ip, settings.token_block_seconds) == (300, 30.0)
    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    defaults = Settings.from_env({})
    assert (defaults.login_max_failures, defaults.login_max_failures_per_ip) == (5, 50)
    assert defaults.trusted_proxies == ()
    with pytest.raises(ConfigError, match="PRYVRT_TRUSTED_PROXIES"):
        Settings.from_env({"PRYVRT_TRUSTED_PROXIES": "not-an-address"})
