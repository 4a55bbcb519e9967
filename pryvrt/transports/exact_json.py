"""JSON decoding that never changes a number: what the server stores is what was sent.

orjson reads integers beyond 64 bits as floats (``10**30`` becomes ``1e+30``), which would
silently alter a client's ``clientData`` or ``value``. The server keeps integers of signed
64 bits exact (orjson's range, PostgreSQL's jsonb and every mainstream JSON library agree
on it) and refuses the others, like it already refuses numbers beyond double range
(``1e400``): the body is an ``INVALID_REQUEST_STRUCTURE`` (docs/events.md, "Numbers").

Cost: a body is scanned for a run of 19 digits (``bytes.translate`` and a substring
search, ~1 ms per MB); only a body holding one is decoded again with the standard library,
which reports each integer literal it meets.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
# Every integer outside [INT_MIN, INT_MAX] is written with 19 digits or more.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


class NumberOutOfRange(orjson.JSONDecodeError):
    """A JSON integer beyond signed 64 bits (a ``JSONDecodeError``, so callers that refuse
    invalid JSON refuse it too)."""

    def __str__(self) -> str:
        return str(self.msg)


def _checked_int(literal: str) -> int:
    value = int(literal)
    if not INT_MIN <= value <= INT_MAX:
        shown = literal if len(literal) <= 40 else literal[:37] + "..."
        raise ValueError(f"the integer {shown} does not fit in 64 bits (-2^63 to 2^63-1)")
    return value


def may_hold_long_integers(raw: bytes) -> bool:
    """Whether ``raw`` holds a run of 19 digits (else every integer in it fits in 64 bits)."""
    return _LONG_RUN in raw.translate(_DIGITS_ONLY)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads``, raising ``NumberOutOfRange`` for an integer beyond 64 bits."""
    value = orjson.loads(data)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if may_hold_long_integers(raw):
        try:
            json.loads(raw, parse_int=_checked_int)
        except ValueError as exc:
            raise NumberOutOfRange(str(exc.args[0]), "", 0) from None
        except RecursionError:  # orjson allows 1024 levels, the standard library fewer
            raise orjson.JSONDecodeError("JSON nested too deep", "", 0) from None
    return value
