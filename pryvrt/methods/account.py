"""Users, admin sessions and sharing bookmarks (API.md §8, §9)."""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, Field, StringConstraints, WithJsonSchema

from pryvrt import errors
from pryvrt.auth.identity import USERNAME_PATTERN
from pryvrt.auth.passwords import DUMMY_HASH, hash_password, verify_password
from pryvrt.ids import new_id, new_secret
from pryvrt.methods.context import CallContext
from pryvrt.methods.params import ItemRef, Name, Params, raw_max_length
from pryvrt.methods.registry import Auth, method
from pryvrt.storage.base import Conflict
from pryvrt.storage.pool import UNAVAILABLE

RESERVED_USERNAMES = frozenset(
    {
        "users",
        "health",
        "channels",
        "tokens",
        "login",
        "logout",
        "bookmarks",
        "shares",
        "user-info",
        "access-info",
        "change-password",
        "socket.io",
        "openapi.json",
        "events",
        "folders",
        "batch",
        "static",
        "assets",
        "admin",
        "www",
        "api",
        "access",
        "consent",
    }
)


def _check_username(value: str) -> str:
    value = value.lower()
    if not USERNAME_PATTERN.fullmatch(value):
        raise ValueError(
            "usernames have 5-23 characters among letters, digits and '-',"
            " not starting or ending with '-'"
        )
    if value in RESERVED_USERNAMES:
        raise ValueError("this username is reserved")
    return value


Username = Annotated[
    str,
    AfterValidator(_check_username),
    # Usernames are case-insensitive (lowercased before the check); reserved words aside.
    WithJsonSchema({"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9-]{3,21}[a-zA-Z0-9]$"}),
]
Password = Annotated[str, StringConstraints(min_length=6, max_length=100)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"),
    raw_max_length(254),
    # Surrounding blanks are trimmed before the check: the document says so.
    WithJsonSchema({"type": "string", "maxLength": 254, "pattern": r"^\s*[^@\s]+@[^@\s]+\s*$"}),
]
Language = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")]


def api_endpoint(ctx: CallContext, username: str) -> str:
    domain = ctx.settings.domain
    if domain:
        scheme = ctx.base_url.split("://", 1)[0] if "://" in ctx.base_url else "https"
        return f"{scheme}://{username}.{domain}/"
    return f"{ctx.base_url}/{username}/"


class RegisterParams(Params):
    # ``userName`` too: login takes it so (seed form), and a client should not have to
    # remember which call spells it how. One of the two, not both.
    username: Annotated[Username, Field(validation_alias=AliasChoices("username", "userName"))]
    password: Password
    email: Email | None = None
    language: Language = "en"


@method(
    "users.create",
    RegisterParams,
    auth=Auth.NONE,
    user_scoped=False,
    errors=(
        "ITEM_ID_ALREADY_EXISTS",
        "ITEM_NAME_ALREADY_EXISTS",
        "FORBIDDEN",
        "INVALID_CREDENTIALS",
        "TOO_MANY_REQUESTS",
    ),
)
async def register(ctx: CallContext, p: RegisterParams) -> dict[str, Any]:
    """Register a user (open, guarded by PRYVRT_ADMIN_KEY, or closed, by config)."""
    mode = ctx.settings.registration
    if mode == "closed":
        raise errors.Forbidden("registration is closed on this server")
    if mode == "key":
        key = ctx.settings.admin_key or ""
        # A wrong key is a wrong credential: throttled per address like a wrong token.
        async with ctx.services.credential_throttle.attempt(ctx.client_ip) as attempt:
            if not hmac.compare_digest((ctx.credential or "").encode(), key.encode()):
                raise errors.InvalidCredentials("registration needs the admin key")
            attempt.succeeded()
    return await create_user(ctx, p)


