"""events.addAttachments / getAttachment / deleteAttachment, and files sent with events.create.

Files travel only over HTTP (multipart in, a stream out): adding and reading files are not
callable over Socket.IO or in batches; deleting one carries no file and is. Bytes live in
PostgreSQL (see ``storage/attachments.py``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson

from pryvrt import errors
from pryvrt.auth import read_tokens
from pryvrt.auth.identity import access_of
from pryvrt.auth.permissions import Access, Level
from pryvrt.ids import new_id
from pryvrt.methods.context import CallContext
from pryvrt.methods.folder_tree import FolderTree
from pryvrt.methods.params import ChannelParams, ItemRef
from pryvrt.methods.registry import method
from pryvrt.methods.results import Download
from pryvrt.methods.scope import Need, at_event
from pryvrt.methods.uploads import Upload
from pryvrt.methods.visibility import sees
from pryvrt.storage.attachments import CHUNK_SIZE
from pryvrt.storage.events import Event


async def store_files(ctx: CallContext, conn: Any, event: Event, files: list[Upload]) -> Event:
    """Write received files into ``conn``'s transaction; the event with them listed.

    The files are already whole on local disk (``received_files``): this costs the
    database time of the bytes only, never the client's sending time."""
    attachments = list(event.attachments)
    taken = {a["fileName"] for a in attachments}
    for upload in files:
        if upload.file_name in taken:
            raise errors.ItemNameAlreadyExists(
                f"the event already has a file named {upload.file_name!r}",
                {"fileName": upload.file_name},
            )
        attachment_id = new_id()
        await ctx.storage.attachments.write(
            conn,
            ctx.user_id,
            event.channel_id,
            event.id,
            attachment_id,
            upload.data.chunks(CHUNK_SIZE),
        )
        attachments.append(
            {
                "id": attachment_id,
                "fileName": upload.file_name,
                "type": upload.content_type,
                "size": upload.data.size,
                "integrity": upload.data.integrity,
            }
        )
    return replace(event, attachments=attachments, modified=time.time(), modified_by=ctx.writer)


def sign_attachments(ctx: CallContext, event: dict[str, Any]) -> dict[str, Any]:
    """The event (API form) with a readToken in each attachment, for the calling credential."""
    access_id = ctx.require_access().access_id
    for attachment in event.get("attachments") or ():
        attachment["readToken"] = read_tokens.sign(
            ctx.services.secret_key,
            ctx.user_id,
            event["channelId"],
            event["id"],
            attachment["id"],
            access_id,
        )
    return event


# Every stored event with files contains this text (its "attachments" key, then an object).
_HAS_FILES = b'"attachments":[{'


def with_read_tokens(ctx: CallContext, events_json: bytes) -> bytes:
    """A JSON array of events (as stored) with the caller's readTokens added.

    Stored events carry no readToken (each reader gets their own), so replies with files
    are decoded and encoded again; replies without (the usual case) pass through as is."""
    if _HAS_FILES not in events_json:
        return events_json
    return orjson.dumps([sign_attachments(ctx, e) for e in orjson.loads(events_json)])


class AddParams(ChannelParams):
    id: ItemRef


# The addressed event, row-locked in the call's transaction (the channel is not locked).
EVENT_WRITE = Need(Level.CONTRIBUTE, at_event("id", for_update=True), transaction=True)


@method(
    "events.addAttachments",
    AddParams,
    need=EVENT_WRITE,
    files=True,
    errors=(
        "PAYLOAD_TOO_LARGE",
        "ITEM_NAME_ALREADY_EXISTS",
        "TOO_MANY_REQUESTS",
        "INVALID_REQUEST_STRUCTURE",
    ),
)
async def add(ctx: CallContext, p: AddParams) -> dict[str, Any]:
    """Add files (multipart, every part a file) to an event; answers the updated event.
    (``registry.call`` refused an unwritable event before receiving the files.)"""
    if ctx.uploads is None:
        raise errors.InvalidRequestStructure("send the files as multipart/form-data")
    scope = ctx.require_scope()
    assert scope.event is not None
    event = await store_files(ctx, scope.conn, scope.event, ctx.files)
    await ctx.storage.events.set_attachments(scope.conn, ctx.user_id, event)
    ctx.events_changed(p.channelId, event)
    return sign_attachments(ctx, event.to_api())


