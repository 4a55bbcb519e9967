"""Data access tokens, and the credential lookup (token or session) behind every call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from pryvrt.storage.base import Conflict, Executor, Store, conflict_field


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    type: str
    permissions: list[dict[str, Any]]
    created: float
    modified: float
    # Public and stable (API.md §12): names the token where the secret ``id`` must not show.
    access_id: str
    created_by: str
    modified_by: str
    # ``app`` tokens: the device the user accepted it for (API.md §13).
    device_name: str | None = None

    def to_api(self, *, secret: bool = True) -> dict[str, Any]:
        """The token's API form; without ``secret``, its ``id`` is left out (only a
        session, and the token's own creation, ever see a token's secret)."""
        out: dict[str, Any] = {"id": self.id} if secret else {}
        out.update(
            {
                "accessId": self.access_id,
                "name": self.name,
                "type": self.type,
                "permissions": self.permissions,
                "created": self.created,
                "createdBy": self.created_by,
                "modified": self.modified,
                "modifiedBy": self.modified_by,
            }
        )
        if self.device_name is not None:
            out["deviceName"] = self.device_name
        return out


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """What a credential string resolves to: a token, or a session (``kind == "session"``)."""

    kind: str
    id: str
    name: str
    permissions: list[dict[str, Any]]
    expires: float | None
    access_id: str


def _token(row: asyncpg.Record) -> Token:
    return Token(
        row["id"],
        row["name"],
        row["type"],
        row["permissions"],
        row["created"],
        row["modified"],
        row["access_id"],
        row["created_by"],
        row["modified_by"],
        row["device_name"],
    )


def _credential(row: asyncpg.Record | None) -> CredentialRow | None:
    if row is None:
        return None
    return CredentialRow(
        row["kind"], row["id"], row["name"], row["permissions"], row["expires"], row["access_id"]
    )


_CREDENTIAL = (
    "SELECT type AS kind, id, name, permissions, NULL::float8 AS expires, access_id"
    " FROM tokens WHERE user_id = $1 AND {key} = $2"
    " UNION ALL"
    " SELECT 'session', id, coalesce(app_id, ''), '[]'::jsonb, expires, access_id"
    " FROM sessions WHERE user_id = $1 AND {key} = $2 AND expires > $3"
    " LIMIT 1"
)
_BY_SECRET = _CREDENTIAL.format(key="id")
_BY_ACCESS_ID = _CREDENTIAL.format(key="access_id")


class TokensStore(Store):
    async def find_credential(
        self, user_id: str, credential: str, now: float
    ) -> CredentialRow | None:
        """One round trip: the token with that id, else the live session with that id."""
        return _credential(await self.pool.fetchrow(_BY_SECRET, user_id, credential, now))

    async def by_access_id(self, user_id: str, access_id: str, now: float) -> CredentialRow | None:
        """The token, else the live session, with that public accessId (readTokens)."""
        return _credential(await self.pool.fetchrow(_BY_ACCESS_ID, user_id, access_id, now))

    async def list_all(
        self,
        user_id: str,
        types: tuple[str, ...] | None = None,
        created_by: str | None = None,
    ) -> list[Token]:
        """The user's tokens by name: of those ``types`` (None: all), created by that
        accessId (None: anyone's)."""
        rows = await self.pool.fetch(
            "SELECT * FROM tokens WHERE user_id = $1"
            " AND ($2::text[] IS NULL OR type = ANY($2::text[]))"
            " AND ($3::text IS NULL OR created_by = $3) ORDER BY name",
            user_id,
            None if types is None else list(types),
            created_by,
        )
        return [_token(r) for r in rows]

    async def get(self, user_id: str, token_id: str, conn: Executor = None) -> Token | None:
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM tokens WHERE user_id = $1 AND id = $2", user_id, token_id
        )
        return _token(row) if row else None

    async def find(self, user_id: str, ref: str, conn: Executor = None) -> Token | None:
        """The token whose secret ``id`` or public ``accessId`` is ``ref`` (the id first)."""
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM tokens WHERE user_id = $1 AND (id = $2 OR access_id = $2)"
            " ORDER BY id = $2 DESC LIMIT 1",
            user_id,
            ref,
        )
        return _token(row) if row else None

    async def by_name(self, user_id: str, name: str, conn: Executor = None) -> Token | None:
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM tokens WHERE user_id = $1 AND name = $2", user_id, name
        )
        return _token(row) if row else None

    async def create(
        self,
        user_id: str,
        token_id: str,
        name: str,
        type: str,
        permissions: list[dict[str, Any]],
        now: float,
        by: str,
        conn: Executor = None,
        *,
        device_name: str | None = None,
    ) -> Token:
        """A new token, created by ``by`` (an accessId, API.md §12)."""
        try:
            row = await (conn or self.pool).fetchrow(
                "INSERT INTO tokens (user_id, id, name, type, permissions, created, modified,"
                " created_by, modified_by, device_name)"
                " VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $7, $8) RETURNING *",
                user_id,
                token_id,
                name,
                type,
                permissions,
                now,
                by,
                device_name,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return _token(row)

    async def update(
        self,
        user_id: str,
        token_id: str,
        name: str | None,
        permissions: list[dict[str, Any]] | None,
        now: float,
        by: str,
        conn: Executor = None,
        *,
        device_name: str | None = None,
    ) -> Token | None:
        try:
            row = await (conn or self.pool).fetchrow(
                "UPDATE tokens SET name = coalesce($3, name),"
                " permissions = coalesce($4, permissions), modified = $5, modified_by = $6,"
                " device_name = coalesce($7, device_name)"
                " WHERE user_id = $1 AND id = $2 RETURNING *",
                user_id,
                token_id,
                name,
                permissions,
                now,
                by,
                device_name,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return _token(row) if row else None

    async def delete(self, user_id: str, token_id: str, conn: Executor = None) -> bool:
        status: str = await (conn or self.pool).execute(
            "DELETE FROM tokens WHERE user_id = $1 AND id = $2", user_id, token_id
        )
        return status != "DELETE 0"

    async def drop_channel_grants(
        self, user_id: str, channel_id: str, now: float, by: str, conn: Executor
    ) -> list[str]:
        """Remove every permission naming ``channel_id`` (a channel deleted for good) from
        the user's tokens; return the ids of the tokens changed. Grants on ``*`` stay."""
        rows = await conn.fetch(
            "UPDATE tokens SET permissions = (SELECT coalesce(jsonb_agg(p.value ORDER BY p.n),"
            " '[]'::jsonb) FROM jsonb_array_elements(permissions) WITH ORDINALITY AS p(value, n)"
            " WHERE p.value->>'channelId' IS DISTINCT FROM $2), modified = $3, modified_by = $4"
            " WHERE user_id = $1 AND permissions @> jsonb_build_array("
            "jsonb_build_object('channelId', $2::text)) RETURNING id",
            user_id,
            channel_id,
            now,
            by,
        )
        return [r["id"] for r in rows]
