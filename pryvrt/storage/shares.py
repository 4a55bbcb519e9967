"""In-app shares (API.md §14): shared tokens delivered to another user of the server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from pryvrt.storage.base import Executor, Store


@dataclass(frozen=True, slots=True)
class Share:
    """A share as its recipient sees it; ``token`` is the shared token (its secret id)."""

    id: str
    from_username: str
    name: str
    url: str
    token: str
    created: float

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fromUsername": self.from_username,
            "name": self.name,
            "url": self.url,
            "token": self.token,
            "created": self.created,
        }


def _share(row: asyncpg.Record) -> Share:
    return Share(
        row["id"], row["from_username"], row["name"], row["url"], row["token_id"], row["created"]
    )


# A share shows only while its token exists (the join): a deleted token withdraws it even
# before the row is gone.
_SELECT = (
    "SELECT s.id, u.username AS from_username, s.name, s.url, s.token_id, s.created"
    " FROM shares s JOIN users u ON u.user_id = s.from_user_id"
    " JOIN tokens t ON t.user_id = s.from_user_id AND t.id = s.token_id"
    " WHERE s.user_id = $1"
)


class SharesStore(Store):
    async def list_all(self, user_id: str) -> list[Share]:
        """The shares delivered to ``user_id``, newest first."""
        rows = await self.pool.fetch(_SELECT + " ORDER BY s.created DESC, s.id", user_id)
        return [_share(r) for r in rows]

    async def get(
        self, user_id: str, share_id: str, conn: Executor = None, *, for_update: bool = False
    ) -> Share | None:
        """One share; ``for_update`` (in a transaction): row-locked, so that two concurrent
        accepts make one bookmark."""
        lock = " FOR UPDATE OF s" if for_update else ""
        row = await (conn or self.pool).fetchrow(
            _SELECT + " AND s.id = $2" + lock, user_id, share_id
        )
        return _share(row) if row else None

    async def create(
        self,
        conn: Executor,
        user_id: str,
        share_id: str,
        from_user_id: str,
        token_id: str,
        name: str,
        url: str,
        now: float,
    ) -> None:
        await conn.execute(
            "INSERT INTO shares (user_id, id, from_user_id, token_id, name, url, created)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            user_id,
            share_id,
            from_user_id,
            token_id,
            name,
            url,
            now,
        )

    async def delete(self, user_id: str, share_id: str, conn: Executor = None) -> bool:
        status: str = await (conn or self.pool).execute(
            "DELETE FROM shares WHERE user_id = $1 AND id = $2", user_id, share_id
        )
        return status != "DELETE 0"

    async def withdraw(self, conn: Executor, from_user_id: str, token_id: str) -> list[str]:
        """Delete the shares of a token; return their recipients' user ids."""
        rows = await conn.fetch(
            "DELETE FROM shares WHERE from_user_id = $1 AND token_id = $2 RETURNING user_id",
            from_user_id,
            token_id,
        )
        return sorted({r["user_id"] for r in rows})
