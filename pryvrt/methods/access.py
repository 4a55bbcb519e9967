"""App access requests (API.md §13) and ``tokens.checkApp``.

How an app gets a token without seeing the user's password: it opens a request
(``access.request``, no credential), sends the user to the consent page of the request
(``pryvrt.web.consent``), and polls (``access.poll``) until the user has decided there
(``access.accept`` / ``access.refuse``, which need the user's session: on the page, the
dashboard's cookie session). Accepting creates what the request names with a
``defaultName`` and does not exist yet (channels, folders), then the ``app`` token of the
app id, or reuses the existing one when its permissions match (``tokens.checkApp``).

The request key is the only handle on a request: 256 random bits, living
``PRYVRT_ACCESS_REQUEST_TTL`` seconds. Whoever holds it collects the token once the user
accepted, so it travels only between the app, the user's browser and this server.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema, model_validator

from pryvrt import errors
from pryvrt.auth.throttle import too_many
from pryvrt.ids import new_secret
from pryvrt.methods.account import api_endpoint
from pryvrt.methods.context import CallContext
from pryvrt.methods.folder_tree import FolderTree
from pryvrt.methods.params import (
    ID_PATTERN,
    RESERVED_IDS,
    ClientData,
    ItemRef,
    Name,
    Params,
    raw_max_length,
)
from pryvrt.methods.registry import Auth, method
from pryvrt.methods.tokens import LevelName, check_grantable
from pryvrt.notify.messages import CHANNELS_CHANGED, FOLDERS_CHANGED
from pryvrt.storage.access_requests import ACCEPTED, PENDING, REFUSED, AccessRequest
from pryvrt.storage.base import Conflict
from pryvrt.storage.folders import Folder
from pryvrt.storage.tokens import Token


def check_app_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError("an app id has 1-100 characters among letters, digits, '.', '_', '-'")
    return value


AppId = Annotated[
    str,
    AfterValidator(check_app_id),
    WithJsonSchema({"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}),
]
DeviceName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), raw_max_length(200)
]
MAX_RETURN_URL = 2000


def check_return_url(value: str) -> str:
    """An absolute http(s) URL: the browser is sent there after the decision, so anything
    else (``javascript:``, ``data:``, a relative path) is refused when the request opens."""
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise ValueError("returnURL cannot hold spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("returnURL is not a URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("returnURL must be an absolute http:// or https:// URL")
    return value


ReturnUrl = Annotated[
    str,
    StringConstraints(max_length=MAX_RETURN_URL),
    AfterValidator(check_return_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^[hH][tT][tT][pP][sS]?://"}),
]


def _new_id_if_created(value: str | None, default_name: str | None, what: str) -> None:
    """An item created from ``defaultName`` takes the requested id: it must be a valid one."""
    if default_name is not None and value is not None:
        if not ID_PATTERN.fullmatch(value) or value in RESERVED_IDS:
            raise ValueError(f"{what} {value!r} cannot be created: not a valid id")


class RequestedFolderPermission(Params):
    folderId: ItemRef | None = Field(description="null: the events with no folder")
    level: LevelName
    defaultName: Name | None = Field(None, description="create the folder when it is missing")
    parentId: ItemRef | None = Field(None, description="where to create it (null: the root)")

    @model_validator(mode="after")
    def _creatable(self) -> RequestedFolderPermission:
        _new_id_if_created(self.folderId, self.defaultName, "folder")
        if self.defaultName is not None and self.folderId is None:
            raise ValueError("defaultName needs a folderId")
        return self


class RequestedPermission(Params):
    channelId: ItemRef
    level: LevelName = "read"
    defaultName: Name | None = Field(None, description="create the channel when it is missing")
    folderPermissions: list[RequestedFolderPermission] | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> RequestedPermission:
        if self.channelId == "*" and (self.folderPermissions is not None or self.defaultName):
            raise ValueError("'*' takes neither folderPermissions nor defaultName")
        _new_id_if_created(self.channelId, self.defaultName, "channel")
        return self


RequestedPermissions = Annotated[list[RequestedPermission], Field(min_length=1, max_length=100)]


def granted(perms: list[RequestedPermission]) -> list[dict[str, Any]]:
    """The permissions as a token holds them (no defaultName, no parentId)."""
    result: list[dict[str, Any]] = []
    for perm in perms:
        item: dict[str, Any] = {"channelId": perm.channelId, "level": perm.level}
        if perm.folderPermissions is not None:
            item["folderPermissions"] = [
                {"folderId": f.folderId, "level": f.level} for f in perm.folderPermissions
            ]
        result.append(item)
    return result


def as_stored(perm: RequestedPermission) -> dict[str, Any]:
    """A requested permission as the request keeps it (``folderId: null`` kept: it means
    the events with no folder; absent options left out)."""
    item: dict[str, Any] = {"channelId": perm.channelId, "level": perm.level}
    if perm.defaultName is not None:
        item["defaultName"] = perm.defaultName
    if perm.folderPermissions is not None:
        item["folderPermissions"] = [
            f.model_dump(exclude={"defaultName", "parentId"} - f.model_fields_set)
            for f in perm.folderPermissions
        ]
    return item


def normalized(perms: list[dict[str, Any]]) -> bytes:
    """Permissions in one canonical order, to compare two sets of them."""
    items = []
    for perm in perms:
        item = {"channelId": perm["channelId"], "level": perm["level"]}
        if perm.get("folderPermissions") is not None:
            item["folderPermissions"] = sorted(
                perm["folderPermissions"], key=lambda f: (f["folderId"] or "", f["level"])
            )
        items.append(item)
    items.sort(key=lambda p: orjson.dumps(p, option=orjson.OPT_SORT_KEYS))
    return orjson.dumps(items, option=orjson.OPT_SORT_KEYS)


# -- tokens.checkApp ------------------------------------------------------------------------


class CheckAppParams(Params):
    requestingAppId: AppId
    requestedPermissions: RequestedPermissions
    deviceName: DeviceName | None = None


async def check_app(
    ctx: CallContext, app_id: str, perms: list[dict[str, Any]], conn: Any = None
) -> tuple[Token | None, bool]:
    """(the app token of that app id, whether its permissions are ``perms``)."""
    token = await ctx.storage.tokens.by_name(ctx.user_id, app_id, conn)
    if token is None or token.type != "app":
        return None, False
    return token, normalized(token.permissions) == normalized(perms)


@method("tokens.checkApp", CheckAppParams, auth=Auth.SESSION)
async def check_app_method(ctx: CallContext, p: CheckAppParams) -> dict[str, Any]:
    """Whether the app token of an app id already grants the permissions it asks for.

    ``{matchingToken}``, ``{mismatchingToken, checkedPermissions}``, or
    ``{checkedPermissions}`` when the app has no token (the permissions a token would get:
    no defaultName, no parentId). Tokens without their secret (``accessId`` names them)."""
    perms = granted(p.requestedPermissions)
    token, matches = await check_app(ctx, p.requestingAppId, perms)
    if token is not None and matches:
        return {"matchingToken": token.to_api(secret=False)}
    if token is not None:
        return {"mismatchingToken": token.to_api(secret=False), "checkedPermissions": perms}
    return {"checkedPermissions": perms}


# -- access.request / access.poll (the app's side) -------------------------------------------


class RequestParams(Params):
    requestingAppId: AppId
    requestedPermissions: RequestedPermissions
    deviceName: DeviceName | None = None
    returnURL: ReturnUrl | None = Field(
        None, description="http(s) URL the browser goes to after the decision"
    )
    clientData: ClientData = Field(default_factory=dict)


def request_urls(ctx: CallContext, key: str) -> dict[str, Any]:
    url = f"{ctx.base_url}/access/{key}"
    return {"authUrl": url, "poll": url, "pollRateMs": ctx.settings.access_poll_ms}


@method(
    "access.request",
    RequestParams,
    auth=Auth.NONE,
    user_scoped=False,
    errors=("TOO_MANY_REQUESTS",),
)
async def request(ctx: CallContext, p: RequestParams) -> dict[str, Any]:
    """Open an app access request (no credential needed).

    201 ``{status: "NEED_SIGNIN", key, authUrl, poll, pollRateMs}``. Send the user's browser to ``authUrl``; poll ``poll``
    (GET, JSON) every ``pollRateMs`` until the status changes."""
    if ctx.services.access_rate is not None:
        ctx.services.access_rate.check(ctx.client_ip, "access requests from this address")
    key = secrets.token_urlsafe(32)  # 256 bits
    await ctx.storage.access_requests.create(
        key,
        time.time(),
        ctx.settings.access_request_ttl,
        p.requestingAppId,
        [as_stored(perm) for perm in p.requestedPermissions],
        p.deviceName,
        p.returnURL,
        p.clientData,
    )
    return {"status": PENDING, "key": key, **request_urls(ctx, key)}


class KeyParams(Params):
    key: Annotated[str, StringConstraints(min_length=1, max_length=100)]


def app_endpoint(ctx: CallContext, username: str, token: str) -> str:
    """``http(s)://{token}@host/{username}/`` (API.md §13)."""
    endpoint = api_endpoint(ctx, username)
    scheme, rest = endpoint.split("://", 1)
    return f"{scheme}://{token}@{rest}"


