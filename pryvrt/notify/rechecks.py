"""The rechecks a listener needs while it makes no call: an expired session, lost messages.

A socket that only listens never presents its credential again. Deletions and logouts reach
it through the bus (``accessRevoked``), but an expiry is no write, and a bus that lost
messages (Redis was unreachable) may have lost revocations too: these read the credentials
again (``auth.identity.reread``) and say which listeners must go. Routing stays pure
(``notify.routing``); this is its one part that reads the database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from pryvrt.auth import identity
from pryvrt.auth.permissions import Access
from pryvrt.notify.routing import Send, past_expiry, refetch_all

if TYPE_CHECKING:
    from pryvrt.methods.context import Services


class Checked(Protocol):
    """A listener whose credential can be read again."""

    credential: str
    access: Access

    @property
    def user_id(self) -> str: ...


C = TypeVar("C", bound=Checked)


async def reread(services: Services, listeners: Sequence[C]) -> list[C]:
    """Read every listener's credential again: fresh ones get their new ``access``; the
    listeners whose credential stopped working, or whose permissions changed meanwhile (as
    a token update does), are returned (disconnect them: they reconnect with the new)."""
    gone: list[C] = []
    for listener in listeners:
        fresh = await identity.reread(services, listener.user_id, listener.credential)
        if fresh is None or fresh.permissions != listener.access.permissions:
            gone.append(listener)
        else:
            listener.access = fresh
    return gone


async def expired_sessions(services: Services, listeners: Sequence[C]) -> list[C]:
    """Listeners whose session expired: those past the expiry last read are read again (use
    elsewhere may have slid it later), so most sweeps read nothing."""
    return await reread(services, past_expiry(listeners, time.time()))


async def resync(
    services: Services, user_id: str, listeners: Sequence[C]
) -> tuple[list[C], list[Send[C]]]:
    """After lost messages: (listeners to disconnect, what the others must refetch)."""
    gone = await reread(services, listeners)
    kept = [x for x in listeners if x not in gone]
    if not kept:
        return gone, []
    channels = await services.storage.channels.list_all(user_id, "all")
    return gone, refetch_all(kept, [c.id for c in channels])
