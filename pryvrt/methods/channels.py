"""channels.get / create / update / delete (API.md §5)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from pryvrt import errors
from pryvrt.auth.permissions import Level
from pryvrt.ids import new_id
from pryvrt.methods.context import CallContext
from pryvrt.methods.params import (
    ChannelParams,
    ClientData,
    Name,
    NewItemId,
    Params,
    State,
    merge_client_data,
)
from pryvrt.methods.registry import Auth, method
from pryvrt.methods.scope import Lock, Need, whole_channel
from pryvrt.notify.messages import CHANNELS_CHANGED
from pryvrt.storage.base import Conflict


class GetParams(Params):
    state: State = "default"


@method("channels.get", GetParams)
async def get(ctx: CallContext, p: GetParams) -> list[dict[str, Any]]:
    """The channels the credential can see, sorted by name."""
    access = ctx.require_access()
    state = p.state if access.is_full else "default"
    channels = await ctx.storage.channels.list_all(ctx.user_id, state)
    return [c.to_api() for c in channels if access.can_see_channel(c.id)]


class CreateParams(Params):
    id: NewItemId | None = None
    name: Name
    enforceNoEventsOverlap: bool = True
    clientData: ClientData = Field(default_factory=dict)


def name_conflict(exc: Conflict, kind: str) -> errors.ApiError:
    if exc.field == "id":
        return errors.ItemIdAlreadyExists(f"a {kind} with this id already exists")
    return errors.ItemNameAlreadyExists(f"a {kind} with this name already exists")


@method(
    "channels.create",
    CreateParams,
    auth=Auth.PERSONAL,
    errors=("ITEM_ID_ALREADY_EXISTS", "ITEM_NAME_ALREADY_EXISTS", "INVALID_ITEM_ID"),
)
async def create(ctx: CallContext, p: CreateParams) -> dict[str, Any]:
    """Create a channel."""
    try:
        channel = await ctx.storage.channels.create(
            ctx.user_id,
            p.id or new_id(),
            p.name,
            p.enforceNoEventsOverlap,
            merge_client_data({}, p.clientData),
            time.time(),
            ctx.writer,
        )
    except Conflict as exc:
        raise name_conflict(exc, "channel") from None
    ctx.notify(CHANNELS_CHANGED, channel.id)
    return {"id": channel.id}


class UpdateParams(ChannelParams):
    name: Name | None = None
    enforceNoEventsOverlap: bool | None = None
    clientData: ClientData | None = None


@method(
    "channels.update",
    UpdateParams,
    need=Need(Level.MANAGE, whole_channel(), lock=Lock.EXCLUSIVE),
    errors=("ITEM_NAME_ALREADY_EXISTS", "INVALID_OPERATION"),
)
async def update(ctx: CallContext, p: UpdateParams) -> dict[str, Any]:
    """Update a channel's name, overlap rule or clientData (merged).

    Making a channel strict (``enforceNoEventsOverlap: true``) is refused while its periods
    break the strict rules (overlaps, several running): the check and the switch hold the
    channel's lock, so no period write slips in between (docs/events.md).
    """
    scope = ctx.require_scope()
    channel, conn = scope.channel, scope.conn
    if p.enforceNoEventsOverlap and not channel.enforce_no_events_overlap:
        conflicting = await ctx.storage.periods.conflicting(conn, ctx.user_id, channel.id)
        if conflicting:
            raise errors.InvalidOperation(
                "the channel has overlapping (or several running) periods: stop, move or"
                " trash them before enforcing no overlap",
                {"enforceNoEventsOverlap": True, "overlappingIds": conflicting},
            )
    client_data = (
        None if p.clientData is None else merge_client_data(channel.client_data, p.clientData)
    )
    try:
        updated = await ctx.storage.channels.update(
            ctx.user_id,
            p.channelId,
            p.name,
            p.enforceNoEventsOverlap,
            client_data,
            time.time(),
            ctx.writer,
            conn,
        )
    except Conflict as exc:
        raise name_conflict(exc, "channel") from None
    if updated is None:
        raise errors.UnknownChannel(f"unknown channel {p.channelId!r}")
    ctx.notify(CHANNELS_CHANGED, p.channelId)
    return {}


@method(
    "channels.delete", ChannelParams, auth=Auth.PERSONAL, need=Need(Level.MANAGE, whole_channel())
)
async def delete(ctx: CallContext, p: ChannelParams) -> dict[str, Any]:
    """Trash a channel; delete it for good (folders, events, files) when already trashed.

    Deleting for good also removes the tokens' grants on the channel, in the same
    transaction: a channel created later with the same id starts with no grant (a token
    granted on the old one must not read the new one). Sockets of those tokens are
    disconnected, as after a token update."""
    channel = ctx.require_scope().channel
    if channel.trashed:
        async with ctx.storage.transaction() as conn:
            await ctx.storage.channels.delete(ctx.user_id, channel.id, conn)
            narrowed = await ctx.storage.tokens.drop_channel_grants(
                ctx.user_id, channel.id, time.time(), ctx.writer, conn
            )
        for token_id in narrowed:
            ctx.revoke(token_id)
    else:
        await ctx.storage.channels.trash(ctx.user_id, channel.id, time.time(), ctx.writer)
    ctx.notify(CHANNELS_CHANGED, channel.id)
    return {}