class FileParams(ChannelParams):
    id: ItemRef
    fileName: str
    readToken: str | None = None


def find_file(event: Event, file_name: str) -> dict[str, Any]:
    for attachment in event.attachments:
        if attachment["fileName"] == file_name:
            return attachment
    raise errors.UnknownAttachment(f"the event has no file named {file_name!r}")


def anonymous_download(p: FileParams, ctx: CallContext) -> bool:
    """A readToken and no credential: the token is checked (``by_read_token``), no scope."""
    return p.readToken is not None and ctx.credential is None


@method(
    "events.getAttachment",
    FileParams,
    need=Need(Level.READ, at_event("id")),
    anonymous=anonymous_download,
    files=True,
    errors=("UNKNOWN_ATTACHMENT",),
)
async def get(ctx: CallContext, p: FileParams) -> Download:
    """The file's bytes. ``?readToken=`` (from the attachment) works without a credential,
    so ``<img src=".../photo.jpg?readToken=...">`` displays in a browser."""
    if p.readToken is not None and anonymous_download(p, ctx):
        attachment = await by_read_token(ctx, p, p.readToken)
    else:
        event = ctx.require_scope().event
        assert event is not None
        attachment = find_file(event, p.fileName)
    chunks = ctx.storage.attachments.read(ctx.user_id, p.channelId, p.id, attachment["id"])
    return Download(
        attachment["fileName"],
        attachment["type"],
        attachment["size"],
        attachment["integrity"],
        chunks,
    )


async def by_read_token(ctx: CallContext, p: FileParams, read_token: str) -> dict[str, Any]:
    """The event and file a readToken opens, checked against the database now (see
    ``pryvrt.auth.read_tokens``). Every refusal is the same 401: no probing for events,
    file names or credentials."""
    refused = errors.InvalidToken("invalid or expired read token")
    event = await ctx.storage.events.get(ctx.user_id, p.channelId, p.id)
    attachment = (
        next((a for a in event.attachments if a["fileName"] == p.fileName), None) if event else None
    )
    if event is None or attachment is None:
        raise refused
    access_id = read_tokens.verify(
        ctx.services.secret_key, read_token, ctx.user_id, p.channelId, p.id, attachment["id"]
    )
    if access_id is None or event.trashed:
        raise refused
    row = await ctx.storage.tokens.by_access_id(ctx.user_id, access_id, time.time())
    if row is None:  # token deleted, session ended
        raise refused
    channel = await ctx.storage.channels.get(ctx.user_id, p.channelId)
    if channel is None or channel.trashed:
        raise refused
    tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, p.channelId))
    if event.folder_id is not None and tree.trashed_in_path(event.folder_id):
        raise refused
    if not can_read(access_of(row), p.channelId, tree, event):
        raise refused  # permissions narrowed since, or the event left a narrowed grant
    return attachment


def can_read(access: Access, channel_id: str, tree: FolderTree, event: Event) -> bool:
    return access.can_see_channel(channel_id) and sees(access, channel_id, tree, event)


class DeleteFileParams(ChannelParams):
    id: ItemRef
    fileName: str


@method(
    "events.deleteAttachment",
    DeleteFileParams,
    need=EVENT_WRITE,
    errors=("UNKNOWN_ATTACHMENT",),
)
async def delete(ctx: CallContext, p: DeleteFileParams) -> dict[str, Any]:
    """Delete one file of an event, for good."""
    scope = ctx.require_scope()
    event, conn = scope.event, scope.conn
    assert event is not None
    attachment = find_file(event, p.fileName)
    await ctx.storage.attachments.delete(conn, ctx.user_id, p.channelId, p.id, attachment["id"])
    remaining = [a for a in event.attachments if a["id"] != attachment["id"]]
    await ctx.storage.events.set_attachments(
        conn,
        ctx.user_id,
        replace(event, attachments=remaining, modified=time.time(), modified_by=ctx.writer),
    )
    ctx.events_changed(p.channelId, event)
    return {}
