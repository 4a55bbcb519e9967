"""Per-channel serialisation of writes: the channel's row is the lock (API.md §6.3 rule 6).

Why a row lock on the channel: the period rules read the channel's periods, decide, then
write. Two such transactions on one channel must never interleave, on any worker, or two
concurrent starts could both see "nothing running" and leave two running periods. No row
lock on ``events`` can cover that (the conflicting row does not exist yet), SERIALIZABLE
would need a retry loop around every writer, and an advisory lock needs a hash of
(user, channel) that could collide. ``SELECT ... FOR UPDATE`` on the channel row names the
exact scope, works across processes with no extra table, and is released by commit or
rollback, so a crashed worker never leaves it held. The same lock makes folder writes
(moves, whose cycle check reads the whole tree; deletes) atomic.

Writes that cannot touch periods (a mark) take ``FOR SHARE``: they run in parallel with
each other, yet wait for a folder delete or a period write in progress on that channel.
"""

from __future__ import annotations

from typing import Any

from pryvrt import errors
from pryvrt.methods.context import CallContext
from pryvrt.storage.channels import Channel


async def lock_channel(ctx: CallContext, conn: Any, *, exclusive: bool = True) -> Channel:
    """Re-read the call's channel inside the transaction and lock its row until commit."""
    channel_id = ctx.require_channel().id
    channel = await ctx.storage.channels.get(
        ctx.user_id, channel_id, conn, for_update=exclusive, for_share=not exclusive
    )
    if channel is None:  # deleted since the call began
        raise errors.UnknownChannel(f"unknown channel {channel_id!r}")
    return channel


def refuse_trashed_channel(channel: Channel, *, trashed: bool | None = None) -> None:
    """Nothing new may be recorded into a trashed channel (API.md §4). ``trashed`` overrides
    ``channel.trashed`` when a fresher read said so."""
    if channel.trashed if trashed is None else trashed:
        raise errors.InvalidOperation(
            "the channel is in the trash: restore it before recording into it",
            {"trashed": "channel"},
        )


def trashed_folder(folder_id: str, extra: dict[str, Any] | None = None) -> errors.ApiError:
    """The error for recording into a trashed folder (or under a trashed ancestor)."""
    return errors.InvalidOperation(
        f"folder {folder_id!r} (or one of its ancestors) is in the trash",
        {"trashed": "folder", "folderId": folder_id, **(extra or {})},
    )