def outcome(ctx: CallContext, req: AccessRequest) -> dict[str, Any]:
    """What the app learns: the status, and the token once accepted."""
    if req.status == ACCEPTED and req.username and req.token_id:
        return {
            "status": ACCEPTED,
            "username": req.username,
            "token": req.token_id,
            "apiEndpoint": app_endpoint(ctx, req.username, req.token_id),
        }
    if req.status == REFUSED:
        return {"status": REFUSED, "reasonId": req.reason_id, "message": req.message}
    return {"status": PENDING, "pollRateMs": ctx.settings.access_poll_ms}


@method(
    "access.poll",
    KeyParams,
    auth=Auth.NONE,
    user_scoped=False,
    errors=("UNKNOWN_ACCESS_REQUEST", "TOO_MANY_REQUESTS"),
)
async def poll(ctx: CallContext, p: KeyParams) -> dict[str, Any]:
    """The access request's status, polled by the app (a browser gets the consent page).

    ``GET /access/{key}`` as JSON: ``{status: "NEED_SIGNIN"}``
    until the user decides, then ``{status: "ACCEPTED", username, token, apiEndpoint}`` or
    ``{status: "REFUSED", reasonId, message}``; 404 UNKNOWN_ACCESS_REQUEST once expired.
    Polls of one request closer than half ``pollRateMs`` apart answer 429."""
    min_interval = ctx.settings.access_poll_ms / 2000
    req, wait = await ctx.storage.access_requests.poll(p.key, time.time(), min_interval)
    if req is None:
        raise errors.UnknownAccessRequest("unknown or expired access request")
    if wait > 0:
        raise too_many("polls of this access request", wait)
    return outcome(ctx, req)


