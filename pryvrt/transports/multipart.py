"""multipart/form-data uploads: at most one JSON part (the params) and file parts.

The JSON part must come before the files (``curl -F 'event=@e.json;type=application/json'
-F 'file=@photo.jpg'`` keeps that order), so that the handler knows what the files belong
to, and may refuse them, before it receives them.

Each file is received whole into a temporary file (``FilePart.receive``) before anything is
written to the database: a slow client then never holds a database connection or a
transaction while its bytes trickle in.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from pryvrt import errors
from pryvrt.config import Settings
from pryvrt.transports import exact_json

READ_SIZE = 64 * 1024
MAX_JSON_PART = 1024 * 1024
# What aiohttp's multipart parser raises on a malformed body (a bad boundary, a part
# header that is not valid HTTP...): each becomes 400 INVALID_REQUEST_STRUCTURE.
MALFORMED = (ValueError, AssertionError, HttpProcessingError)
T = TypeVar("T")


class UnreadableBody(errors.ApiError):
    """The body stream itself broke (a content encoding that does not decode, bad chunked
    framing): 400, and the HTTP layer closes the connection, which cannot carry more."""

    status = 400
    id = "INVALID_REQUEST_STRUCTURE"


def unreadable(exc: web.RequestPayloadError) -> UnreadableBody:
    detail = getattr(exc.__cause__, "message", "") or "malformed body"
    return UnreadableBody(f"the request body could not be read: {detail}")


def body_timed_out(timeout: float) -> errors.ApiError:
    """408 for a body that did not arrive in time (the HTTP layer then closes the connection)."""
    return errors.RequestTimeout(f"the request body did not arrive within {timeout:g} s")


class Reading:
    """Every read of one multipart body: bounded in time, malformed input mapped to 400.

    The timeout is an idle timeout (time allowed for each read), not one for the whole
    body: a large file on a slow link may take long, a stalled client may not.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def __call__(self, read: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await read
        except web.RequestPayloadError as exc:
            raise unreadable(exc) from None
        except MALFORMED as exc:
            raise errors.InvalidRequestStructure(f"malformed multipart body: {exc}") from None
        except TimeoutError:
            raise body_timed_out(self.timeout) from None


# Bytes gathered before each hop to a thread (hashing and writing the temporary file).
SPOOL_SIZE = 256 * 1024


class TooLarge(Exception):
    """The file went over the size limit (nothing of it is kept)."""


class ReceivedFile:
    """One uploaded file, whole, in a temporary file with no name on disk: closing it (or
    the process ending, however it ends) frees the space."""

    def __init__(self, file: IO[bytes], size: int, integrity: str) -> None:
        self._file = file
        self.size = size
        self.integrity = integrity  # "sha256-<base64 digest>"

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The bytes from the start, in pieces of ``size`` (read in a thread)."""
        await asyncio.to_thread(self._file.seek, 0)
        while data := await asyncio.to_thread(self._file.read, size):
            yield data

    def close(self) -> None:
        self._file.close()


def _temporary_file(directory: Path | None) -> IO[bytes]:
    return tempfile.TemporaryFile("w+b", dir=directory)


def _absorb(file: IO[bytes], digest: Any, data: bytearray) -> None:
    digest.update(data)
    file.write(data)


class FilePart:
    """One uploaded file, as sent, not yet received."""

    def __init__(self, part: BodyPartReader, reading: Reading) -> None:
        self._part = part
        self._reading = reading
        self.file_name = part.filename or part.name or "file"
        self.content_type = part.headers.get("Content-Type", "application/octet-stream")

    async def receive(self, max_size: int, directory: Path | None) -> ReceivedFile:
        """Read the whole file into a temporary file, hashing it on the way (both in a
        thread, off the event loop); raise TooLarge past ``max_size`` bytes."""
        file = await asyncio.to_thread(_temporary_file, directory)
        try:
            digest = hashlib.sha256()
            size = 0
            pending = bytearray()
            while data := await self._reading(self._part.read_chunk(READ_SIZE)):
                size += len(data)
                if size > max_size:
                    raise TooLarge()
                pending += data
                if len(pending) >= SPOOL_SIZE:
                    full, pending = pending, bytearray()
                    await asyncio.to_thread(_absorb, file, digest, full)
            await asyncio.to_thread(_absorb, file, digest, pending)
            await asyncio.to_thread(file.flush)
        except BaseException:
            file.close()
            raise
        integrity = "sha256-" + base64.b64encode(digest.digest()).decode()
        return ReceivedFile(file, size, integrity)


class Uploads:
    """The file parts of a request, in order; ``files()`` may be iterated once."""

    def __init__(
        self, reader: MultipartReader, first: BodyPartReader | None, reading: Reading
    ) -> None:
        self._reader = reader
        self._first = first
        self._reading = reading

    async def files(self) -> AsyncIterator[FilePart]:
        part = self._first
        self._first = None
        while True:
            if part is None:
                nxt = await self._reading(self._reader.next())
                if nxt is None:
                    return
                if not isinstance(nxt, BodyPartReader):
                    raise errors.InvalidRequestStructure("nested multipart is not supported")
                part = nxt
            if _is_json(part):
                raise errors.InvalidRequestStructure(
                    "only one JSON part is allowed, and it must come before the files"
                )
            yield FilePart(part, self._reading)
            await self._reading(part.release())
            part = None

    async def release(self) -> None:
        """Drain what the handler did not read (keeps the connection usable)."""
        return None


def _is_json(part: BodyPartReader) -> bool:
    ctype = part.headers.get("Content-Type", "")
    return ctype.startswith("application/json") or (
        not part.filename and ctype in ("", "text/plain")
    )


async def open_uploads(request: web.Request, settings: Settings) -> tuple[Any, Uploads]:
    """(params from the leading JSON part or None, the file parts)."""
    try:
        reader = await request.multipart()
    except MALFORMED as exc:
        raise errors.InvalidRequestStructure(f"malformed multipart body: {exc}") from None
    reading = Reading(settings.body_timeout)
    first = await reading(reader.next())
    if first is not None and not isinstance(first, BodyPartReader):
        raise errors.InvalidRequestStructure("nested multipart is not supported")
    params: Any = None
    if first is not None and _is_json(first):
        raw = bytearray()
        while chunk := await reading(first.read_chunk(READ_SIZE)):
            raw += chunk
            if len(raw) > MAX_JSON_PART:
                raise errors.PayloadTooLarge("the JSON part is too large")
        try:
            params = exact_json.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.InvalidRequestStructure(
                f"the JSON part is not valid JSON: {exc}"
            ) from None
        if not isinstance(params, dict):
            raise errors.InvalidRequestStructure("the JSON part must be an object")
        first = None
    return params, Uploads(reader, first, reading)
