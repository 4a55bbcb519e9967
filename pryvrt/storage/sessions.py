"""Admin sessions with a sliding expiry."""

from __future__ import annotations

from pryvrt.storage.base import Executor, Store


class SessionsStore(Store):
    async def create(
        self,
        user_id: str,
        session_id: str,
        app_id: str | None,
        now: float,
        ttl: float,
        conn: Executor = None,
    ) -> str:
        """Open a session; returns its public accessId (API.md §12)."""
        access_id: str = await (conn or self.pool).fetchval(
            "INSERT INTO sessions (user_id, id, app_id, created, expires)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING access_id",
            user_id,
            session_id,
            app_id,
            now,
            now + ttl,
        )
        return access_id

    async def touch(self, user_id: str, session_id: str, expires: float) -> None:
        await self.pool.execute(
            "UPDATE sessions SET expires = $3 WHERE user_id = $1 AND id = $2",
            user_id,
            session_id,
            expires,
        )

    async def delete(self, user_id: str, session_id: str, conn: Executor = None) -> bool:
        status: str = await (conn or self.pool).execute(
            "DELETE FROM sessions WHERE user_id = $1 AND id = $2", user_id, session_id
        )
        return status != "DELETE 0"

    async def delete_others(self, user_id: str, keep_id: str, conn: Executor = None) -> list[str]:
        """End every session of the user but ``keep_id``; return the ended ids."""
        rows = await (conn or self.pool).fetch(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2 RETURNING id", user_id, keep_id
        )
        return [r["id"] for r in rows]

    async def purge_expired(self, now: float) -> int:
        status: str = await self.pool.execute("DELETE FROM sessions WHERE expires < $1", now)
        return int(status.split()[-1])