async def create_user(ctx: CallContext, p: RegisterParams) -> dict[str, Any]:
    """Create the account and its default channels, in one transaction (shared by the
    HTTP method and the CLI)."""
    if await ctx.storage.users.by_username(p.username) is not None:
        raise errors.ItemIdAlreadyExists("this username is taken", {"username": p.username})
    password_hash = await hash_password(p.password, fast=ctx.settings.password_hash_fast)
    now = time.time()
    try:
        async with ctx.storage.transaction() as conn:
            user = await ctx.storage.users.create(
                new_id(), p.username, password_hash, p.email, p.language, now, conn
            )
            # The default structure (seeds 001/003): PRYVRT_DEFAULT_CHANNELS, "diary".
            for channel_id, name in ctx.settings.default_channels:
                await ctx.storage.channels.create(
                    user.id, channel_id, name, True, {}, now, ctx.writer, conn
                )
    except Conflict as exc:
        if exc.field == "email":
            raise errors.ItemNameAlreadyExists("this email is taken", {"email": p.email}) from None
        raise errors.ItemIdAlreadyExists(
            "this username is taken", {"username": p.username}
        ) from None
    return {"username": p.username, "apiEndpoint": api_endpoint(ctx, p.username)}


class LoginParams(Params):
    # ``username`` too, as registration spells it (one of the two, not both).
    userName: Annotated[
        str,
        StringConstraints(min_length=1, max_length=100),
        Field(validation_alias=AliasChoices("userName", "username")),
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    appId: Annotated[str, StringConstraints(max_length=100)] | None = None


@method(
    "admin.login",
    LoginParams,
    auth=Auth.NONE,
    errors=("INVALID_CREDENTIALS", "TOO_MANY_REQUESTS"),
)
async def login(ctx: CallContext, p: LoginParams) -> dict[str, Any]:
    """Open an admin session: ``{sessionID, accessId}``; repeated failures for a username or
    an IP answer 429.

    The attempt is counted before the password is checked (concurrent guesses cannot
    overtake the count) and taken back only when it succeeds (see ``auth.throttle``).
    """
    same_user = ctx.user is not None and p.userName.lower() == ctx.user.username
    attempt = ctx.services.throttle.attempt(ctx.user_id, ctx.client_ip, unchecked=UNAVAILABLE)
    async with attempt:
        stored = await ctx.storage.users.password_hash(ctx.user_id)
        valid = await verify_password(stored if same_user and stored else DUMMY_HASH, p.password)
        if not (same_user and valid):
            raise errors.InvalidCredentials("wrong username or password")
        attempt.succeeded()
    session_id = new_secret()
    access_id = await ctx.storage.sessions.create(
        ctx.user_id, session_id, p.appId, time.time(), ctx.settings.session_ttl
    )
    # accessId: what this session's writes will show as createdBy/modifiedBy (API.md §12).
    return {"sessionID": session_id, "accessId": access_id}


class NoParams(Params):
    pass


@method("admin.logout", NoParams, auth=Auth.SESSION)
async def logout(ctx: CallContext, p: NoParams) -> dict[str, Any]:
    """End the calling session (its sockets are disconnected)."""
    access = ctx.require_access()
    await ctx.storage.sessions.delete(ctx.user_id, access.secret)
    ctx.revoke(access.secret)
    return {}


@method("admin.getUserInfo", NoParams, auth=Auth.SESSION)
async def get_user_info(ctx: CallContext, p: NoParams) -> dict[str, Any]:
    """The account's username, email, language and creation time."""
    user = await ctx.storage.users.by_username(ctx.user.username if ctx.user else "")
    if user is None:
        raise errors.UnknownUser("unknown user")
    return user.to_api()


class UserInfoParams(Params):
    email: Email | None = None
    language: Language | None = None


@method(
    "admin.updateUserInfo",
    UserInfoParams,
    auth=Auth.SESSION,
    errors=("ITEM_NAME_ALREADY_EXISTS",),
)
async def update_user_info(ctx: CallContext, p: UserInfoParams) -> dict[str, Any]:
    """Change the email (null removes it) and/or language."""
    changes = {k: getattr(p, k) for k in p.model_fields_set}
    if changes.get("language", "") is None:
        raise errors.InvalidParametersFormat("invalid parameters", {"language": "cannot be null"})
    try:
        user = await ctx.storage.users.update_info(ctx.user_id, changes)
    except Conflict:
        raise errors.ItemNameAlreadyExists("this email is taken", {"email": p.email}) from None
    return user.to_api()


class ChangePasswordParams(Params):
    oldPassword: Annotated[str, StringConstraints(max_length=1000)]
    newPassword: Annotated[str, StringConstraints(max_length=1000)]


@method(
    "admin.changePassword",
    ChangePasswordParams,
    auth=Auth.SESSION,
    errors=("WRONG_PASSWORD", "INVALID_NEW_PASSWORD"),
)
async def change_password(ctx: CallContext, p: ChangePasswordParams) -> dict[str, Any]:
    """Change the password; every other session of the user ends."""
    stored = await ctx.storage.users.password_hash(ctx.user_id)
    if not stored or not await verify_password(stored, p.oldPassword):
        raise errors.WrongPassword("the old password is wrong")
    if not 6 <= len(p.newPassword) <= 100:
        raise errors.InvalidNewPassword("passwords have 6 to 100 characters")
    new_hash = await hash_password(p.newPassword, fast=ctx.settings.password_hash_fast)
    access = ctx.require_access()
    async with ctx.storage.transaction() as conn:
        await ctx.storage.users.set_password_hash(ctx.user_id, new_hash, conn)
        ended = await ctx.storage.sessions.delete_others(ctx.user_id, access.secret, conn)
    for session_id in ended:
        ctx.revoke(session_id)
    return {}


@method("bookmarks.get", NoParams, auth=Auth.SESSION)
async def get_bookmarks(ctx: CallContext, p: NoParams) -> list[dict[str, Any]]:
    """Sharing bookmarks, by name."""
    return [b.to_api() for b in await ctx.storage.bookmarks.list_all(ctx.user_id)]


# pydantic patterns use Rust's regex (``$`` is the end of the text) and search, so anchor both
# ends; no blank or control character anywhere in the URL.
Url = Annotated[
    str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")
]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class BookmarkCreateParams(Params):
    name: Name
    url: Url
    accessToken: Secret


@method(
    "bookmarks.create",
    BookmarkCreateParams,
    auth=Auth.SESSION,
    errors=("ITEM_NAME_ALREADY_EXISTS",),
)
async def create_bookmark(ctx: CallContext, p: BookmarkCreateParams) -> dict[str, Any]:
    """Keep a token someone shared, to reopen it later."""
    try:
        bookmark = await ctx.storage.bookmarks.create(
            ctx.user_id, new_id(), p.name, p.url, p.accessToken, time.time()
        )
    except Conflict:
        raise errors.ItemNameAlreadyExists("a bookmark with this name already exists") from None
    return {"id": bookmark.id}


class BookmarkUpdateParams(Params):
    id: ItemRef
    name: Name | None = None
    url: str | None = None
    accessToken: str | None = None


@method(
    "bookmarks.update",
    BookmarkUpdateParams,
    auth=Auth.SESSION,
    errors=("UNKNOWN_BOOKMARK", "ITEM_NAME_ALREADY_EXISTS", "INVALID_OPERATION"),
)
async def update_bookmark(ctx: CallContext, p: BookmarkUpdateParams) -> dict[str, Any]:
    """Rename a bookmark; its url and accessToken cannot change."""
    current = {b.id: b for b in await ctx.storage.bookmarks.list_all(ctx.user_id)}.get(p.id)
    if current is None:
        raise errors.UnknownBookmark(f"unknown bookmark {p.id!r}")
    if (p.url is not None and p.url != current.url) or (
        p.accessToken is not None and p.accessToken != current.access_token
    ):
        raise errors.InvalidOperation("a bookmark's url and accessToken cannot change")
    if p.name is not None:
        try:
            await ctx.storage.bookmarks.rename(ctx.user_id, p.id, p.name, time.time())
        except Conflict:
            raise errors.ItemNameAlreadyExists("a bookmark with this name already exists") from None
    return {}


class BookmarkDeleteParams(Params):
    id: ItemRef


@method("bookmarks.delete", BookmarkDeleteParams, auth=Auth.SESSION, errors=("UNKNOWN_BOOKMARK",))
async def delete_bookmark(ctx: CallContext, p: BookmarkDeleteParams) -> dict[str, Any]:
    """Delete a bookmark."""
    if not await ctx.storage.bookmarks.delete(ctx.user_id, p.id):
        raise errors.UnknownBookmark(f"unknown bookmark {p.id!r}")
    return {}
