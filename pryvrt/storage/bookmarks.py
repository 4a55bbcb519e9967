"""Sharing bookmarks: tokens other users shared with this user, kept to reopen later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from pryvrt.storage.base import Conflict, Executor, Store, conflict_field


@dataclass(frozen=True, slots=True)
class Bookmark:
    id: str
    name: str
    url: str
    access_token: str

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "url": self.url, "accessToken": self.access_token}


def _bookmark(row: asyncpg.Record) -> Bookmark:
    return Bookmark(row["id"], row["name"], row["url"], row["access_token"])


class BookmarksStore(Store):
    async def list_all(self, user_id: str) -> list[Bookmark]:
        rows = await self.pool.fetch(
            "SELECT * FROM bookmarks WHERE user_id = $1 ORDER BY name", user_id
        )
        return [_bookmark(r) for r in rows]

    async def create(
        self,
        user_id: str,
        bookmark_id: str,
        name: str,
        url: str,
        access_token: str,
        now: float,
        conn: Executor = None,
    ) -> Bookmark:
        try:
            row = await (conn or self.pool).fetchrow(
                "INSERT INTO bookmarks (user_id, id, name, url, access_token, created, modified)"
                " VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *",
                user_id,
                bookmark_id,
                name,
                url,
                access_token,
                now,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return _bookmark(row)

    async def rename(
        self, user_id: str, bookmark_id: str, name: str, now: float, conn: Executor = None
    ) -> Bookmark | None:
        try:
            row = await (conn or self.pool).fetchrow(
                "UPDATE bookmarks SET name = $3, modified = $4"
                " WHERE user_id = $1 AND id = $2 RETURNING *",
                user_id,
                bookmark_id,
                name,
                now,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return _bookmark(row) if row else None

    async def delete(self, user_id: str, bookmark_id: str, conn: Executor = None) -> bool:
        status: str = await (conn or self.pool).execute(
            "DELETE FROM bookmarks WHERE user_id = $1 AND id = $2", user_id, bookmark_id
        )
        return status != "DELETE 0"
