"""Shared pieces of the storage layer: the executor type and domain errors."""

from __future__ import annotations

from typing import Any

import asyncpg

from pryvrt.storage.pool import Pool

# A pool or a connection: both have fetch/fetchrow/fetchval/execute.
Executor = Any


class StorageError(Exception):
    """Base of the domain errors raised by stores."""


class Conflict(StorageError):
    """A unique constraint refused the write; ``field`` says which (``id`` or ``name``...)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def conflict_field(exc: asyncpg.UniqueViolationError) -> str:
    """Which field a unique violation is about: the constraint names follow ``<table>_<field>``."""
    name = exc.constraint_name or ""
    if name.endswith("_pkey"):
        return "id"
    return name.rsplit("_", 1)[-1] if "_" in name else name


class Store:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
