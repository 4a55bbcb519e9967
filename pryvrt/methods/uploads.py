"""Receiving the files of a request: cleaned names and types, a per-user bound, temp files.

``received_files`` takes every file of the request whole onto local disk before the caller
opens its transaction (API.md §6.4 and the README's "Attachments"): while bytes arrive, no
database connection is held, however slow the client.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pryvrt import errors
from pryvrt.methods.context import CallContext
from pryvrt.transports.multipart import ReceivedFile, TooLarge

MAX_FILES_PER_REQUEST = 100
MAX_NAME_BYTES = 255  # what most file systems take, so a saved download keeps its name
RETRY_AFTER_SECONDS = 5
# Unicode categories removed from file names: controls (Cc), format characters (Cf: the
# bidirectional overrides and isolates such as U+202E, zero-width characters, the BOM),
# lone surrogates (Cs) and line/paragraph separators (Zl, Zp).
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_TOKEN = r"[a-z0-9!#\$&^_.+-]+"  # RFC 7230 token characters
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_CHARSET = re.compile(rf"\s*charset\s*=\s*\"?({_TOKEN})\"?\s*", re.IGNORECASE)


def clean_file_name(raw: str) -> str:
    """A file name safe to store, show and send back: its last path segment only, without
    invisible or direction-changing characters, at most 255 UTF-8 bytes (extension kept)."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in _INVISIBLE)
    name = name.strip().rstrip(". ")
    if name in ("", ".", ".."):
        return "file"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        stem, extension = name, ""
    else:
        extension = "." + extension
    budget = MAX_NAME_BYTES - len(extension.encode())
    return stem.encode()[:budget].decode(errors="ignore").rstrip(". ") + extension


def clean_content_type(raw: str) -> str:
    """``type/subtype`` in lower case (plus its charset, if any); anything that is not a
    well-formed media type becomes ``application/octet-stream``."""
    media, _, params = raw.partition(";")
    media = media.strip().lower()
    if not _MEDIA_TYPE.fullmatch(media):
        return "application/octet-stream"
    for param in params.split(";"):
        charset = _CHARSET.fullmatch(param)
        if charset:
            return f"{media}; charset={charset.group(1).lower()}"
    return media


@dataclass(eq=False)
class Upload:
    """One received file: its cleaned name and type, and its bytes on local disk."""

    file_name: str
    content_type: str
    data: ReceivedFile


@asynccontextmanager
async def received_files(ctx: CallContext) -> AsyncIterator[list[Upload]]:
    """Every file of the request, received whole; their temporary files are removed on exit.

    At most ``PRYVRT_MAX_UPLOADS_PER_USER`` of one user's requests are received or stored
    at once by one worker (429 with Retry-After beyond). Refused before anything is stored:
    more than 100 files, a file over PRYVRT_MAX_ATTACHMENT_SIZE (413), two files of one
    name (400 ITEM_NAME_ALREADY_EXISTS).
    """
    user_id = ctx.user_id
    in_progress = ctx.services.uploads_in_progress
    held = in_progress.get(user_id, 0)
    if held >= ctx.settings.max_uploads_per_user:
        raise errors.TooManyRequests(
            f"this user already sends {held} uploads to this server; retry when one is done",
            {"limit": ctx.settings.max_uploads_per_user},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    in_progress[user_id] = held + 1
    files: list[Upload] = []
    try:
        if ctx.uploads is not None:
            await _receive(ctx, files)
        yield files
    finally:
        for upload in files:
            upload.data.close()
        in_progress[user_id] -= 1
        if not in_progress[user_id]:
            del in_progress[user_id]


async def _receive(ctx: CallContext, files: list[Upload]) -> None:
    limit = ctx.settings.max_attachment_size
    names: set[str] = set()
    async for part in ctx.uploads.files():
        if len(files) >= MAX_FILES_PER_REQUEST:
            raise errors.PayloadTooLarge(f"at most {MAX_FILES_PER_REQUEST} files per request")
        name = clean_file_name(part.file_name)
        if name in names:
            raise errors.ItemNameAlreadyExists(f"two files are named {name!r}", {"fileName": name})
        try:
            data = await part.receive(limit, ctx.settings.upload_dir)
        except TooLarge:
            raise errors.PayloadTooLarge(
                f"{name!r} is over the {limit}-byte attachment limit", {"limit": limit}
            ) from None
        names.add(name)
        files.append(Upload(name, clean_content_type(part.content_type), data))
