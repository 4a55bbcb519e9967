"""shares.get / accept / decline: in-app sharing, the recipient's side (API.md §14).

A user shares a token with another user of the server with ``tokens.create`` and
``shareWith``; the share waits in the recipient's list until they accept it (it becomes one
of their sharing bookmarks, §9) or decline it, or until its token is deleted (withdrawn).
Each change reaches the recipient's sockets as ``sharesChanged``, on every worker.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from pryvrt import errors
from pryvrt.ids import new_id
from pryvrt.methods.context import CallContext
from pryvrt.methods.params import ItemRef, Name, Params
from pryvrt.methods.registry import Auth, method
from pryvrt.notify.messages import SHARES_CHANGED
from pryvrt.storage.base import Conflict


class NoParams(Params):
    pass


@method("shares.get", NoParams, auth=Auth.SESSION)
async def get(ctx: CallContext, p: NoParams) -> list[dict[str, Any]]:
    """The shares other users of this server delivered to this user, newest first:
    ``[{id, fromUsername, name, url, token, created}]`` (``url``: the sharer's API root,
    ``token``: the shared token to call it with)."""
    return [s.to_api() for s in await ctx.storage.shares.list_all(ctx.user_id)]


class AcceptParams(Params):
    id: ItemRef
    name: Name | None = Field(
        None, description="the bookmark's name (default: the share's); names are unique"
    )


@method(
    "shares.accept",
    AcceptParams,
    auth=Auth.SESSION,
    errors=("UNKNOWN_SHARE", "ITEM_NAME_ALREADY_EXISTS"),
)
async def accept(ctx: CallContext, p: AcceptParams) -> dict[str, Any]:
    """Keep a share as a sharing bookmark (``{name, url, accessToken}``), and take it off
    the list; answers ``{bookmark}``. A bookmark of that name already: 400
    ITEM_NAME_ALREADY_EXISTS (accept again with another ``name``)."""
    name = p.name
    try:
        async with ctx.storage.transaction() as conn:
            share = await ctx.storage.shares.get(ctx.user_id, p.id, conn, for_update=True)
            if share is None:
                raise errors.UnknownShare(f"unknown share {p.id!r}")
            name = name or share.name
            bookmark = await ctx.storage.bookmarks.create(
                ctx.user_id,
                new_id(),
                name,
                share.url,
                share.token,
                time.time(),
                conn,
            )
            await ctx.storage.shares.delete(ctx.user_id, p.id, conn)
    except Conflict:
        raise errors.ItemNameAlreadyExists(
            "a bookmark with this name already exists: accept with another name",
            {"name": name},
        ) from None
    ctx.notify(SHARES_CHANGED)
    return {"bookmark": bookmark.to_api()}


class DeclineParams(Params):
    id: ItemRef


@method("shares.decline", DeclineParams, auth=Auth.SESSION, errors=("UNKNOWN_SHARE",))
async def decline(ctx: CallContext, p: DeclineParams) -> dict[str, Any]:
    """Decline a share: it leaves the list (the token itself stays the sharer's)."""
    if not await ctx.storage.shares.delete(ctx.user_id, p.id):
        raise errors.UnknownShare(f"unknown share {p.id!r}")
    ctx.notify(SHARES_CHANGED)
    return {}
