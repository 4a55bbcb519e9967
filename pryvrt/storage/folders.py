"""Folders: a tree per channel (``parent_id`` NULL = root level)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from pryvrt.storage.base import Conflict, Executor, Store, conflict_field
from pryvrt.storage.events import Visible, visible_sql


@dataclass(frozen=True, slots=True)
class Folder:
    id: str
    channel_id: str
    name: str
    parent_id: str | None
    hidden: bool
    client_data: dict[str, Any]
    trashed: bool
    modified: float
    created: float
    created_by: str
    modified_by: str

    def to_api(self) -> dict[str, Any]:
        """The folder without ``children`` (the tree is assembled by the caller)."""
        return {
            "id": self.id,
            "channelId": self.channel_id,
            "name": self.name,
            "parentId": self.parent_id,
            "hidden": self.hidden,
            "clientData": self.client_data,
            "trashed": self.trashed,
            "created": self.created,
            "createdBy": self.created_by,
            "modified": self.modified,
            "modifiedBy": self.modified_by,
        }


def _folder(row: asyncpg.Record) -> Folder:
    return Folder(
        row["id"],
        row["channel_id"],
        row["name"],
        row["parent_id"],
        row["hidden"],
        row["client_data"],
        row["trashed"],
        row["modified"],
        row["created"],
        row["created_by"],
        row["modified_by"],
    )


def _row(user_id: str, folder: Folder) -> tuple[Any, ...]:
    """Parameters $1..$10 of the folder writes, in column order."""
    return (
        user_id,
        folder.channel_id,
        folder.id,
        folder.name,
        folder.parent_id,
        folder.hidden,
        folder.client_data,
        folder.trashed,
        folder.modified,
        folder.modified_by,
    )


class FoldersStore(Store):
    async def list_all(self, user_id: str, channel_id: str, conn: Executor = None) -> list[Folder]:
        """Every folder of the channel, any state, sorted by name."""
        rows = await (conn or self.pool).fetch(
            "SELECT * FROM folders WHERE user_id = $1 AND channel_id = $2 ORDER BY name, id",
            user_id,
            channel_id,
        )
        return [_folder(r) for r in rows]

    async def create(self, conn: Executor, user_id: str, folder: Folder) -> None:
        try:
            await conn.execute(
                "INSERT INTO folders (user_id, channel_id, id, name, parent_id, hidden,"
                " client_data, trashed, modified, modified_by, created, created_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                *_row(user_id, folder),
                folder.created,
                folder.created_by,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None

    async def save(self, conn: Executor, user_id: str, folder: Folder) -> None:
        """Write every mutable field of an existing folder (read-modify-write under a lock)."""
        try:
            await conn.execute(
                "UPDATE folders SET name = $4, parent_id = $5, hidden = $6, client_data = $7,"
                " trashed = $8, modified = $9, modified_by = $10"
                " WHERE user_id = $1 AND channel_id = $2 AND id = $3",
                *_row(user_id, folder),
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None

    async def delete(
        self, conn: Executor, user_id: str, channel_id: str, folder_ids: Sequence[str]
    ) -> None:
        await conn.execute(
            "DELETE FROM folders WHERE user_id = $1 AND channel_id = $2 AND id = ANY($3::text[])",
            user_id,
            channel_id,
            list(folder_ids),
        )

    async def period_seconds(
        self, user_id: str, channel_id: str, since: float, now: float, visible: Visible
    ) -> dict[str, float]:
        """Per folder, the summed duration of its own non-trashed periods starting at ``since``
        or later, among the ``visible`` ones; a running period counts until ``now``."""
        args: list[Any] = [user_id, channel_id, since, now]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        rows = await self.pool.fetch(
            "SELECT folder_id, sum(coalesce(duration, greatest($4 - time, 0))) AS seconds"
            " FROM events WHERE user_id = $1 AND channel_id = $2 AND is_period AND NOT trashed"
            f" AND time >= $3 AND folder_id IS NOT NULL{visible_sql(visible, arg)}"
            " GROUP BY folder_id",
            *args,
        )
        return {r["folder_id"]: r["seconds"] for r in rows}
