"""Users: accounts with a password hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from pryvrt.storage.base import Conflict, Executor, Store, conflict_field


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str | None
    language: str
    created: float

    def to_api(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "email": self.email,
            "language": self.language,
            "created": self.created,
        }


def _user(row: asyncpg.Record) -> User:
    return User(row["user_id"], row["username"], row["email"], row["language"], row["created"])


class UsersStore(Store):
    async def create(
        self,
        user_id: str,
        username: str,
        password_hash: str,
        email: str | None,
        language: str,
        created: float,
        conn: Executor = None,
    ) -> User:
        try:
            row = await (conn or self.pool).fetchrow(
                "INSERT INTO users (user_id, username, email, language, password_hash, created)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                user_id,
                username,
                email,
                language,
                password_hash,
                created,
            )
        except asyncpg.UniqueViolationError as exc:
            field = conflict_field(exc)
            raise Conflict("email" if field == "email" else "username") from None
        return _user(row)

    async def by_username(self, username: str, conn: Executor = None) -> User | None:
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM users WHERE username = $1", username.lower()
        )
        return _user(row) if row else None

    async def password_hash(self, user_id: str, conn: Executor = None) -> str | None:
        value: str | None = await (conn or self.pool).fetchval(
            "SELECT password_hash FROM users WHERE user_id = $1", user_id
        )
        return value

    async def set_password_hash(self, user_id: str, password_hash: str, conn: Executor) -> None:
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash
        )

    async def update_info(
        self, user_id: str, changes: dict[str, Any], conn: Executor = None
    ) -> User:
        """Update ``email`` and/or ``language`` (keys already validated)."""
        try:
            row = await (conn or self.pool).fetchrow(
                "UPDATE users SET"
                " email = CASE WHEN $2 THEN $3 ELSE email END,"
                " language = coalesce($4, language)"
                " WHERE user_id = $1 RETURNING *",
                user_id,
                "email" in changes,
                changes.get("email"),
                changes.get("language"),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("email") from None
        return _user(row)
