"""Numbers: every numeric parameter is bounded (400 INVALID_PARAMETERS_FORMAT, never a 500),
and JSON numbers are kept exact or refused (docs/events.md, "Numbers")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import Api
from tests.test_malformed_input import raw_socket_call

BIG = 2**63 - 1  # the largest integer a JSON body may hold: beyond every numeric bound
HUGE = 10**30  # beyond 64 bits: orjson alone would read it as a float

# (path template, method id, params) for a query parameter or body field holding a number.
QUERY_NUMBERS = [
    ("events", "skip"),
    ("events", "limit"),
    ("events", "fromTime"),
    ("events", "toTime"),
    ("events", "modifiedSince"),
    ("folders", "timeCountBase"),
]
OUT_OF_RANGE = ["9223372036854775808", "-1", "1e308", "-1e308", str(HUGE), "1e400"]


async def setup(api: Api) -> tuple[str, str, str]:
    username, session = await api.user()
    channel = await api.channel(username, session)
    reply = await api.post(
        f"/{username}/{channel}/events/start", {"folderId": None, "id": "p"}, auth=session
    )
    if reply.status != 201:  # events.start needs a folder
        await api.post(f"/{username}/{channel}/folders", {"id": "f", "name": "F"}, session)
        reply = await api.post(
            f"/{username}/{channel}/events/start", {"folderId": "f", "id": "p"}, auth=session
        )
    assert reply.status == 201, reply
    return username, session, channel


def bad_format(reply: Any, name: str) -> None:
    assert reply.status == 400, reply
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT", reply
    assert name in reply.body["data"], reply


async def test_skip_beyond_64_bits_is_a_parameter_error_not_a_server_error(api: Api) -> None:
    username, session, channel = await setup(api)
    reply = await api.get(f"/{username}/{channel}/events?skip=9223372036854775808", auth=session)
    bad_format(reply, "skip")


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize(("resource", "name"), QUERY_NUMBERS)
async def test_numeric_query_parameters_out_of_range_are_refused(
    api: Api, resource: str, name: str, value: str
) -> None:
    username, session, channel = await setup(api)
    reply = await api.get(f"/{username}/{channel}/{resource}?{name}={value}", auth=session)
    if name in ("fromTime", "toTime", "modifiedSince", "timeCountBase") and value == "-1":
        assert reply.status == 200, reply  # a time before 1970 is a time
        return
    bad_format(reply, name)


@pytest.mark.parametrize(
    ("route", "body", "name"),
    [
        ("events", {"time": 1e300}, "time"),
        ("events", {"time": 1.0, "duration": 1e300}, "duration"),
        ("events", {"time": -1e300}, "time"),
        ("events/start", {"time": BIG}, "time"),
        ("events/stop", {"time": 1e300}, "time"),
    ],
)
async def test_event_times_and_durations_out_of_range_are_refused(
    api: Api, route: str, body: dict[str, Any], name: str
) -> None:
    username, session, channel = await setup(api)
    reply = await api.post(
        f"/{username}/{channel}/{route}", {"folderId": "f", **body}, auth=session
    )
    if route == "events/stop":
        reply = await api.post(f"/{username}/{channel}/{route}", body, auth=session)
    bad_format(reply, name)


async def test_numeric_parameters_out_of_range_in_a_batch_are_item_errors(api: Api) -> None:
    username, session, channel = await setup(api)
    calls = [
        {"method": "events.get", "params": {"channelId": channel, "skip": BIG}},
        {"method": "events.get", "params": {"channelId": channel, "limit": BIG}},
        {"method": "events.get", "params": {"channelId": channel, "fromTime": -1e308}},
        {"method": "folders.get", "params": {"channelId": channel, "timeCountBase": 1e308}},
        {"method": "events.get", "params": {"channelId": channel, "skip": 0, "limit": 5}},
    ]
    reply = await api.post(f"/{username}/", calls, auth=session)
    assert reply.status == 200, reply
    for result, name in zip(
        reply.body[:4], ["skip", "limit", "fromTime", "timeCountBase"], strict=True
    ):
        assert result["error"]["id"] == "INVALID_PARAMETERS_FORMAT", result
        assert name in result["error"]["data"], result
    assert [e["id"] for e in reply.body[4]["result"]] == ["p"]


@pytest.mark.parametrize("number", [2**63 - 1, -(2**63), 2**53 + 1, 12345678901234567890 // 10])
async def test_integers_within_64_bits_come_back_exact(api: Api, number: int) -> None:
    username, session, channel = await setup(api)
    reply = await api.post(
        f"/{username}/{channel}/events",
        {
            "id": "n",
            "folderId": "f",
            "value": {"type": "count/generic", "value": number},
            "clientData": {"n": number},
        },
        auth=session,
    )
    assert reply.status == 201, reply
    [event] = [
        e
        for e in (await api.get(f"/{username}/{channel}/events", auth=session)).body
        if e["id"] == "n"
    ]
    assert event["value"] == {"type": "count/generic", "value": number}
    assert isinstance(event["value"]["value"], int)
    assert event["clientData"] == {"n": number}
    channels = (await api.get(f"/{username}/channels", auth=session)).body
    reply = await api.put(
        f"/{username}/channels/{channel}", {"clientData": {"n": number}}, auth=session
    )
    assert reply.status == 200, reply
    channels = (await api.get(f"/{username}/channels", auth=session)).body
    assert channels[0]["clientData"] == {"n": number}


@pytest.mark.parametrize("literal", [b"9223372036854775808", b"-9223372036854775809", b"1" * 30])
async def test_integers_beyond_64_bits_are_refused_not_turned_into_floats(
    api: Api, literal: bytes
) -> None:
    username, session, channel = await setup(api)
    for path, body in [
        (f"/{username}/channels", b'{"name": "big", "clientData": {"n": %s}}' % literal),
        (
            f"/{username}/{channel}/events",
            b'{"folderId": "f", "type": "x/y", "content": [1, {"deep": %s}]}' % literal,
        ),
        (
            f"/{username}/",
            b'[{"method": "channels.create", "params": {"name": "b", "clientData": {"n": %s}}}]'
            % literal,
        ),
    ]:
        reply = await api.post(
            path, data=body, auth=session, headers={"Content-Type": "application/json"}
        )
        assert reply.status == 400, (path, reply)
        assert reply.body["id"] == "INVALID_REQUEST_STRUCTURE", reply
        assert "64" in reply.body["message"], reply
    # Nothing was written.
    assert [c["id"] for c in (await api.get(f"/{username}/channels", auth=session)).body] == [
        channel
    ]
    assert [
        e["id"] for e in (await api.get(f"/{username}/{channel}/events", auth=session)).body
    ] == ["p"]


async def test_long_digit_runs_inside_strings_and_fractions_are_kept(api: Api) -> None:
    username, session = await api.user()
    digits = "1" * 40
    reply = await api.post(
        f"/{username}/channels",
        data=b'{"name": "%s", "clientData": {"x": 0.%s, "s": "%s"}}'
        % (digits.encode(), digits.encode(), digits.encode()),
        auth=session,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 201, reply
    [channel] = (await api.get(f"/{username}/channels", auth=session)).body
    assert channel["name"] == digits
    assert channel["clientData"] == {"x": float("0." + digits), "s": digits}


async def test_a_socket_call_with_an_integer_beyond_64_bits_gets_an_error_ack(api: Api) -> None:
    username, session = await api.user()
    packet = '["channels.create", {"name": "big", "clientData": {"n": %s}}]' % ("9" * 25)
    ack = json.loads(await asyncio.wait_for(raw_socket_call(api, username, session, packet), 10))
    error, result = ack
    assert result is None
    assert error["id"] == "INVALID_REQUEST_STRUCTURE", error
    assert (await api.get(f"/{username}/channels", auth=session)).body == []
