"""Who calls: the user a call addresses and what its credential grants (API.md §2, §7).

The one way in for every transport: ``registry.call`` (HTTP, batches, Socket.IO calls),
the Socket.IO handshake (``registry.identify``) and the attachment download all come here.
Every lookup reads through the worker's caches (``AccessCache``; users for the worker's
life: usernames and user ids never change, users are never deleted).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from pryvrt import errors
from pryvrt.auth.permissions import Access, parse_permissions
from pryvrt.storage.pool import UNAVAILABLE

if TYPE_CHECKING:
    from pryvrt.methods.context import Services
    from pryvrt.storage.channels import Channel
    from pryvrt.storage.tokens import CredentialRow
    from pryvrt.storage.users import User

# Whole-string (``fullmatch``): ``^...$`` with ``match`` let "alice\n" through.
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{3,21}[a-z0-9]")
_USER_CACHE_SIZE = 50_000
# A session's expiry slides at most once a minute (not one write per request).
SLIDE_EVERY = 60.0


def access_of(row: CredentialRow) -> Access:
    """What a credential row grants, as data."""
    return Access(
        row.kind, row.id, row.name, parse_permissions(row.permissions), row.expires, row.access_id
    )


async def find_user(services: Services, username: str | None) -> User:
    """The user named in the address (404 UNKNOWN_USER)."""
    name = (username or "").lower()
    cache = services.user_cache
    user = cache.get(name)
    if user is None:
        if not USERNAME_PATTERN.fullmatch(name):
            raise errors.UnknownUser(f"unknown user {username!r}")
        user = await services.storage.users.by_username(name)
        if user is None:
            raise errors.UnknownUser(f"unknown user {username!r}")
        if len(cache) >= _USER_CACHE_SIZE:
            cache.clear()
        cache[name] = user
    return user


async def authenticate(
    services: Services,
    user: User,
    credential: str | None,
    *,
    client_ip: str | None = None,
    known: bool = False,
) -> Access:
    """What ``credential`` (a token id or a session id of ``user``) grants (401
    INVALID_TOKEN); a session's expiry slides. Wrong credentials are throttled per client
    address (429 with retryAfter), checked before the cache too: a refused address learns
    nothing about any credential. ``known``: a credential checked already (a socket's,
    at connect), not throttled."""
    if not credential:
        raise errors.InvalidToken("a credential is required (Authorization header or ?auth=)")
    throttle = services.credential_throttle
    if not known:
        throttle.check(client_ip)
    now = time.time()
    cache = services.cache
    access = cache.credential(user.id, credential)
    if access is None or (access.expires is not None and access.expires <= now):
        storage = services.storage

        async def load() -> Access | None:
            if known:
                row = await storage.tokens.find_credential(user.id, credential, now)
            else:  # counted before the lookup, so concurrent guesses cannot overtake the count
                async with throttle.attempt(client_ip, unchecked=UNAVAILABLE) as attempt:
                    row = await storage.tokens.find_credential(user.id, credential, now)
                    if row is not None:
                        attempt.succeeded()
            return None if row is None else access_of(row)

        access = await cache.load_credential(user.id, credential, load)
        if access is not None and access.expires is not None and access.expires <= now:
            # Shared with a call that read it a moment earlier, just before it expired:
            # this call checks it itself (and counts as an attempt of its own address).
            access = await load()
        if access is None:
            raise errors.InvalidToken("invalid or expired credential")
    if access.is_session and access.expires is not None:
        ttl = services.settings.session_ttl
        if now + ttl - access.expires > SLIDE_EVERY:
            access = replace(access, expires=now + ttl)
            session_id, expires = access.secret, now + ttl

            async def touch() -> None:
                await services.storage.sessions.touch(user.id, session_id, expires)

            await cache.write_credential(user.id, credential, access, touch)
    return access


async def find_channel(services: Services, user_id: str, channel_id: str) -> Channel:
    """The channel, as last read (404 UNKNOWN_CHANNEL); writes lock and re-read it."""
    channel = services.cache.channel(user_id, channel_id)
    if channel is None:
        storage = services.storage

        async def load() -> Channel | None:
            return await storage.channels.get(user_id, channel_id)

        channel = await services.cache.load_channel(user_id, channel_id, load)
        if channel is None:
            raise errors.UnknownChannel(f"unknown channel {channel_id!r}")
    return channel


async def reread(services: Services, user_id: str, credential: str) -> Access | None:
    """What the credential grants now, read from the database (no cache): ``None`` when it
    no longer works. For listeners that make no calls (sockets: the sweep, a resync)."""
    row = await services.storage.tokens.find_credential(user_id, credential, time.time())
    return None if row is None else access_of(row)
