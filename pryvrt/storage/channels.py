"""Channels: a user's top-level containers of folders and events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from pryvrt.storage.base import Conflict, Executor, Store, conflict_field


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str
    enforce_no_events_overlap: bool
    client_data: dict[str, Any]
    trashed: bool
    modified: float
    created: float
    created_by: str
    modified_by: str

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "enforceNoEventsOverlap": self.enforce_no_events_overlap,
            "clientData": self.client_data,
            "trashed": self.trashed,
            "created": self.created,
            "createdBy": self.created_by,
            "modified": self.modified,
            "modifiedBy": self.modified_by,
        }


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(
        row["id"],
        row["name"],
        row["enforce_no_events_overlap"],
        row["client_data"],
        row["trashed"],
        row["modified"],
        row["created"],
        row["created_by"],
        row["modified_by"],
    )


STATE_FILTERS = {
    "default": " AND NOT trashed",
    "trashed": " AND trashed",
    "all": "",
}


class ChannelsStore(Store):
    async def list_all(self, user_id: str, state: str = "default") -> list[Channel]:
        rows = await self.pool.fetch(
            "SELECT * FROM channels WHERE user_id = $1" + STATE_FILTERS[state] + " ORDER BY name",
            user_id,
        )
        return [_channel(r) for r in rows]

    async def get(
        self,
        user_id: str,
        channel_id: str,
        conn: Executor = None,
        *,
        for_update: bool = False,
        for_share: bool = False,
    ) -> Channel | None:
        """One channel; ``for_update`` (exclusive) or ``for_share`` locks its row until the
        transaction ends."""
        lock = " FOR UPDATE" if for_update else " FOR SHARE" if for_share else ""
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM channels WHERE user_id = $1 AND id = $2" + lock,
            user_id,
            channel_id,
        )
        return _channel(row) if row else None

    async def create(
        self,
        user_id: str,
        channel_id: str,
        name: str,
        enforce_no_events_overlap: bool,
        client_data: dict[str, Any],
        now: float,
        by: str,
        conn: Executor = None,
    ) -> Channel:
        """A new channel, created by ``by`` (an accessId, API.md §12)."""
        try:
            row = await (conn or self.pool).fetchrow(
                "INSERT INTO channels (user_id, id, name, enforce_no_events_overlap,"
                " client_data, modified, created, created_by, modified_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $7) RETURNING *",
                user_id,
                channel_id,
                name,
                enforce_no_events_overlap,
                client_data,
                now,
                by,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return _channel(row)

    async def update(
        self,
        user_id: str,
        channel_id: str,
        name: str | None,
        enforce_no_events_overlap: bool | None,
        client_data: dict[str, Any] | None,
        now: float,
        by: str,
        conn: Executor = None,
    ) -> Channel | None:
        """Partial update; ``client_data`` is the already merged object (or None: unchanged)."""
        try:
            row = await (conn or self.pool).fetchrow(
                "UPDATE channels SET name = coalesce($3, name),"
                " enforce_no_events_overlap = coalesce($4, enforce_no_events_overlap),"
                " client_data = coalesce($5, client_data), modified = $6, modified_by = $7"
                " WHERE user_id = $1 AND id = $2 RETURNING *",
                user_id,
                channel_id,
                name,
                enforce_no_events_overlap,
                client_data,
                now,
                by,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return _channel(row) if row else None

    async def trash(
        self, user_id: str, channel_id: str, now: float, by: str, conn: Executor = None
    ) -> None:
        await (conn or self.pool).execute(
            "UPDATE channels SET trashed = true, modified = $3, modified_by = $4"
            " WHERE user_id = $1 AND id = $2",
            user_id,
            channel_id,
            now,
            by,
        )

    async def delete(self, user_id: str, channel_id: str, conn: Executor = None) -> None:
        """Delete the channel with its folders, events and files (foreign-key cascade)."""
        await (conn or self.pool).execute(
            "DELETE FROM channels WHERE user_id = $1 AND id = $2", user_id, channel_id
        )
