"""events.addAttachments / getAttachment / deleteAttachment, and files sent with events.create.

Files travel only over HTTP (multipart in, a stream out): these methods are not callable
over Socket.IO or in batches. Bytes live in PostgreSQL (see ``storage/attachments.py``).
"""

from __future__ import annotations

import hmac
import time
from dataclasses import replace
from typing import Any

from pryvrt import errors
from pryvrt.auth.permissions import Level
from pryvrt.ids import new_id, new_secret
from pryvrt.methods.context import CallContext
from pryvrt.methods.event_fields import event_for_write
from pryvrt.methods.folder_tree import FolderTree, require_level
from pryvrt.methods.params import ChannelParams, ItemRef, Params
from pryvrt.methods.registry import Auth, authenticate, method
from pryvrt.methods.results import Download
from pryvrt.notify.messages import EVENTS_CHANGED
from pryvrt.storage.attachments import TooLarge
from pryvrt.storage.events import Event

MAX_FILES_PER_REQUEST = 100


async def store_uploads(ctx: CallContext, conn: Any, event: Event) -> Event:
    """Stream every uploaded file into ``conn``'s transaction; the event with them listed.

    A file over PRYVRT_MAX_ATTACHMENT_SIZE raises 413 and the caller's transaction rolls
    back: nothing half-written remains.
    """
    attachments = list(event.attachments)
    names = {a["fileName"] for a in attachments}
    limit = ctx.settings.max_attachment_size
    async for part in ctx.uploads.files():
        if len(attachments) >= MAX_FILES_PER_REQUEST + len(event.attachments):
            raise errors.PayloadTooLarge(f"at most {MAX_FILES_PER_REQUEST} files per request")
        if part.file_name in names:
            raise errors.ItemNameAlreadyExists(
                f"the event already has a file named {part.file_name!r}",
                {"fileName": part.file_name},
            )
        attachment_id = new_id()
        try:
            stored = await ctx.storage.attachments.write(
                conn, ctx.user_id, event.channel_id, event.id, attachment_id, part.chunks(), limit
            )
        except TooLarge:
            raise errors.PayloadTooLarge(
                f"{part.file_name!r} is over the {limit}-byte attachment limit", {"limit": limit}
            ) from None
        names.add(part.file_name)
        attachments.append(
            {
                "id": attachment_id,
                "fileName": part.file_name,
                "type": part.content_type,
                "size": stored.size,
                "integrity": stored.integrity,
                "readToken": new_secret(),
            }
        )
    return replace(event, attachments=attachments, modified=time.time())


class AddParams(ChannelParams):
    id: ItemRef


@method(
    "events.addAttachments",
    AddParams,
    channel_level=Level.CONTRIBUTE,
    socket=False,
    errors=("UNKNOWN_EVENT", "PAYLOAD_TOO_LARGE", "ITEM_NAME_ALREADY_EXISTS", "FORBIDDEN"),
)
async def add(ctx: CallContext, p: AddParams) -> dict[str, Any]:
    """Add files (multipart, every part a file) to an event; answers the updated event."""
    if ctx.uploads is None:
        raise errors.InvalidRequestStructure("send the files as multipart/form-data")
    async with ctx.storage.transaction() as conn:
        event = await event_for_write(ctx, conn, p.channelId, p.id)
        event = await store_uploads(ctx, conn, event)
        await ctx.storage.events.set_attachments(conn, ctx.user_id, event)
    ctx.notify(EVENTS_CHANGED, p.channelId)
    return event.to_api()


class FileParams(Params):
    channelId: ItemRef
    id: ItemRef
    fileName: str
    readToken: str | None = None


def find_file(event: Event, file_name: str) -> dict[str, Any]:
    for attachment in event.attachments:
        if attachment["fileName"] == file_name:
            return attachment
    raise errors.UnknownAttachment(f"the event has no file named {file_name!r}")


@method(
    "events.getAttachment",
    FileParams,
    auth=Auth.NONE,
    socket=False,
    errors=("UNKNOWN_EVENT", "UNKNOWN_ATTACHMENT", "INVALID_TOKEN", "FORBIDDEN"),
)
async def get(ctx: CallContext, p: FileParams) -> Download:
    """The file's bytes. ``?readToken=`` (from the attachment) works without a credential,
    so ``<img src=".../photo.jpg?readToken=...">`` displays in a browser."""
    event = await ctx.storage.events.get(ctx.user_id, p.channelId, p.id)
    if p.readToken is not None and ctx.credential is None:
        # Any wrong (event, file, token) answers the same: no probing for file names.
        files = event.attachments if event else []
        attachment = next((a for a in files if a["fileName"] == p.fileName), None)
        if attachment is None or not hmac.compare_digest(
            p.readToken.encode(), str(attachment["readToken"]).encode()
        ):
            raise errors.InvalidToken("invalid read token")
    else:
        access = await authenticate(ctx)
        if await ctx.storage.channels.get(ctx.user_id, p.channelId) is None:
            raise errors.UnknownChannel(f"unknown channel {p.channelId!r}")
        if access.best_level_in(p.channelId) is None:  # as for every channel method
            raise errors.Forbidden("this credential has no read permission here")
        if event is None:
            raise errors.UnknownEvent(f"unknown event {p.id!r}")
        tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, p.channelId))
        require_level(access, p.channelId, tree, event.folder_id, Level.READ)
        attachment = find_file(event, p.fileName)
    chunks = ctx.storage.attachments.read(ctx.user_id, p.channelId, p.id, attachment["id"])
    return Download(
        attachment["fileName"],
        attachment["type"],
        attachment["size"],
        attachment["integrity"],
        chunks,
    )


class DeleteFileParams(ChannelParams):
    id: ItemRef
    fileName: str


@method(
    "events.deleteAttachment",
    DeleteFileParams,
    channel_level=Level.CONTRIBUTE,
    socket=False,
    errors=("UNKNOWN_EVENT", "UNKNOWN_ATTACHMENT", "FORBIDDEN"),
)
async def delete(ctx: CallContext, p: DeleteFileParams) -> dict[str, Any]:
    """Delete one file of an event, for good."""
    async with ctx.storage.transaction() as conn:
        event = await event_for_write(ctx, conn, p.channelId, p.id)
        attachment = find_file(event, p.fileName)
        await ctx.storage.attachments.delete(conn, ctx.user_id, p.channelId, p.id, attachment["id"])
        remaining = [a for a in event.attachments if a["id"] != attachment["id"]]
        await ctx.storage.events.set_attachments(
            conn, ctx.user_id, replace(event, attachments=remaining, modified=time.time())
        )
    ctx.notify(EVENTS_CHANGED, p.channelId)
    return {}
