"""Socket caps (README "Configuration"): per credential, per user, and the owner's headroom.

A shared token used to be counted against the user's whole cap: one read-only token opening
the user's 100 sockets got the owner's own session refused TOO_MANY_SOCKETS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.conftest import Api, AppFactory
from tests.sockets import Socket, connect, refusal


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as sockets:
        yield sockets


async def hold(stack: AsyncExitStack, api: Api, username: str, credential: str, n: int) -> None:
    """Open ``n`` sockets with that credential, kept open until the test ends."""
    for _ in range(n):
        sock: Socket = await stack.enter_async_context(connect(url(api), username, credential))
        error, _ = await sock.call("channels.get")
        assert error is None


async def test_a_shared_token_at_its_cap_cannot_lock_the_owner_out(
    make_api: AppFactory, stack: AsyncExitStack
) -> None:
    api = await make_api(max_sockets_per_credential=3, max_sockets_per_user=10)
    username, session = await api.user()
    channel = await api.channel(username, session)
    reader = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    await hold(stack, api, username, reader, 3)

    refused = await refusal(url(api), username, reader)
    assert refused["data"]["id"] == "TOO_MANY_SOCKETS"
    assert "PRYVRT_MAX_SOCKETS_PER_CREDENTIAL" in refused["data"]["message"]
    # the owner's session and another token are still let in
    await hold(stack, api, username, session, 1)
    other = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    await hold(stack, api, username, other, 1)


async def test_shared_tokens_together_leave_the_owner_one_credentials_worth(
    make_api: AppFactory, stack: AsyncExitStack
) -> None:
    """Per user 7, per credential 3: shared and app tokens together stop at 4, so the owner's
    sessions and personal tokens always find 3 free; the user's total stops at 7."""
    api = await make_api(max_sockets_per_credential=3, max_sockets_per_user=7)
    username, session = await api.user()
    channel = await api.channel(username, session)
    shared = [
        await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
        for _ in range(3)
    ]
    await hold(stack, api, username, shared[0], 3)
    await hold(stack, api, username, shared[1], 1)
    refused = await refusal(url(api), username, shared[2])
    assert refused["data"]["id"] == "TOO_MANY_SOCKETS"
    assert "kept for the owner" in refused["data"]["message"]

    await hold(stack, api, username, session, 2)
    personal = await api.personal_token(username, session)
    await hold(stack, api, username, personal, 1)
    refused = await refusal(url(api), username, personal)
    assert refused["data"]["id"] == "TOO_MANY_SOCKETS"
    assert "PRYVRT_MAX_SOCKETS_PER_USER" in refused["data"]["message"]


async def test_a_freed_socket_can_be_taken_again_by_the_same_credential(
    make_api: AppFactory, stack: AsyncExitStack
) -> None:
    api = await make_api(max_sockets_per_credential=1, max_sockets_per_user=10)
    username, session = await api.user()
    async with connect(url(api), username, session):
        refused = await refusal(url(api), username, session)
        assert refused["data"]["id"] == "TOO_MANY_SOCKETS"
    # the server hears of the disconnection a moment after the client leaves
    async with asyncio.timeout(3):
        while (await refusal_or_none(api, username, session)) is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await hold(stack, api, username, session, 1)


async def refusal_or_none(api: Api, username: str, credential: str) -> Any:
    try:
        return await refusal(url(api), username, credential)
    except AssertionError:  # accepted (and closed again)
        return None


async def test_the_sockets_of_a_deleted_token_free_their_places_once(
    make_api: AppFactory, stack: AsyncExitStack
) -> None:
    """The caps are counted as sockets come and go (not recounted at each connect): a
    revoked token's sockets leave the counts once, when revoked and not again when their
    disconnection comes, so the caps still hold afterwards."""
    api = await make_api(max_sockets_per_credential=2, max_sockets_per_user=2)
    username, session = await api.user()
    first = await api.personal_token(username, session, "first")
    await hold(stack, api, username, first, 2)
    assert (await refusal(url(api), username, session))["data"]["id"] == "TOO_MANY_SOCKETS"
    deleted = await api.delete(f"/{username}/tokens/{first}", auth=session)
    assert deleted.status == 200, deleted
    async with asyncio.timeout(3):
        while (await refusal_or_none(api, username, session)) is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    second = await api.personal_token(username, session, "second")
    await hold(stack, api, username, second, 2)
    assert (await refusal(url(api), username, second))["data"]["id"] == "TOO_MANY_SOCKETS"
    assert (await refusal(url(api), username, session))["data"]["id"] == "TOO_MANY_SOCKETS"
