"""A large flatJSON body decoded with its points as a float64 matrix (events.addSeriesPoints).

``orjson.loads`` of 100 000 points builds 100 000 lists (each one tracked by the garbage
collector, whose passes then walk them: most of the decoding time) and 200 000 floats,
then ``parse_points`` checks each value and copies it into numpy. Here the ``points``
array of the raw body is rewritten as one flat list of numbers (brackets become spaces),
which orjson decodes without a list per point, once its skeleton (the brackets and commas
left when numbers and whitespace are removed) is exactly that of rows of equal length.
orjson itself still checks every number (strict JSON, finite, integers within 64 bits by
``exact_json``): the values are the ones the ordinary path reads, bit for bit.

Anything else (``null``, a string, ragged rows, nested lists, ``"points"`` twice, an
empty list, whitespace between the closing brackets, any error) makes ``loads`` decode the
body the ordinary way: the same answers and errors (naming the bad row) as without the
fast path.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from pryvrt.transports import exact_json

_KEY = b'"points"'
_VALUE = re.compile(rb"\s*:\s*\[\[")
_NUMBER_OR_SPACE = b"0123456789eE+-. \t\r\n"
_BRACKETS_TO_SPACES = bytes.maketrans(b"[]", b"  ")


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
        flat = exact_json.loads(b"[" + segment[1:-1].translate(_BRACKETS_TO_SPACES) + b"]")
        # The rest of the body, the points replaced by null. "points" occurs once in the
        # body: if null is what the rest holds under "points", the array cut out was its
        # value (an occurrence inside a string leaves no such key).
        rest = exact_json.loads(raw[:start] + b"null" + raw[end:])
    except ValueError:
        return None
    if not isinstance(rest, dict) or "points" not in rest or rest["points"] is not None:
        return None
    if len(flat) != rows * width:
        return None
    rest["points"] = np.array(flat, np.float64).reshape(rows, width)
    return rest
