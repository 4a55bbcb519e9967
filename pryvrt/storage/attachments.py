"""Attachment bytes in PostgreSQL, as ordered bytea chunks.

Why in the database: any worker can serve any file with no shared filesystem, and a file
is written in the same transaction as its event, so a failed or oversized upload leaves
nothing behind. A file comes in from its temporary file once received whole (see
``pryvrt.methods.uploads``) and goes out chunk by chunk, never held whole in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pryvrt.storage.base import Executor, Store

CHUNK_SIZE = 256 * 1024


INSERT_CHUNK = (
    "INSERT INTO attachment_chunks (user_id, channel_id, event_id, attachment_id, seq, data)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)


class AttachmentsStore(Store):
    async def write(
        self,
        conn: Executor,
        user_id: str,
        channel_id: str,
        event_id: str,
        attachment_id: str,
        chunks: AsyncIterator[bytes],
    ) -> None:
        """Store a file's chunks (each at most CHUNK_SIZE) in ``conn``'s transaction."""
        key = (user_id, channel_id, event_id, attachment_id)
        seq = 0
        async for data in chunks:
            await conn.execute(INSERT_CHUNK, *key, seq, data)
            seq += 1
        if seq == 0:  # an empty file: one empty chunk says it exists
            await conn.execute(INSERT_CHUNK, *key, 0, b"")

    async def read(
        self, user_id: str, channel_id: str, event_id: str, attachment_id: str
    ) -> AsyncIterator[bytes]:
        """The file's chunks in order, one query per chunk (no long transaction held)."""
        seq = 0
        while True:
            data: bytes | None = await self.pool.fetchval(
                "SELECT data FROM attachment_chunks WHERE user_id = $1 AND channel_id = $2"
                " AND event_id = $3 AND attachment_id = $4 AND seq = $5",
                user_id,
                channel_id,
                event_id,
                attachment_id,
                seq,
            )
            if data is None:
                return
            if data:
                yield data
            seq += 1

    async def delete(
        self,
        conn: Executor,
        user_id: str,
        channel_id: str,
        event_id: str,
        attachment_id: str,
    ) -> None:
        await conn.execute(
            "DELETE FROM attachment_chunks WHERE user_id = $1 AND channel_id = $2"
            " AND event_id = $3 AND attachment_id = $4",
            user_id,
            channel_id,
            event_id,
            attachment_id,
        )