# -- access.review / accept / refuse (the user's side) ---------------------------------------


async def live_request(ctx: CallContext, key: str, conn: Any = None) -> AccessRequest:
    """The live request, unless another user decided it (then it is unknown to this one)."""
    req = await ctx.storage.access_requests.get(key, time.time(), conn, for_update=conn is not None)
    if req is None or (req.user_id is not None and req.user_id != ctx.user_id):
        raise errors.UnknownAccessRequest("unknown or expired access request")
    return req


@dataclass
class Plan:
    """What accepting a request does in the user's account: what each permission reaches,
    and what is created first."""

    items: list[dict[str, Any]] = field(default_factory=list)
    channels: list[tuple[str, str]] = field(default_factory=list)  # (id, name) to create
    folders: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    # (channel, id, name, parent) to create, parents first
    problems: list[str] = field(default_factory=list)


async def make_plan(ctx: CallContext, perms: list[dict[str, Any]], conn: Any = None) -> Plan:
    """Each requested permission with what it names: existing (with its name), created from
    its ``defaultName``, or missing (granted anyway: it reaches nothing until it exists)."""
    plan = Plan()
    channels = {c.id: c for c in await ctx.storage.channels.list_all(ctx.user_id, "all")}
    for perm in perms:
        channel_id = perm["channelId"]
        item: dict[str, Any] = {"channelId": channel_id, "level": perm["level"]}
        channel = channels.get(channel_id)
        if channel_id == "*":
            item["state"] = "all"
        elif channel is not None:
            item.update(state="exists", name=channel.name, trashed=channel.trashed)
        elif perm.get("defaultName"):
            item.update(state="created", name=perm["defaultName"])
            if any(c.name == perm["defaultName"] for c in channels.values()) or any(
                name == perm["defaultName"] for _, name in plan.channels
            ):
                plan.problems.append(f"a channel named {perm['defaultName']!r} exists already")
            if all(cid != channel_id for cid, _ in plan.channels):
                plan.channels.append((channel_id, perm["defaultName"]))
        else:
            item["state"] = "missing"
        folder_perms = perm.get("folderPermissions")
        if folder_perms is not None:
            tree = FolderTree(())
            if channel is not None:
                tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, channel_id, conn))
            planned = {fid for ch, fid, _, _ in plan.folders if ch == channel_id}
            item["folderPermissions"] = []
            for grant in folder_perms:
                folder_id = grant.get("folderId")
                sub: dict[str, Any] = {"folderId": folder_id, "level": grant["level"]}
                found = tree.get(folder_id) if folder_id is not None else None
                if folder_id is None:
                    sub["state"] = "no-folder"
                elif found is not None:
                    sub.update(state="exists", name=found.name)
                elif folder_id in planned:
                    sub.update(state="created", name=grant.get("defaultName"))
                elif grant.get("defaultName"):
                    parent = grant.get("parentId")
                    if parent is not None and tree.get(parent) is None and parent not in planned:
                        plan.problems.append(
                            f"folder {folder_id!r}: its parent {parent!r} does not exist"
                        )
                    sub.update(state="created", name=grant["defaultName"], parentId=parent)
                    plan.folders.append((channel_id, folder_id, grant["defaultName"], parent))
                    planned.add(folder_id)
                    if channel is None and item["state"] != "created":
                        plan.problems.append(
                            f"folder {folder_id!r}: its channel {channel_id!r} does not exist"
                        )
                else:
                    sub["state"] = "missing"
                item["folderPermissions"].append(sub)
        plan.items.append(item)
    return plan


