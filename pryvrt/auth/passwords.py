"""Password hashing with argon2id, always off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Cheap parameters for test suites only (PRYVRT_FAST_PASSWORD_HASH=1): still argon2id.
_fast_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _pick(fast: bool) -> PasswordHasher:
    return _fast_hasher if fast else _hasher


async def hash_password(password: str, *, fast: bool = False) -> str:
    return await asyncio.to_thread(_pick(fast).hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Constant-time verification (argon2 compares digests itself)."""

    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


# A real hash to verify against when the username is unknown, so that timing does not
# tell which usernames exist.
DUMMY_HASH = _hasher.hash("pryvrt-dummy-password")
