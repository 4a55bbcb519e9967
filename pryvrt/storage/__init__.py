"""All SQL lives in this package: one module per resource, one ``Storage`` facade.

Methods take ``conn``: the pool by default, or a connection inside a transaction
(``async with storage.transaction() as conn``). Storage raises domain errors
(``storage.base.StorageError``: ``Conflict``...); methods translate them into API errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from pryvrt.storage.access_requests import AccessRequestsStore
from pryvrt.storage.attachments import AttachmentsStore
from pryvrt.storage.bookmarks import BookmarksStore
from pryvrt.storage.channels import ChannelsStore
from pryvrt.storage.database import BULK_ROWS, transaction
from pryvrt.storage.events import EventsStore
from pryvrt.storage.folders import FoldersStore
from pryvrt.storage.periods import PeriodsStore
from pryvrt.storage.pool import Pool
from pryvrt.storage.series import SeriesStore
from pryvrt.storage.sessions import SessionsStore
from pryvrt.storage.shares import SharesStore
from pryvrt.storage.tokens import TokensStore
from pryvrt.storage.users import UsersStore


class Storage:
    """The database, seen as one store per resource."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.users = UsersStore(pool)
        self.sessions = SessionsStore(pool)
        self.tokens = TokensStore(pool)
        self.channels = ChannelsStore(pool)
        self.bookmarks = BookmarksStore(pool)
        self.shares = SharesStore(pool)
        self.attachments = AttachmentsStore(pool)
        self.folders = FoldersStore(pool)
        self.events = EventsStore(pool)
        self.periods = PeriodsStore(pool)
        self.series = SeriesStore(pool)
        self.access_requests = AccessRequestsStore(pool)

    @asynccontextmanager
    async def transaction(self, rows: int = 1) -> AsyncIterator[asyncpg.Connection]:
        """A transaction; one that writes more than BULK_ROWS ``rows`` at once runs on a
        bulk connection, whose statements may take longer (``Pool.acquire_bulk``)."""
        async with transaction(self.pool, bulk=rows > BULK_ROWS) as conn:
            yield conn

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")