@method(
    "access.review",
    KeyParams,
    auth=Auth.SESSION,
    errors=("UNKNOWN_ACCESS_REQUEST",),
)
async def review(ctx: CallContext, p: KeyParams) -> dict[str, Any]:
    """What accepting an access request would do (the consent page shows it).

    The request (app id, device name, returnURL, permissions), each permission with what
    it names in this account (``state``: exists, created from its defaultName, missing),
    and the app's current token (``matchingToken`` reused, or ``mismatchingToken`` whose permissions
    would be replaced; without its secret). ``problems`` lists what would make it fail."""
    req = await live_request(ctx, p.key)
    assert ctx.user is not None
    answer: dict[str, Any] = {**req.describe(), "username": ctx.user.username}
    if req.status != PENDING:
        return answer
    plan = await make_plan(ctx, req.permissions)
    perms = granted_from_stored(req.permissions)
    token, matches = await check_app(ctx, req.app_id, perms)
    other = await ctx.storage.tokens.by_name(ctx.user_id, req.app_id)
    if other is not None and other.type != "app":
        plan.problems.append(f"a {other.type} token is already named {req.app_id!r}")
    if token is not None:
        answer["matchingToken" if matches else "mismatchingToken"] = token.to_api(secret=False)
    answer.update(permissions=plan.items, problems=plan.problems)
    return answer


