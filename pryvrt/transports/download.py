"""Serving stored files over HTTP so that none can act as a page of this server (API.md §6.4).

A file holds whatever bytes whoever could write its event sent. Every download therefore
carries ``X-Content-Type-Options: nosniff`` (the browser takes the type as given) and a
``Content-Security-Policy`` whose ``sandbox`` gives any document an opaque origin with
scripts, forms and plugins off. Only the types of ``INLINE_TYPES`` (images other than SVG,
audio, video, plain text: nothing a browser runs) are served ``inline``; every other type,
unknown ones included, is ``attachment``: saved, never rendered. An allow-list, so a type
nobody thought of is a download.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from pryvrt.methods.results import Download
from pryvrt.methods.uploads import clean_content_type

INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/ogg",
        "audio/opus",
        "audio/wav",
        "audio/webm",
        "audio/flac",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "text/plain",
    }
)
# No script, no same-origin, nothing loaded; inline styles only (how Chromium lays out an
# image or a text file opened on its own).
SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'"


def disposition(content_type: str) -> str:
    """``inline`` for the allow-listed types, ``attachment`` for everything else."""
    media_type = content_type.partition(";")[0].strip().lower()
    return "inline" if media_type in INLINE_TYPES else "attachment"


def content_disposition(kind: str, file_name: str) -> str:
    """RFC 6266: a plain-ASCII ``filename`` for old clients (anything else becomes ``_``)
    and the exact name, percent-encoded UTF-8, in ``filename*``."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in file_name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def security_headers(content_type: str, file_name: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Disposition": content_disposition(disposition(content_type), file_name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX,
    }


async def stream_download(request: web.Request, download: Download) -> web.StreamResponse:
    """Stream a stored file with the headers above. ``no-cache``: a browser asks again each
    time (a readToken may have stopped working) and gets a 304 while the file is the same."""
    content_type = clean_content_type(download.content_type)
    etag = f'"{download.integrity}"'
    headers = {
        **security_headers(content_type, download.file_name),
        "ETag": etag,
        "Cache-Control": "private, no-cache",
    }
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    response = web.StreamResponse(headers=headers)
    response.content_length = download.size
    await response.prepare(request)
    async for chunk in download.chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
