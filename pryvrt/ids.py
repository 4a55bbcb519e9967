"""Server-generated identifiers and secrets."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id() -> str:
    """A 25-character id: 10 chars of millisecond time (so ids sort roughly by creation)
    then 15 random characters (~77 bits): collision-resistant and URL-safe."""
    return _base36(time.time_ns() // 1_000_000, 10) + _base36(secrets.randbits(78), 15)


def new_secret() -> str:
    """A credential (token id, session id, read token): 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)