def granted_from_stored(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return granted([RequestedPermission.model_validate(perm) for perm in stored])


def return_location(ctx: CallContext, req: AccessRequest) -> str | None:
    """Where the browser goes after the decision: the returnURL with ``status``, ``key``
    and (accepted) ``apiEndpoint`` added to its query."""
    if req.return_url is None or req.status == PENDING:
        return None
    parts = urlsplit(req.return_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if k not in ("status", "key", "apiEndpoint")]
    query += [("status", req.status), ("key", req.key)]
    if req.status == ACCEPTED and req.username and req.token_id:
        query.append(("apiEndpoint", app_endpoint(ctx, req.username, req.token_id)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def decided(req: AccessRequest) -> errors.ApiError:
    return errors.InvalidOperation(
        "this access request was answered already", {"status": req.status}
    )


@method(
    "access.accept",
    KeyParams,
    auth=Auth.SESSION,
    errors=("UNKNOWN_ACCESS_REQUEST", "INVALID_OPERATION", "ITEM_NAME_ALREADY_EXISTS"),
)
async def accept(ctx: CallContext, p: KeyParams) -> dict[str, Any]:
    """Accept an access request: the app gets its token.

    Creates the missing channels and folders named with a ``defaultName``, then the app
    token (or reuses the app's token when its permissions match; replaces them otherwise),
    all in one transaction. ``{status, returnURL}``: the
    app collects the token by polling; the browser goes back to the app through
    ``GET /access/{key}/return`` (the answer holds no secret)."""
    assert ctx.user is not None
    storage, by = ctx.storage, ctx.writer
    now = time.time()
    async with storage.transaction() as conn:
        req = await live_request(ctx, p.key, conn)
        if req.status != PENDING:
            raise decided(req)
        plan = await make_plan(ctx, req.permissions, conn)
        if plan.problems:
            raise errors.InvalidOperation(
                "the request cannot be accepted: " + "; ".join(plan.problems),
                {"problems": plan.problems},
            )
        for channel_id, name in plan.channels:
            try:
                await storage.channels.create(
                    ctx.user_id, channel_id, name, True, {}, now, by, conn
                )
            except Conflict:
                raise errors.ItemNameAlreadyExists(f"a channel named {name!r} exists") from None
            ctx.notify(CHANNELS_CHANGED, channel_id)
        for channel_id, folder_id, name, parent in plan.folders:
            await create_folder(ctx, conn, channel_id, folder_id, name, parent, now)
        perms = granted_from_stored(req.permissions)
        token, matches = await check_app(ctx, req.app_id, perms, conn)
        if token is None:
            try:
                token = await storage.tokens.create(
                    ctx.user_id,
                    new_secret(),
                    req.app_id,
                    "app",
                    perms,
                    now,
                    by,
                    conn,
                    device_name=req.device_name,
                )
            except Conflict:
                raise errors.ItemNameAlreadyExists(
                    f"a token is already named {req.app_id!r}"
                ) from None
        elif not matches or req.device_name not in (None, token.device_name):
            check_grantable(ctx.require_access(), perms)
            await storage.tokens.update(
                ctx.user_id,
                token.id,
                None,
                None if matches else perms,
                now,
                by,
                conn,
                device_name=req.device_name,
            )
            if not matches:
                ctx.revoke(token.id)  # its sockets hold the old permissions
        await storage.access_requests.decide(
            conn, p.key, ACCEPTED, ctx.user_id, ctx.user.username, token_id=token.id
        )
    return {"status": ACCEPTED, "returnURL": req.return_url}


async def create_folder(
    ctx: CallContext,
    conn: Any,
    channel_id: str,
    folder_id: str,
    name: str,
    parent: str | None,
    now: float,
) -> None:
    """A folder a request names with a defaultName, under the channel's lock (as
    folders.create), within the folder limits."""
    channel = await ctx.storage.channels.get(ctx.user_id, channel_id, conn, for_update=True)
    if channel is None:
        raise errors.UnknownChannel(f"unknown channel {channel_id!r}")
    tree = FolderTree(await ctx.storage.folders.list_all(ctx.user_id, channel_id, conn))
    depth = (tree.depth.get(parent, 1) if parent is not None else 0) + 1
    if depth > ctx.settings.max_folder_depth or (
        len(tree.by_id) + 1 > ctx.settings.max_folders_per_channel
    ):
        raise errors.InvalidOperation(f"folder {folder_id!r} would exceed the folder limits")
    folder = Folder(
        folder_id, channel_id, name, parent, False, {}, False, now, now, ctx.writer, ctx.writer
    )
    try:
        await ctx.storage.folders.create(conn, ctx.user_id, folder)
    except Conflict:
        raise errors.ItemNameAlreadyExists(
            f"folder {name!r} exists already where it would be created"
        ) from None
    ctx.notify(FOLDERS_CHANGED, channel_id)


@method(
    "access.refuse",
    KeyParams,
    auth=Auth.SESSION,
    errors=("UNKNOWN_ACCESS_REQUEST", "INVALID_OPERATION"),
)
async def refuse(ctx: CallContext, p: KeyParams) -> dict[str, Any]:
    """Refuse an access request.

    The app's poll answers ``{status: "REFUSED", reasonId: "REFUSED_BY_USER", message}``. ``{status, returnURL}`` as accept."""
    assert ctx.user is not None
    async with ctx.storage.transaction() as conn:
        req = await live_request(ctx, p.key, conn)
        if req.status != PENDING:
            raise decided(req)
        await ctx.storage.access_requests.decide(
            conn,
            p.key,
            REFUSED,
            ctx.user_id,
            ctx.user.username,
            reason_id="REFUSED_BY_USER",
            message="the user refused to give access",
        )
    return {"status": REFUSED, "returnURL": req.return_url}
