"""multipart/form-data uploads: one JSON part (the params) and file parts (attachments)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pryvrt import errors
from pryvrt.config import Settings


async def open_uploads(request: web.Request, settings: Settings) -> tuple[Any, Any]:
    """(JSON params, uploads). Attachments are not implemented yet."""
    raise errors.InvalidRequestStructure("multipart uploads are not supported yet")
