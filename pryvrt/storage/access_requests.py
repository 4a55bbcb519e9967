"""App access requests (API.md §13): pending until the user decides, kept until they expire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from pryvrt.storage.base import Executor, Store

PENDING = "NEED_SIGNIN"
ACCEPTED = "ACCEPTED"
REFUSED = "REFUSED"


@dataclass(frozen=True, slots=True)
class AccessRequest:
    key: str
    created: float
    expires: float
    app_id: str
    # As requested: §7 permissions whose items may carry defaultName (and parentId).
    permissions: list[dict[str, Any]]
    device_name: str | None
    return_url: str | None
    client_data: dict[str, Any]
    status: str
    # The user who answered (the row's answered_by).
    user_id: str | None
    username: str | None
    # The app token's secret once accepted (handed to the app by the poll).
    token_id: str | None
    reason_id: str | None
    message: str | None

    def describe(self) -> dict[str, Any]:
        """What the app asked for (no secret): shown to the user before the decision."""
        out: dict[str, Any] = {
            "key": self.key,
            "requestingAppId": self.app_id,
            "requestedPermissions": self.permissions,
            "status": self.status,
            "expires": self.expires,
            "clientData": self.client_data,
        }
        if self.device_name is not None:
            out["deviceName"] = self.device_name
        if self.return_url is not None:
            out["returnURL"] = self.return_url
        return out


def _request(row: asyncpg.Record) -> AccessRequest:
    return AccessRequest(
        row["key"],
        row["created"],
        row["expires"],
        row["app_id"],
        row["permissions"],
        row["device_name"],
        row["return_url"],
        row["client_data"],
        row["status"],
        row["answered_by"],
        row["username"],
        row["token_id"],
        row["reason_id"],
        row["message"],
    )


class AccessRequestsStore(Store):
    async def create(
        self,
        key: str,
        now: float,
        ttl: float,
        app_id: str,
        permissions: list[dict[str, Any]],
        device_name: str | None,
        return_url: str | None,
        client_data: dict[str, Any],
    ) -> AccessRequest:
        row = await self.pool.fetchrow(
            "INSERT INTO access_requests (key, created, expires, app_id, permissions,"
            " device_name, return_url, client_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " RETURNING *",
            key,
            now,
            now + ttl,
            app_id,
            permissions,
            device_name,
            return_url,
            client_data,
        )
        return _request(row)

    async def get(
        self, key: str, now: float, conn: Executor = None, *, for_update: bool = False
    ) -> AccessRequest | None:
        """The live (unexpired) request with that key."""
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM access_requests WHERE key = $1 AND expires > $2"
            + (" FOR UPDATE" if for_update else ""),
            key,
            now,
        )
        return _request(row) if row else None

    async def poll(
        self, key: str, now: float, min_interval: float
    ) -> tuple[AccessRequest | None, float]:
        """The live request, and 0 when this poll is allowed, else the seconds to wait: a
        poll counts only when the previous counted one is at least ``min_interval`` old
        (one statement: concurrent polls of one request, on any worker, cannot all pass)."""
        row = await self.pool.fetchrow(
            "WITH old AS (SELECT key, polled FROM access_requests"
            " WHERE key = $1 AND expires > $2 FOR UPDATE)"
            " UPDATE access_requests a SET polled = CASE WHEN old.polled <= $2 - $3 THEN $2"
            " ELSE old.polled END FROM old WHERE a.key = old.key"
            " RETURNING a.*, old.polled AS previous",
            key,
            now,
            min_interval,
        )
        if row is None:
            return None, 0.0
        wait = (
            0.0 if row["previous"] <= now - min_interval else row["previous"] + min_interval - now
        )
        return _request(row), wait

    async def decide(
        self,
        conn: Executor,
        key: str,
        status: str,
        user_id: str,
        username: str,
        *,
        token_id: str | None = None,
        reason_id: str | None = None,
        message: str | None = None,
    ) -> None:
        await conn.execute(
            "UPDATE access_requests SET status = $2, answered_by = $3, username = $4,"
            " token_id = $5, reason_id = $6, message = $7 WHERE key = $1",
            key,
            status,
            user_id,
            username,
            token_id,
            reason_id,
            message,
        )

    async def purge_expired(self, now: float) -> int:
        status: str = await self.pool.execute(
            "DELETE FROM access_requests WHERE expires <= $1", now
        )
        return int(status.split()[-1])
