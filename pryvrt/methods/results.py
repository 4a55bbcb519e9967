"""Results that are not JSON bodies: transports render them their own way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Download:
    """A file to stream back (HTTP: Content-Type, Content-Length, Content-Disposition)."""

    file_name: str
    content_type: str
    size: int
    integrity: str
    chunks: AsyncIterator[bytes]
