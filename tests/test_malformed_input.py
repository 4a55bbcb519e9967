"""Malformed requests: each gets a clear 4xx with an error id, and the server keeps serving.

Bodies are sent as raw bytes by a real HTTP client (aiohttp) or, where the client would
refuse to send them (a 100 MB stream, a stalled body), over a raw socket.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import Api
from tests.sockets import connect

JSON = {"Content-Type": "application/json"}


async def owner(api: Api) -> tuple[str, str]:
    return await api.user()


async def still_serving(api: Api, username: str, session: str) -> None:
    """After a bad request: health answers, and a normal write and read work."""
    assert (await api.get("/health")).status == 200
    name = f"after-{id(api)}-{asyncio.get_running_loop().time()}"
    created = await api.post(f"/{username}/channels", {"name": name}, auth=session)
    assert created.status == 201, created
    listed = await api.get(f"/{username}/channels", auth=session)
    assert name in [c["name"] for c in listed.body]


def refused(reply: Any, status: int, error_id: str) -> None:
    assert reply.status == status, reply
    assert reply.body["id"] == error_id, reply
    assert isinstance(reply.body["message"], str) and reply.body["message"]
    assert "Traceback" not in reply.body["message"]


BAD_JSON_BODIES = {
    "invalid UTF-8": b'{"name": "caf\xe9 \xff\xfe"}',
    "nested 10 000 deep": b'{"name": "deep", "clientData": {"a": '
    + b"[" * 10_000
    + b"]" * 10_000
    + b"}}",
    "huge float 1e400": b'{"name": "big", "clientData": {"n": 1e400}}',
    "huge integer 10**400": b'{"name": "big", "clientData": {"n": 1' + b"0" * 400 + b"}}",
    "NaN literal": b'{"name": "nan", "clientData": {"n": NaN}}',
    "Infinity literal": b'{"name": "inf", "clientData": {"n": -Infinity}}',
    "truncated": b'{"name": "cut", "clientData": {"a": [1, 2',
    "not JSON at all": b"name=hello",
    "a lone surrogate": b'{"name": "\\ud800"}',
}


@pytest.mark.parametrize("body", BAD_JSON_BODIES.values(), ids=list(BAD_JSON_BODIES))
async def test_a_body_that_is_not_valid_json_is_an_invalid_request_structure(
    api: Api, body: bytes
) -> None:
    username, session = await owner(api)
    reply = await api.post(f"/{username}/channels", data=body, auth=session, headers=JSON)
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    await still_serving(api, username, session)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data"],
)
async def test_a_body_of_another_content_type_is_an_invalid_request_structure(
    api: Api, content_type: str
) -> None:
    username, session = await owner(api)
    reply = await api.post(
        f"/{username}/channels",
        data=b'{"name": "typed"}',
        auth=session,
        headers={"Content-Type": content_type},
    )
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    await still_serving(api, username, session)


async def test_an_array_where_an_object_is_expected_is_an_invalid_request_structure(
    api: Api,
) -> None:
    username, session = await owner(api)
    reply = await api.post(f"/{username}/channels", [{"name": "in-a-list"}], auth=session)
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    reply = await api.post(f"/{username}/", {"method": "channels.get"}, auth=session)
    assert reply.status == 400 and reply.body["id"] in (
        "INVALID_PARAMETERS_FORMAT",
        "INVALID_REQUEST_STRUCTURE",
    ), reply
    await still_serving(api, username, session)


async def test_an_empty_body_is_an_empty_params_object(api: Api) -> None:
    username, session = await owner(api)
    reply = await api.post(f"/{username}/channels", data=b"", auth=session, headers=JSON)
    refused(reply, 400, "INVALID_PARAMETERS_FORMAT")
    assert "name" in reply.body["data"]
    await still_serving(api, username, session)


async def test_text_with_a_nul_character_is_refused_not_a_server_error(api: Api) -> None:
    """PostgreSQL cannot store U+0000 in text or jsonb (found by the fuzz test)."""
    username, session = await owner(api)
    reply = await api.post(f"/{username}/channels", {"name": "nul\u0000here"}, auth=session)
    refused(reply, 400, "INVALID_PARAMETERS_FORMAT")
    reply = await api.post(
        f"/{username}/channels", {"name": "ok", "clientData": {"k": "a\u0000b"}}, auth=session
    )
    refused(reply, 400, "INVALID_PARAMETERS_FORMAT")
    await still_serving(api, username, session)


async def test_free_form_json_nested_deeper_than_64_levels_is_refused(api: Api) -> None:
    """Found here: 1000 levels (under the parser's 1024) used to reach the database encoder,
    which stops at 255 levels, and answer 500."""
    username, session = await owner(api)
    for depth, field in ((1000, "clientData"), (65, "clientData")):
        nested = b'{"a": ' * depth + b'"leaf"' + b"}" * depth
        reply = await api.post(
            f"/{username}/channels",
            data=b'{"name": "deep", "' + field.encode() + b'": ' + nested + b"}",
            auth=session,
            headers=JSON,
        )
        refused(reply, 400, "INVALID_PARAMETERS_FORMAT")
    channel = await api.channel(username, session)
    content = b"[" * 300 + b"]" * 300
    reply = await api.post(
        f"/{username}/{channel}/events",
        data=b'{"type": "note/txt", "content": ' + content + b"}",
        auth=session,
        headers=JSON,
    )
    refused(reply, 400, "INVALID_PARAMETERS_FORMAT")
    # 64 levels are fine, and read back whole
    nested_ok: Any = "leaf"
    for _ in range(63):
        nested_ok = {"a": nested_ok}
    created = await api.post(
        f"/{username}/channels", {"name": "deep-ok", "clientData": nested_ok}, auth=session
    )
    assert created.status == 201, created
    listed = await api.get(f"/{username}/channels", auth=session)
    [stored] = [c for c in listed.body if c["name"] == "deep-ok"]
    assert stored["clientData"] == nested_ok
    await still_serving(api, username, session)


# -- multipart ------------------------------------------------------------------------------


def form(*parts: tuple[str, bytes, str, str]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, content, ctype, filename in parts:
        data.add_field(name, content, content_type=ctype, filename=filename)
    return data


EVENT = json.dumps({"value": {"type": "note/txt", "value": "x"}}).encode()
FILE = b"\x89PNG not really"


async def test_multipart_with_two_json_parts_is_an_invalid_request_structure(api: Api) -> None:
    username, session = await owner(api)
    channel = await api.channel(username, session)
    reply = await api.post(
        f"/{username}/{channel}/events",
        data=form(
            ("event", EVENT, "application/json", "event.json"),
            ("again", EVENT, "application/json", "again.json"),
            ("file", FILE, "image/png", "a.png"),
        ),
        auth=session,
    )
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    events = await api.get(f"/{username}/{channel}/events?state=all", auth=session)
    assert events.body == []
    await still_serving(api, username, session)


async def test_multipart_without_a_json_part_is_an_invalid_request_structure(api: Api) -> None:
    """API.md: events.create takes exactly one JSON part (a files-only body used to create an
    event with no type)."""
    username, session = await owner(api)
    channel = await api.channel(username, session)
    reply = await api.post(
        f"/{username}/{channel}/events",
        data=form(("file", FILE, "image/png", "a.png")),
        auth=session,
    )
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    events = await api.get(f"/{username}/{channel}/events?state=all", auth=session)
    assert events.body == []
    await still_serving(api, username, session)


async def test_multipart_with_a_malformed_part_header_is_refused_not_a_server_error(
    api: Api,
) -> None:
    """Found by the fuzz test: a part header aiohttp cannot parse used to answer 500."""
    username, session = await owner(api)
    channel = await api.channel(username, session)
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="\xf2\xa8\x8c\xac\x18"\r\n\r\n'
        + FILE
        + f"\r\n--{boundary}--\r\n".encode()
    )
    reply = await api.post(
        f"/{username}/{channel}/events",
        data=body,
        auth=session,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    await still_serving(api, username, session)


async def test_multipart_with_a_missing_boundary_is_refused(api: Api) -> None:
    username, session = await owner(api)
    channel = await api.channel(username, session)
    reply = await api.post(
        f"/{username}/{channel}/events",
        data=b"--x\r\n\r\nhello\r\n--x--\r\n",
        auth=session,
        headers={"Content-Type": "multipart/form-data"},
    )
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    await still_serving(api, username, session)


# -- a 100 MB body, streamed over a raw socket ------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, json.loads(body)


async def test_a_100_mb_body_is_cut_off_with_413_before_it_is_all_sent(api: Api) -> None:
    username, session = await owner(api)
    total = 100 * 1024 * 1024
    host, port = api.client.host, api.client.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"POST /{username}/channels HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {session}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {total}\r\n\r\n"
        ).encode()
    )
    chunk = b'{"name": "' + b"x" * (1024 * 1024 - 10)
    sent = 0
    answer = asyncio.ensure_future(read_response(reader))
    try:
        while sent < total and not answer.done():
            writer.write(chunk)
            sent += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except (ConnectionError, TimeoutError):
                break  # the server stopped reading: its answer is on the way
        status, body = await asyncio.wait_for(answer, 10)
    finally:
        answer.cancel()
        writer.close()
    assert (status, body["id"]) == (413, "PAYLOAD_TOO_LARGE")
    # the server stopped after its limit (10 MB), not after buffering the 100 MB
    assert sent < total // 2
    await still_serving(api, username, session)


async def test_a_compressed_body_expanding_past_the_limit_is_payload_too_large(api: Api) -> None:
    """A 50 MB body gzipped to ~50 KB: the limit applies to what it expands to."""
    username, session = await owner(api)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    bomb = packer.compress(b'{"name": "bomb", "clientData": {"a": "')
    zeros = b"0" * (1024 * 1024)
    for _ in range(50):
        bomb += packer.compress(zeros)
    bomb += packer.compress(b'"}}') + packer.flush()
    assert len(bomb) < 100_000
    reply = await api.post(
        f"/{username}/channels",
        data=bomb,
        auth=session,
        headers={**JSON, "Content-Encoding": "gzip"},
    )
    refused(reply, 413, "PAYLOAD_TOO_LARGE")
    await still_serving(api, username, session)


async def test_a_body_that_claims_a_compression_it_does_not_have_is_refused(api: Api) -> None:
    username, session = await owner(api)
    reply = await api.post(
        f"/{username}/channels",
        data=b'{"name": "not gzip"}',
        auth=session,
        headers={**JSON, "Content-Encoding": "gzip"},
    )
    refused(reply, 400, "INVALID_REQUEST_STRUCTURE")
    await still_serving(api, username, session)


PROTOCOL_GARBAGE = {
    "bad chunk size": b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "bad chunk framing": b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX\r\n0\r\n\r\n",
    "bad content length": b"Content-Length: abc\r\n\r\n",
    "a header over 8 KB": b"X-Big: " + b"a" * 10_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("tail", PROTOCOL_GARBAGE.values(), ids=list(PROTOCOL_GARBAGE))
async def test_a_malformed_http_message_is_refused_and_the_server_keeps_serving(
    api: Api, tail: bytes
) -> None:
    """Refused by aiohttp's parser before the application runs: 400 with an API error
    (JSON, INVALID_REQUEST_STRUCTURE) and the connection closed."""
    username, session = await owner(api)
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    try:
        writer.write(
            f"POST /{username}/channels HTTP/1.1\r\nHost: x\r\nAuthorization: {session}\r\n"
            "Content-Type: application/json\r\n".encode()
            + tail
        )
        answer = await asyncio.wait_for(reader.read(), 5)  # until the server closes
    finally:
        writer.close()
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:100]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, head
    assert orjson.loads(body)["id"] == "INVALID_REQUEST_STRUCTURE", body
    assert b"Traceback" not in answer
    channels = await api.get(f"/{username}/channels", auth=session)
    assert channels.body == []
    await still_serving(api, username, session)


# -- Socket.IO ------------------------------------------------------------------------------


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


@pytest.mark.parametrize(
    "params", ["a string", 42, True, [1, 2, 3]], ids=["string", "number", "bool", "list"]
)
async def test_socket_params_that_are_not_an_object_get_an_error_ack(api: Api, params: Any) -> None:
    username, session = await owner(api)
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("channels.create", params, within=5)
        assert result is None
        assert error["id"] == "INVALID_PARAMETERS_FORMAT", error
        error, result = await sock.call("channels.get", {}, within=5)
        assert error is None and result == []


async def raw_socket_call(api: Api, username: str, session: str, packet: str) -> str:
    """Send one raw Socket.IO EVENT packet (ack id 1) over a websocket and return the ACK.

    Raw, because python-socketio's client would encode with the same process-wide JSON hook
    as the server and refuse the payload before sending it.
    """
    async with aiohttp.ClientSession() as http:
        ws_url = url(api).rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            opened = await ws.receive_str(timeout=5)
            assert opened.startswith("0{"), opened
            await ws.send_str(f"40/{username},{json.dumps({'token': session})}")
            while True:
                message = await ws.receive_str(timeout=5)
                if message.startswith(f"40/{username},"):
                    break
            await ws.send_str(f"42/{username},1{packet}")
            while True:
                message = await ws.receive_str(timeout=5)
                if message == "2":
                    await ws.send_str("3")  # engine.io ping
                elif message.startswith(f"43/{username},1"):
                    return message[len(f"43/{username},1") :]


@pytest.mark.parametrize(
    "packet",
    [
        '["channels.create", {"name": "deep", "clientData": {"a": '
        + "[" * 10_000
        + "]" * 10_000
        + "}}]",
        '["channels.create", {"name": "nan", "clientData": {"n": NaN}}]',
        '["channels.create", {"name": "big", "clientData": {"n": 1e400}}]',
        '["channels.create", {"name": "cut", "clientData": {"a": [1, 2',
        '{"channels.create": {"name": "object"}}',
        "[]",
        "true",  # (a bare number would read as part of the ack id)
        '[["channels.get"], {}]',
        "[null]",
    ],
    ids=[
        "nested 10 000 deep",
        "NaN",
        "1e400",
        "truncated",
        "an object",
        "an empty array",
        "a boolean",
        "a list as the name",
        "null as the name",
    ],
)
async def test_socket_params_that_cannot_be_decoded_get_an_error_ack_not_a_hang(
    api: Api, packet: str
) -> None:
    username, session = await owner(api)
    ack = json.loads(await asyncio.wait_for(raw_socket_call(api, username, session, packet), 10))
    error, result = ack
    assert result is None
    assert error["id"] == "INVALID_REQUEST_STRUCTURE", error
    # the socket layer still works for everyone
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("channels.get", {}, within=5)
        assert error is None and result == []
    await still_serving(api, username, session)
