"""flatJSON points between JSON text and float64 matrices, fast (events.addSeriesPoints,
events.getSeries).

Decoding (``loads``): a large body with its points as a matrix.

``orjson.loads`` of 100 000 points builds 100 000 lists (each one tracked by the garbage
collector, whose passes then walk them: most of the decoding time) and 200 000 floats,
then ``parse_points`` checks each value and copies it into numpy. Here the ``points``
array of the raw body is rewritten as one flat list of numbers (brackets become spaces),
which orjson decodes without a list per point, once its skeleton (the brackets and commas
left when numbers and whitespace are removed) is exactly that of rows of equal length.
orjson itself still checks every number (strict JSON, finite; an integer beyond 64 bits,
which ``exact_json`` refuses, sends the body the ordinary way): the values are the ones
the ordinary path reads, bit for bit.

Anything else (``null``, a string, ragged rows, nested lists, ``"points"`` twice, an
empty list, whitespace between the closing brackets, any error) makes ``loads`` decode the
body the ordinary way: the same answers and errors (naming the bad row) as without the
fast path.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import orjson

from pryvrt.storage.series_codec import Points
from pryvrt.transports import exact_json

_KEY = b'"points"'
_VALUE = re.compile(rb"\s*:\s*\[\[")
_NUMBER_OR_SPACE = b"0123456789eE+-. \t\r\n"
_BRACKETS_TO_SPACES = bytes.maketrans(b"[]", b"  ")
_COMMA, _BAR = ord(","), ord("|")


def loads(raw: bytes) -> Any:
    """The JSON body, its ``points`` as a float64 matrix when they are rows of numbers of
    equal length; else ``exact_json.loads(raw)`` (lists of Python values)."""
    fast = _with_matrix(raw)
    return exact_json.loads(raw) if fast is None else fast


def _with_matrix(raw: bytes) -> dict[str, Any] | None:
    at = raw.find(_KEY)
    if at < 0 or raw.find(_KEY, at + 1) >= 0:
        return None
    value = _VALUE.match(raw, at + len(_KEY))
    if value is None:
        return None
    start = value.end() - 2
    end = raw.find(b"]]", start) + 2
    if end < 2:
        return None
    segment = raw[start:end]
    skeleton = segment.translate(None, _NUMBER_OR_SPACE)
    rows = skeleton.count(b"[") - 1
    width = skeleton.find(b"]") - 1
    if rows < 1 or width < 1:
        return None
    row = b"," * (width - 1)
    if skeleton != b"[[" + (row + b"],[") * (rows - 1) + row + b"]]":
        return None
    try:
        values = _numbers(segment[1:-1], rows * width)
        # The rest of the body, the points replaced by null. "points" occurs once in the
        # body: if null is what the rest holds under "points", the array cut out was its
        # value (an occurrence inside a string leaves no such key).
        rest = exact_json.loads(raw[:start] + b"null" + raw[end:])
    except ValueError:
        return None
    if not isinstance(rest, dict) or "points" not in rest or rest["points"] is not None:
        return None
    if values is None:
        return None
    rest["points"] = values.reshape(rows, width)
    return rest


# Text decoded per orjson call (~1 100 points of two fields, ~0.2 ms): the decoding runs in
# a thread, and a call holds the interpreter lock, so the event loop never waits longer
# than that for its turn (at 128 KiB, other users' calls took 1-2 ms more while a large
# body was decoded).
BYTES_PER_SLICE = 16 * 1024
_OPEN, _CLOSE = ord("["), ord("]")
# A JSON integer beyond signed 64 bits reads as a double of at least this magnitude.
_LONG_INTEGER = 2.0**63


def _numbers(rows: bytes, count: int) -> np.ndarray | None:
    """The ``count`` numbers of ``rows`` (``[a, b], [c, d]``, skeleton checked), decoded
    by orjson a slice of whole rows at a time; None if they are not ``count`` numbers.
    Raises ValueError for invalid JSON or an integer beyond 64 bits (which orjson reads as
    a float, and ``exact_json`` refuses)."""
    # Inner brackets become spaces; each slice gets its outer ones back in place, and is
    # read through a memoryview: no copy per slice.
    flat = bytearray(rows.translate(_BRACKETS_TO_SPACES))
    view = memoryview(flat)
    values = np.empty(count)
    filled = start = 0
    while start >= 0:
        close = rows.find(b"]", start + BYTES_PER_SLICE)
        stop = len(rows) if close < 0 else close + 1
        flat[start], flat[stop - 1] = _OPEN, _CLOSE
        numbers = orjson.loads(view[start:stop])
        size = len(numbers)
        if filled + size > count:
            return None
        # struct packs a list of floats (or ints) as doubles 2-3x faster than array.array
        # or numpy (no type guessing; the same conversion, PyFloat_AsDouble).
        values[filled : filled + size] = np.frombuffer(struct.pack(f"{size}d", *numbers))
        filled += size
        start = rows.find(b"[", stop)
    if filled != count:
        return None
    # Only a number of 2**63 or more may be such an integer: then exact_json checks the
    # literals (raising NumberOutOfRange, a ValueError, for one beyond 64 bits).
    if np.abs(values).max() >= _LONG_INTEGER and exact_json.may_hold_long_integers(rows):
        exact_json.loads(b"[" + rows.translate(_BRACKETS_TO_SPACES) + b"]")
    return values


# Rows encoded per orjson call: a call holds the GIL (~20 ms for 100 000 points of two
# fields on a slow core), so the event loop waits at most that long for its turn.
ROWS_PER_SLICE = 65_536


def dumps_rows(points: Points) -> bytes:
    """``orjson.dumps(points, option=OPT_SERIALIZE_NUMPY)`` of a float64 matrix (NaN →
    null), byte for byte, in about half the time: orjson encodes a flat array much faster
    than a 2-D one (row by row), so the matrix is encoded flat and the row brackets put
    back (every ``width``-th comma becomes ``],[``)."""
    n, width = points.shape
    if n == 0:
        return b"[]"
    pieces = []
    for start in range(0, n, ROWS_PER_SLICE):
        part = np.ascontiguousarray(points[start : start + ROWS_PER_SLICE]).ravel()
        flat = bytearray(orjson.dumps(part, option=orjson.OPT_SERIALIZE_NUMPY))
        if width > 1:  # "|" never occurs in orjson's numbers
            text = np.frombuffer(flat, np.uint8)
            text[np.flatnonzero(text == _COMMA)[width - 1 :: width]] = _BAR
        pieces.append(flat[1:-1].replace(b"|" if width > 1 else b",", b"],["))
    return b"[[" + b"],[".join(pieces) + b"]]"
