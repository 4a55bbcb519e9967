"""tokens.getOrCreatePersonal / get / create / update / delete (API.md §7)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from pryvrt import errors
from pryvrt.auth.permissions import Access, parse_permissions
from pryvrt.ids import new_id, new_secret
from pryvrt.methods.account import api_endpoint
from pryvrt.methods.context import CallContext
from pryvrt.methods.event_fields import unique_tags
from pryvrt.methods.params import ItemRef, Name, Params, TagList, Timestamp, check_item_id
from pryvrt.methods.registry import Auth, method
from pryvrt.notify import Change
from pryvrt.notify.messages import SHARES_CHANGED
from pryvrt.storage.base import Conflict
from pryvrt.storage.tokens import Token
from pryvrt.storage.users import User

LevelName = Literal["read", "contribute", "manage"]

# A token id is the credential itself: a client-chosen one must be long enough that
# guessing it is hopeless (20 random characters of the id alphabet: ~119 bits; a UUID or
# 16 random bytes in base64url qualify). Server-generated ids have 256 bits.
MIN_TOKEN_ID_LENGTH = 20


def check_token_id(value: str) -> str:
    check_item_id(value)
    if len(value) < MIN_TOKEN_ID_LENGTH:
        raise PydanticCustomError(
            "invalid_item_id",
            "a token id is its secret: a client-chosen one needs at least {min} characters"
            " (choose it at random, e.g. a UUID)",
            {"min": MIN_TOKEN_ID_LENGTH},
        )
    return value


NewTokenId = Annotated[
    str,
    AfterValidator(check_token_id),
    WithJsonSchema({"type": "string", "pattern": f"^[a-zA-Z0-9._-]{{{MIN_TOKEN_ID_LENGTH},100}}$"}),
]


class NarrowingParams(Params):
    """Filters that narrow a grant to some events (API.md §14)."""

    tags: TagList | None = Field(
        None, description="only the events having at least one of these tags"
    )
    fromTime: Timestamp | None = Field(
        None, description="only the events overlapping the frame that starts here"
    )
    toTime: Timestamp | None = Field(
        None, description="only the events overlapping the frame that ends here"
    )

    @property
    def narrowed(self) -> bool:
        return self.tags is not None or self.fromTime is not None or self.toTime is not None

    def check_narrowing(self, level: str) -> None:
        if self.tags is not None and not self.tags:
            raise ValueError("tags must name at least one tag (leave it out for all events)")
        if self.fromTime is not None and self.toTime is not None and self.fromTime > self.toTime:
            raise ValueError("fromTime must not be after toTime")
        if self.narrowed and level == "manage":
            raise ValueError(
                "a grant narrowed by tags or a time frame can be read or contribute:"
                " managing folders reaches events outside the filter"
            )

    def narrowing_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.tags is not None:
            out["tags"] = unique_tags(self.tags)
        if self.fromTime is not None:
            out["fromTime"] = self.fromTime
        if self.toTime is not None:
            out["toTime"] = self.toTime
        return out


class FolderPermissionParam(NarrowingParams):
    folderId: ItemRef | None
    level: LevelName

    @model_validator(mode="after")
    def _narrowing(self) -> FolderPermissionParam:
        self.check_narrowing(self.level)
        return self


class PermissionParam(NarrowingParams):
    channelId: ItemRef
    level: LevelName = "read"
    folderPermissions: list[FolderPermissionParam] | None = None

    @model_validator(mode="after")
    def _folders_need_a_channel(self) -> PermissionParam:
        if self.folderPermissions is not None and self.channelId == "*":
            raise ValueError("folderPermissions need a specific channelId, not '*'")
        self.check_narrowing(self.level)
        if self.narrowed and any(f.level == "manage" for f in self.folderPermissions or ()):
            self.check_narrowing("manage")
        return self


def permissions_json(perms: list[PermissionParam]) -> list[dict[str, Any]]:
    """As stored: ``folderPermissions`` and the filters only when given; ``folderId: null``
    kept (it means the events with no folder)."""
    result: list[dict[str, Any]] = []
    for perm in perms:
        item: dict[str, Any] = {"channelId": perm.channelId, "level": perm.level}
        item.update(perm.narrowing_json())
        if perm.folderPermissions is not None:
            item["folderPermissions"] = [
                {"folderId": f.folderId, "level": f.level, **f.narrowing_json()}
                for f in perm.folderPermissions
            ]
        result.append(item)
    return result


def check_grantable(creator: Access, perms: list[dict[str, Any]]) -> None:
    """A token may never grant more than its creator holds."""
    wanted = Access("shared", "", "", parse_permissions(perms))
    if not creator.covers(wanted):
        raise errors.Forbidden("a token cannot grant more than its creator holds")


class PersonalParams(Params):
    name: Name


@method(
    "tokens.getOrCreatePersonal",
    PersonalParams,
    auth=Auth.SESSION,
    errors=("ITEM_NAME_ALREADY_EXISTS",),
)
async def get_or_create_personal(ctx: CallContext, p: PersonalParams) -> dict[str, Any]:
    """The personal token of an app name, created on first request."""
    existing = await ctx.storage.tokens.by_name(ctx.user_id, p.name)
    if existing is None:
        try:
            existing = await ctx.storage.tokens.create(
                ctx.user_id, new_secret(), p.name, "personal", [], time.time(), ctx.writer
            )
        except Conflict:
            existing = await ctx.storage.tokens.by_name(ctx.user_id, p.name)
    if existing is None or existing.type != "personal":
        raise errors.ItemNameAlreadyExists("a non-personal token already has this name")
    return {"id": existing.id}


class NoParams(Params):
    pass


def manages(access: Access, token: Token) -> bool:
    """Whether ``access`` may see and change ``token``: a session every token, a personal
    token all but personal ones, an app token the shared tokens it created (API.md §13)."""
    if access.is_session:
        return True
    if access.kind == "personal":
        return token.type != "personal"
    return token.type == "shared" and token.created_by == access.access_id


@method("tokens.get", NoParams, auth=Auth.TOKENS)
async def get(ctx: CallContext, p: NoParams) -> list[dict[str, Any]]:
    """Tokens by name: all of them for a session; the shared and app ones for a personal
    token; the shared ones it created for an app token. Only a session sees their secret
    ``id``; the others name them by ``accessId`` (tokens.update and tokens.delete take it)."""
    access = ctx.require_access()
    if access.is_session:
        tokens = await ctx.storage.tokens.list_all(ctx.user_id)
    elif access.kind == "personal":
        tokens = await ctx.storage.tokens.list_all(ctx.user_id, ("shared", "app"))
    else:
        tokens = await ctx.storage.tokens.list_all(ctx.user_id, ("shared",), access.access_id)
    return [t.to_api(secret=access.is_session) for t in tokens]


class CreateParams(Params):
    id: NewTokenId | None = Field(
        None, description="the secret credential; server-generated (256 bits) when left out"
    )
    name: Name
    type: Literal["shared", "app"] = "shared"
    permissions: list[PermissionParam] = Field(default_factory=list)
    shareWith: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None,
        description="a username of this server: the token is also delivered to that user"
        " (their GET /shares, a sharesChanged notification; API.md §14)",
    )


@method(
    "tokens.create",
    CreateParams,
    auth=Auth.TOKENS,
    errors=("ITEM_NAME_ALREADY_EXISTS", "ITEM_ID_ALREADY_EXISTS", "INVALID_ITEM_ID"),
)
async def create(ctx: CallContext, p: CreateParams) -> dict[str, Any]:
    """Create a shared (or app) token; a creator may only grant what it holds. An app token
    creates shared tokens only. 201 ``{id, accessId}``: the one answer holding the secret.

    With ``shareWith``, the token is also delivered, in the same transaction, to that user
    of the server, who may accept it (a bookmark) or decline it (``shares.*``)."""
    access = ctx.require_access()
    if access.kind == "app" and p.type != "shared":
        raise errors.Forbidden("an app token creates shared tokens only")
    perms = permissions_json(p.permissions)
    check_grantable(access, perms)
    recipient = None
    if p.shareWith is not None:
        recipient = await share_recipient(ctx, p)
    now = time.time()
    try:
        async with ctx.storage.transaction() as conn:
            token = await ctx.storage.tokens.create(
                ctx.user_id, p.id or new_secret(), p.name, p.type, perms, now, ctx.writer, conn
            )
            if recipient is not None:
                url = api_endpoint(ctx, ctx.require_user().username)
                await ctx.storage.shares.create(
                    conn, recipient.id, new_id(), ctx.user_id, token.id, p.name, url, now
                )
    except Conflict as exc:
        if exc.field == "id":
            raise errors.ItemIdAlreadyExists("a token with this id already exists") from None
        raise errors.ItemNameAlreadyExists("a token with this name already exists") from None
    if recipient is not None:  # committed: tell the recipient's sockets, on every worker
        await ctx.services.bus.publish(recipient.id, [Change(SHARES_CHANGED)])
    return {"id": token.id, "accessId": token.access_id}


TOKEN_REF = "the token's id (its secret) or its accessId"


async def share_recipient(ctx: CallContext, p: CreateParams) -> User:
    """The user ``shareWith`` names: another user of this server, for a shared token."""

    def refused(why: str) -> errors.ApiError:
        return errors.InvalidParametersFormat(why, {"shareWith": why})

    if p.type != "shared":
        raise refused("only shared tokens can be shared with a user")
    recipient = await ctx.storage.users.by_username(p.shareWith or "")
    if recipient is None:
        raise refused("no user of this server has this username")
    if recipient.id == ctx.user_id:
        raise refused("a token cannot be shared with its own user")
    return recipient


class UpdateParams(Params):
    id: ItemRef = Field(description=TOKEN_REF)
    name: Name | None = None
    permissions: list[PermissionParam] | None = None


async def managed_token(ctx: CallContext, ref: str) -> Token:
    """The token ``ref`` names, when the caller manages it (else 404 UNKNOWN_TOKEN)."""
    token = await ctx.storage.tokens.find(ctx.user_id, ref)
    if token is None or not manages(ctx.require_access(), token):
        raise errors.UnknownToken(f"unknown token {ref!r}")
    return token


@method(
    "tokens.update",
    UpdateParams,
    auth=Auth.TOKENS,
    errors=("UNKNOWN_TOKEN", "ITEM_NAME_ALREADY_EXISTS", "FORBIDDEN", "INVALID_OPERATION"),
)
async def update(ctx: CallContext, p: UpdateParams) -> dict[str, Any]:
    """Rename a token or change its permissions (never beyond the caller's)."""
    access = ctx.require_access()
    token = await managed_token(ctx, p.id)
    perms = None
    if p.permissions is not None:
        if token.type == "personal":
            raise errors.InvalidOperation("personal tokens have full access; no permissions")
        perms = permissions_json(p.permissions)
        check_grantable(access, perms)
    try:
        await ctx.storage.tokens.update(
            ctx.user_id, token.id, p.name, perms, time.time(), ctx.writer
        )
    except Conflict:
        raise errors.ItemNameAlreadyExists("a token with this name already exists") from None
    if perms is not None:
        # Live sockets hold the old permissions: make them reconnect with the new ones.
        ctx.revoke(token.id)
    return {}


class DeleteParams(Params):
    id: ItemRef = Field(description=TOKEN_REF)


@method("tokens.delete", DeleteParams, auth=Auth.TOKENS, errors=("UNKNOWN_TOKEN",))
async def delete(ctx: CallContext, p: DeleteParams) -> dict[str, Any]:
    """Delete a token for good; sockets using it are disconnected, and the shares that
    delivered it to other users are withdrawn."""
    token = await managed_token(ctx, p.id)
    async with ctx.storage.transaction() as conn:
        await ctx.storage.tokens.delete(ctx.user_id, token.id, conn)
        recipients = await ctx.storage.shares.withdraw(conn, ctx.user_id, token.id)
    ctx.revoke(token.id)
    for recipient in recipients:  # the share is withdrawn: their lists changed
        await ctx.services.bus.publish(recipient, [Change(SHARES_CHANGED)])
    return {}


@method("tokens.getAccessInfo", NoParams)
async def get_access_info(ctx: CallContext, p: NoParams) -> dict[str, Any]:
    """What the request's credential is and may do (any credential; the dashboard shows only
    the controls it can use). Never the secret: ``accessId`` is its public id."""
    access = ctx.require_access()
    if access.is_full:
        permissions: list[dict[str, Any]] = [{"channelId": "*", "level": "manage"}]
    else:
        token = await ctx.storage.tokens.get(ctx.user_id, access.secret)
        permissions = token.permissions if token is not None else []
    return {
        "type": access.kind,
        "name": access.name,
        "accessId": access.access_id,
        "username": ctx.user.username if ctx.user is not None else ctx.username,
        "permissions": permissions,
    }
