"""The fast decoding of flatJSON points (pryvrt/methods/series_json.py): the values it
reads are the ordinary decoder's bit for bit, every body it cannot prove plain is decoded
the ordinary way, and over HTTP a large body answers exactly as the ordinary path does."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import orjson
import pytest

from pryvrt.methods import series_json
from pryvrt.transports import exact_json
from tests.activity import owner
from tests.conftest import Api
from tests.test_series import add, new_series, one_event, points_of


def ordinary(raw: bytes) -> Any:
    return exact_json.loads(raw)


def random_number(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randint(-(10**15), 10**15))
    if kind == 1:
        return repr(rng.uniform(-1e6, 1e6))
    if kind == 2:
        return f"{rng.uniform(-10, 10):.{rng.randint(1, 17)}e}"
    if kind == 3:
        return f"{rng.uniform(0, 1):.{rng.randint(1, 25)}f}"  # more digits than a double holds
    if kind == 4:
        return repr(
            rng.choice([0.0, -0.0, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308])
        )
    return f"{rng.randint(0, 999)}E{rng.choice(['', '+', '-'])}{rng.randint(0, 300):03d}"


@pytest.mark.parametrize("slice_bytes", [8, 100, 128 * 1024])
@pytest.mark.parametrize("seed", range(12))
def test_plain_rows_decode_to_the_same_floats_as_the_ordinary_decoder(
    seed: int, slice_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(series_json, "BYTES_PER_SLICE", slice_bytes)  # one slice, or many
    rng = random.Random(seed)
    width, rows = rng.randint(1, 5), rng.randint(1, 300)
    space = rng.choice(["", " ", "\n  "])
    points = [[random_number(rng) for _ in range(width)] for _ in range(rows)]
    text = f",{space}".join("[" + f",{space}".join(p) + "]" for p in points)
    raw = (
        f'{{"format": "flatJSON", "fields": ["deltaTime"],{space}"points":{space}[{text}]{space},'
        ' "extra": {"points?": "a key like points"}}'
    ).encode()
    expected = ordinary(raw)
    got = series_json.loads(raw)
    assert isinstance(got["points"], np.ndarray)
    assert got["points"].shape == (rows, width)
    wanted = np.array(expected.pop("points"), np.float64)
    assert got["points"].tobytes() == wanted.tobytes()  # bit for bit, -0.0 included
    del got["points"]
    assert got == expected


NOT_PLAIN = [
    b'{"points": [[0, null]]}',
    b'{"points": [[0, "1"]]}',
    b'{"points": [[0, true]]}',
    b'{"points": [[0, 1], [2]]}',
    b'{"points": [[0, [1]]]}',
    b'{"points": [[0, 1], 2]}',
    b'{"points": []}',
    b'{"points": [[]]}',
    b'{"points": [[0, 1] ]}',
    b'{"points": [[0, 1]], "points": [[2, 3]]}',
    b'{"a": "\\"points", "b": [[0, 1]]}',
    b'{"\\"points": [[0, 1]]}',
    b'[{"points": [[0, 1]]}]',
    b'{"points": [[0, +1]]}',
    b'{"points": [[0, .5]]}',
    b'{"points": [[0, 01]]}',
    b'{"points": [[0, 1.]]}',
    b'{"points": [[0, 1 2]]}',
    b'{"points": [[0, 1.2.3]]}',
    b'{"points": [[0, 1e]]}',
    b'{"points": [[0, -]]}',
    b'{"points": [[0, 1,]]}',
    b'{"points": [[0,, 1]]}',
    b'{"points": [[0, 1e400]]}',
    b'{"points": [[0, NaN]]}',
    b'{"points": [[0, 123456789012345678901234567890]]}',
    b'{"points": [[0, 1]]',
    b'{"points": [[0, 1]]} x',
]


@pytest.mark.parametrize("raw", NOT_PLAIN)
def test_bodies_that_are_not_plain_rows_of_numbers_decode_the_ordinary_way(raw: bytes) -> None:
    try:
        expected: Any = ordinary(raw)
    except ValueError as exc:
        with pytest.raises(type(exc)) as caught:
            series_json.loads(raw)
        assert str(caught.value) == str(exc)
        return
    got = series_json.loads(raw)
    assert got == expected
    assert not any(isinstance(v, np.ndarray) for v in (got if isinstance(got, list) else [got]))


BIG = [
    # (a number among plain rows, taken by the fast path): integers at the edges of 64 bits
    # and large floats read the same as on the ordinary path; beyond 64 bits, the same error.
    ("9223372036854775807", True),
    ("-9223372036854775808", True),
    ("18446744073709551615", False),
    ("-9223372036854775809", False),
    ("123456789012345678901234567890", False),
    ("1.7976931348623157e308", True),
    ("9223372036854775808.0", True),
    ("92233720368547758080e-1", True),
]


@pytest.mark.parametrize("slice_bytes", [8, 16 * 1024])
@pytest.mark.parametrize(("number", "plain"), BIG)
def test_numbers_of_2_63_and_more_among_many_rows_read_as_on_the_ordinary_path(
    number: str, plain: bool, slice_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(series_json, "BYTES_PER_SLICE", slice_bytes)
    rows = [f"[{i}, {i % 7}.5]" for i in range(3000)]
    rows[1234] = f"[1234, {number}]"
    raw = ('{"fields": ["deltaTime", "value"], "points": [' + ", ".join(rows) + "]}").encode()
    if not plain:
        with pytest.raises(exact_json.NumberOutOfRange) as refused:
            ordinary(raw)
        with pytest.raises(exact_json.NumberOutOfRange) as caught:
            series_json.loads(raw)
        assert str(caught.value) == str(refused.value)
        return
    got = series_json.loads(raw)["points"]
    assert isinstance(got, np.ndarray)
    expected = np.array(ordinary(raw)["points"], np.float64)
    assert got.tobytes() == expected.tobytes()


def body(points: Any) -> bytes:
    return orjson.dumps({"format": "flatJSON", "fields": ["deltaTime", "value"], "points": points})


async def test_a_large_body_round_trips_through_the_fast_path(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    points = [[i * 0.02, round(70 + (i % 97) * 0.1, 1)] for i in range(30_000)]
    random.Random(1).shuffle(points)
    assert isinstance(series_json.loads(body(points))["points"], np.ndarray)
    reply = await api.post(
        me.path(f"/events/{event_id}/series"),
        auth=me.session,
        data=body(points),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 200, reply
    assert await points_of(me, event_id) == sorted(points)
    assert (await one_event(me, event_id))["duration"] == 29_999 * 0.02


LARGE_BAD = [
    # (the last point, the error's data): rows the fast path leaves to the ordinary one.
    ([1000.0, "71"], {"row": 29_999, "field": "value"}),
    ([1000.0, None], {"row": 29_999, "field": "value"}),
    ([1000.0], {"row": 29_999}),
    # A well-formed matrix the checks refuse: a negative deltaTime.
    ([-1.0, 70.0], {"row": 29_999}),
]


@pytest.mark.parametrize(("last", "data"), LARGE_BAD)
async def test_a_bad_row_at_the_end_of_a_large_body_is_named_and_nothing_is_stored(
    api: Api, last: list[Any], data: dict[str, Any]
) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    assert (await add(me, event_id, ["deltaTime", "value"], [[5000.0, 1.0]])).status == 200
    points: list[list[Any]] = [[i * 0.02, 70.0] for i in range(29_999)] + [last]
    reply = await api.post(
        me.path(f"/events/{event_id}/series"),
        auth=me.session,
        data=body(points),
        headers={"Content-Type": "application/json"},
    )
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
    assert {k: reply.body["data"].get(k) for k in data} == data
    assert await points_of(me, event_id) == [[5000.0, 1.0]]


async def test_rows_of_the_wrong_length_answer_as_on_the_ordinary_path(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    points = [[float(i), 1.0, 2.0] for i in range(100)]  # a matrix, one column too many
    over_http = await api.post(
        me.path(f"/events/{event_id}/series"),
        auth=me.session,
        data=body(points),
        headers={"Content-Type": "application/json"},
    )
    # The method batch decodes its body the ordinary way (lists).
    call = {
        "method": "events.addSeriesPoints",
        "params": {
            "channelId": me.channel,
            "id": event_id,
            "fields": ["deltaTime", "value"],
            "points": points,
        },
    }
    in_batch = await api.post(f"/{me.username}/", [call], auth=me.session)
    assert in_batch.status == 200, in_batch
    error = in_batch.body[0]["error"]
    assert over_http.status == 400
    assert over_http.body["id"] == error["id"] == "INVALID_PARAMETERS_FORMAT"
    assert over_http.body["data"] == error["data"] == {"row": 0}
    assert over_http.body["message"] == error["message"]
    assert await points_of(me, event_id) == []


def test_a_python_client_s_default_json_takes_the_fast_path() -> None:
    raw = json.dumps({"fields": ["deltaTime", "value"], "points": [[0, 1.5], [1, 2]]}).encode()
    assert series_json.loads(raw)["points"].tolist() == [[0.0, 1.5], [1.0, 2.0]]


@pytest.mark.parametrize("width", range(1, 9))
def test_points_are_encoded_byte_for_byte_as_orjson_encodes_the_matrix(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(series_json, "ROWS_PER_SLICE", 7)  # pieces joined at every size
    rng = np.random.default_rng(width)
    for rows in (0, 1, 2, 6, 7, 8, 14, 15, 500):
        points = rng.normal(size=(rows, width)) * 10.0 ** rng.integers(-300, 300, (rows, width))
        if rows:
            points[rng.random((rows, width)) < 0.2] = np.nan  # null
            points[0, 0] = -0.0
        expected = orjson.dumps(points, option=orjson.OPT_SERIALIZE_NUMPY)
        assert series_json.dumps_rows(points) == expected
