"""Server-generated identifiers and secrets."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Random bytes → base-36 characters in C (bytes.translate): the values 0..251 map 7 to a
# character and 252..255 are dropped, so every character is uniform (log2(36) bits).
_TO_BASE36_TABLE = bytes(ord(_ALPHABET[value % 36]) for value in range(256))
_DROP = bytes(range(252, 256))
_RANDOM_CHARS = 15  # 15 x 5.17 = 77.5 bits


def _base36(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


_last_ms = -1
_last_prefix = ""


def _time_prefix() -> str:
    """10 base-36 characters of the millisecond clock (computed once per millisecond)."""
    global _last_ms, _last_prefix
    ms = time.time_ns() // 1_000_000
    if ms != _last_ms:
        _last_ms, _last_prefix = ms, _base36(ms, 10)
    return _last_prefix


def _random_chars(count: int) -> str:
    out = b""
    while len(out) < count:
        # Bytes 252..255 are dropped (not translated to a character): no modulo bias.
        out += secrets.token_bytes(count + 4).translate(_TO_BASE36_TABLE, _DROP)
    return out[:count].decode()


def new_id() -> str:
    """A 25-character id: 10 chars of millisecond time (so ids sort roughly by creation)
    then 15 random characters (~77 bits): collision-resistant and URL-safe."""
    return _time_prefix() + _random_chars(_RANDOM_CHARS)


def new_secret() -> str:
    """A credential (token id, session id, read token): 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)
