"""Limits against slow or greedy clients: stalled and trickled bodies, sockets per user.

The other limits have their tests next to their feature: body size (test_service), attachment
size (test_attachments), batch calls (test_batch), batch events (test_events_batch), the cap on
``limit`` (test_events), login throttling (test_admin), malformed bodies (test_malformed_input).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from pryvrt.config import ConfigError, Settings
from pryvrt.methods.uploads import MAX_FILES_PER_REQUEST
from tests.conftest import Api, AppFactory
from tests.sockets import connect, refusal


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


class RawClient:
    """One HTTP/1.1 request written by hand over a TCP socket, to stall or trickle it."""

    def __init__(self, api: Api) -> None:
        self.host, self.port = api.client.host, api.client.port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self, path: str, headers: dict[str, str]) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write((head + "\r\n").encode())
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, within: float) -> tuple[int, dict[str, Any]]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within)
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        body = await self.reader.readexactly(int(fields["content-length"]))
        return int(lines[0].split()[1]), json.loads(body)

    async def closed_by_server(self, within: float) -> bool:
        """True when the server closed the connection (EOF) rather than waiting for more."""
        return await asyncio.wait_for(self.reader.read(1), within) == b""

    def close(self) -> None:
        self.writer.close()


async def still_serving(api: Api, username: str, session: str) -> None:
    assert (await api.get("/health")).status == 200
    assert (await api.get(f"/{username}/channels", auth=session)).status == 200


# -- slow bodies ----------------------------------------------------------------------------


async def test_a_stalled_json_body_is_cut_off_with_408_and_the_connection_closed(
    make_api: AppFactory,
) -> None:
    api = await make_api(body_timeout=0.5)
    username, session = await api.user()
    client = RawClient(api)
    await client.open(
        f"/{username}/channels",
        {"Authorization": session, "Content-Type": "application/json", "Content-Length": "1000"},
    )
    await client.send(b'{"name": "sl')  # ...and nothing more
    try:
        status, body = await client.response(within=5)
        assert (status, body["id"]) == (408, "REQUEST_TIMEOUT")
        assert await client.closed_by_server(within=5)
    finally:
        client.close()
    channels = await api.get(f"/{username}/channels", auth=session)
    assert channels.body == []
    await still_serving(api, username, session)


async def channel_post_head(api: Any) -> tuple[str, str, RawClient, bytes]:
    """A new user, and a raw connection that has sent the head of a channels.create whose
    200-byte JSON body is still to come."""
    username, session = await api.user()
    client = RawClient(api)
    body = b'{"name": "' + b"t" * 200 + b'"}'
    await client.open(
        f"/{username}/channels",
        {
            "Authorization": session,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        },
    )
    return username, session, client, body


async def test_a_trickled_json_body_is_cut_off_even_though_bytes_keep_coming(
    make_api: AppFactory,
) -> None:
    api = await make_api(body_timeout=0.6)
    username, session, client, body = await channel_post_head(api)

    async def trickle() -> None:
        for byte in body:
            await client.send(bytes([byte]))
            await asyncio.sleep(0.05)  # one byte every 50 ms: 10 s for the whole body

    sender = asyncio.ensure_future(trickle())
    try:
        status, answer = await client.response(within=5)
        assert (status, answer["id"]) == (408, "REQUEST_TIMEOUT")
        assert not sender.done()  # answered while the client was still sending
    finally:
        sender.cancel()
        client.close()
    await still_serving(api, username, session)


async def test_a_client_still_sending_after_the_408_reads_it_late_without_a_reset(
    make_api: AppFactory,
) -> None:
    """The server closes such a connection in stages (RFC 9112 §9.6): a client that keeps
    sending its body after the 408 went out, and reads only then, still gets the 408 and
    then the end of the stream. (Closed at once, the client's next bytes met a reset, and
    its reads failed with ConnectionResetError.)"""
    api = await make_api(body_timeout=0.3)
    username, session, client, body = await channel_post_head(api)
    try:
        await client.send(body[:5])
        await asyncio.sleep(0.6)  # past the body timeout: the 408 is sent meanwhile
        for byte in body[5:15]:  # half a second more of the body, nothing read
            await client.send(bytes([byte]))
            await asyncio.sleep(0.05)
        status, answer = await client.response(within=5)
        assert (status, answer["id"]) == (408, "REQUEST_TIMEOUT")
        assert await client.closed_by_server(within=5)
    finally:
        client.close()
    await still_serving(api, username, session)


def upload_head(boundary: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="event"; filename="event.json"\r\n'
        "Content-Type: application/json\r\n\r\n"
        '{"id": "stalled", "type": "picture/attached"}\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"x" * 100_000


async def test_stalled_uploads_are_cut_off_and_release_their_database_connections(
    make_api: AppFactory,
) -> None:
    """An upload streams into an open transaction: a client stalling in the middle of its
    file used to hold a pooled connection (and the channel lock) for as long as it liked."""
    api = await make_api(body_timeout=0.5, db_pool_size=2)
    username, session = await api.user()
    channel = await api.channel(username, session)
    boundary = "stallstallstall"
    clients = [RawClient(api) for _ in range(3)]  # more stalled uploads than connections
    try:
        for client in clients:
            await client.open(
                f"/{username}/{channel}/events",
                {
                    "Authorization": session,
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": "10000000",
                },
            )
            await client.send(upload_head(boundary))
        for client in clients:
            status, body = await client.response(within=10)
            assert (status, body["id"]) == (408, "REQUEST_TIMEOUT")
            assert await client.closed_by_server(within=5)
    finally:
        for client in clients:
            client.close()
    events = await api.get(f"/{username}/{channel}/events?state=all", auth=session)
    assert events.status == 200 and events.body == []
    await still_serving(api, username, session)


async def test_a_body_that_arrives_in_time_is_not_affected_by_the_timeout(
    make_api: AppFactory,
) -> None:
    api = await make_api(body_timeout=2)
    username, session = await api.user()
    client = RawClient(api)
    body = b'{"name": "steady"}'
    await client.open(
        f"/{username}/channels",
        {
            "Authorization": session,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        },
    )
    try:
        for i in range(0, len(body), 6):
            await client.send(body[i : i + 6])
            await asyncio.sleep(0.05)
        status, answer = await client.response(within=5)
    finally:
        client.close()
    assert status == 201 and answer["id"]


async def test_more_files_than_the_per_request_cap_is_payload_too_large_and_stores_nothing(
    api: Api,
) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    form = aiohttp.FormData()
    form.add_field(
        "event",
        b'{"id": "many", "type": "picture/attached"}',
        content_type="application/json",
        filename="event.json",
    )
    for i in range(MAX_FILES_PER_REQUEST + 1):
        form.add_field("file", b"tiny", filename=f"f{i}.bin", content_type="image/png")
    reply = await api.post(f"/{username}/{channel}/events", data=form, auth=session)
    assert (reply.status, reply.body["id"]) == (413, "PAYLOAD_TOO_LARGE")
    assert str(MAX_FILES_PER_REQUEST) in reply.body["message"]
    events = await api.get(f"/{username}/{channel}/events?state=all", auth=session)
    assert events.body == []


# -- sockets per user -----------------------------------------------------------------------


async def test_sockets_beyond_the_per_user_cap_are_refused_with_too_many_sockets(
    make_api: AppFactory,
) -> None:
    api = await make_api(max_sockets_per_user=2)
    username, session = await api.user()
    other, other_session = await api.user()
    async with connect(url(api), username, session) as first:
        async with connect(url(api), username, session):
            refused = await refusal(url(api), username, session)
            assert refused["data"]["id"] == "TOO_MANY_SOCKETS", refused
            assert "PRYVRT_MAX_SOCKETS_PER_USER" in refused["data"]["message"]
            # another user's sockets do not count against this one
            async with connect(url(api), other, other_session) as theirs:
                error, result = await theirs.call("channels.get")
                assert error is None and result == []
        # the held sockets keep working, and a slot freed can be taken again
        error, result = await first.call("channels.get")
        assert error is None and result == []
        async with connect(url(api), username, session) as again:
            error, _ = await again.call("channels.get")
            assert error is None


async def test_concurrent_connects_cannot_slip_past_the_socket_cap(make_api: AppFactory) -> None:
    api = await make_api(max_sockets_per_user=3)
    username, session = await api.user()
    import socketio

    clients = [socketio.AsyncClient(reconnection=False) for _ in range(8)]

    async def try_connect(client: socketio.AsyncClient) -> bool:
        try:
            await client.connect(
                url(api),
                namespaces=[f"/{username}"],
                auth={"token": session},
                transports=["websocket"],
                wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError:
            return False
        return True

    try:
        accepted = await asyncio.gather(*(try_connect(c) for c in clients))
        assert sum(accepted) == 3
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients))


# -- settings -------------------------------------------------------------------------------


def test_the_new_limits_come_from_the_environment_and_malformed_values_fail() -> None:
    settings = Settings.from_env(
        {
            "PRYVRT_BODY_TIMEOUT": "12.5",
            "PRYVRT_MAX_SOCKETS_PER_USER": "7",
            "PRYVRT_MAX_SOCKETS_PER_CREDENTIAL": "3",
        }
    )
    assert (settings.body_timeout, settings.max_sockets_per_user) == (12.5, 7)
    assert settings.max_sockets_per_credential == 3
    defaults = Settings.from_env({})
    assert (defaults.body_timeout, defaults.max_sockets_per_user) == (30.0, 1000)
    assert defaults.max_sockets_per_credential == 100
    for env in (
        {"PRYVRT_BODY_TIMEOUT": "soon"},
        {"PRYVRT_BODY_TIMEOUT": "0"},
        {"PRYVRT_MAX_SOCKETS_PER_USER": "0"},
        {"PRYVRT_MAX_SOCKETS_PER_USER": "many"},
        {"PRYVRT_MAX_SOCKETS_PER_CREDENTIAL": "0"},
        {"PRYVRT_MAX_SOCKETS_PER_USER": "50"},  # under the per-credential cap (100)
    ):
        with pytest.raises(ConfigError, match=next(iter(env))):
            Settings.from_env(env)


async def test_a_socket_message_over_the_body_size_limit_closes_that_socket_only(
    make_api: AppFactory,
) -> None:
    api = await make_api(max_body_size=4096)
    username, session = await api.user()
    async with connect(url(api), username, session) as bystander:
        async with connect(url(api), username, session) as greedy:
            await greedy.emit("channels.create", {"name": "big", "clientData": {"a": "x" * 10_000}})
            await greedy.wait_disconnected(within=5)
        error, result = await bystander.call("channels.get")
        assert error is None and result == []
    assert (await api.get("/health")).status == 200
