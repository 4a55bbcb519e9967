"""The permission matrix (API.md §2, §7, §9-§11): every method x credential kind x item in or
out of the credential's scope → allowed, or denied with the contract's status and error id.

One module-wide world (two users, their channels, folders and credentials) serves every case;
each case creates its own target item first (with the owner's personal token), so a write
allowed in one case never changes what another case sees. Calls are described
transport-free as ``(method id, params)``: the HTTP request is derived from the ROUTES table
(the inverse of the transport's dispatch) and the same call is emitted over Socket.IO.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pryvrt.app import create_app
from pryvrt.auth.permissions import Level
from pryvrt.config import Settings
from pryvrt.methods.params import ChannelParams
from pryvrt.methods.registry import REGISTRY, Auth
from pryvrt.methods.scope import Reach
from pryvrt.transports.http import ROUTES, SERVICE_ROUTES, Route
from tests.conftest import Api
from tests.sockets import Socket, connect, refusal
from tests.test_attachments import multipart

in_module_loop = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "matrix-pw"

# -- the table ------------------------------------------------------------------------------
#
# Columns: the credential kinds. Each cell holds two codes: the call on an item IN the
# credential's scope, then on an item OUT of it. Codes: Y allowed (2xx), F 403 FORBIDDEN,
# I 401 INVALID_TOKEN.
#
# Where the items are (see ``positions``):
# - in scope, for every column: the owner's channel A, folder F1 (a child of F).
# - out of scope: channel-level tokens (granted on A): channel B. Folder-level tokens (granted
#   on folder F of A) and the token with no permission on A (it reads channel B only): the
#   sibling folder G of A. Sessions, personal tokens and `*` tokens reach all of the owner's
#   data, so their out-of-scope item is the same item of ANOTHER user (a token of another
#   user is unknown there: 401). Methods about the account (tokens, bookmarks, channels.get,
#   admin.*) address the user only: "out" is another user's account for those columns, the
#   owner's own for the others.
# - "other user" is a personal token of the second user; "deleted token" a channel-manage
#   token deleted before use; "expired session" a session past its idle time.
#
# Decisions where the contract leaves room (a careful user's reading):
# - A folder-scoped token may call channel-wide reads (events.get, events.getRunning,
#   folders.get without a parent): allowed, and the answer is filtered to its folders (the
#   list tests below check the filtering). Naming an out-of-scope folder (onlyFolders,
#   parentId) is addressing an out-of-scope item: 403.
# - Root-level folders belong to the channel as a whole: creating or moving a folder to the
#   root needs manage on the whole channel (not exercised by the table: its folder writes
#   happen below F1).
# - channels.update needs manage on the whole channel (`*` manage counts); a folder-level
#   manage grant does not reach the channel itself.
# - Registration and login need no credential: whatever credential comes along, they behave
#   the same (Y everywhere).
# - `batch` answers 200 when its credential is valid; its cell is the outcome of the call
#   inside it (an events.create at the position), which obeys the same rules.
#
# The expected cells are derived from API.md §7 (read < contribute < manage; folder grants
# reach descendants; lists leave out, addressing refuses) and §2 (unknown / other user's /
# missing credential → 401 INVALID_TOKEN; too low → 403 FORBIDDEN), not from the code.

COLUMNS = (
    "session",
    "personal",
    "channel-read",
    "channel-contribute",
    "channel-manage",
    "folder-read",
    "folder-contribute",
    "folder-manage",
    "all-read",
    "all-manage",
    "no-permission",
    "other-user",
    "no-credential",
    "deleted-token",
    "expired-session",
)

#                         sess pers chR  chC  chM  fdR  fdC  fdM  *R   *M   noP  othr none del  exp
ANYONE = "                YY   YY   YY   YY   YY   YY   YY   YY   YY   YY   YY   YY   YY   YY   YY"
SESSION_ONLY = "          YI   FI   FF   FF   FF   FF   FF   FF   FI   FI   FF   II   II   II   II"
PERSONAL_ONLY = "         YI   YI   FF   FF   FF   FF   FF   FF   FI   FI   FF   II   II   II   II"
ANY_TOKEN = "             YI   YI   YY   YY   YY   YY   YY   YY   YI   YI   YY   II   II   II   II"
READ = "                  YI   YI   YF   YF   YF   YF   YF   YF   YI   YI   FF   II   II   II   II"
READ_CHANNEL_WIDE = "     YI   YI   YF   YF   YF   YY   YY   YY   YI   YI   FF   II   II   II   II"
CONTRIBUTE = "            YI   YI   FF   YF   YF   FF   YF   YF   FI   YI   FF   II   II   II   II"
MANAGE = "                YI   YI   FF   FF   YF   FF   FF   YF   FI   YI   FF   II   II   II   II"
MANAGE_CHANNEL = "        YI   YI   FF   FF   YF   FF   FF   FF   FI   YI   FF   II   II   II   II"

MATRIX: dict[str, str] = {
    "users.create": ANYONE,
    "admin.login": ANYONE,
    "admin.logout": SESSION_ONLY,
    "admin.getUserInfo": SESSION_ONLY,
    "admin.updateUserInfo": SESSION_ONLY,
    "admin.changePassword": SESSION_ONLY,
    "bookmarks.get": SESSION_ONLY,
    "bookmarks.create": SESSION_ONLY,
    "bookmarks.update": SESSION_ONLY,
    "bookmarks.delete": SESSION_ONLY,
    "shares.get": SESSION_ONLY,
    "shares.accept": SESSION_ONLY,
    "shares.decline": SESSION_ONLY,
    "tokens.getOrCreatePersonal": SESSION_ONLY,
    "tokens.get": PERSONAL_ONLY,
    "tokens.getAccessInfo": ANY_TOKEN,
    "tokens.create": PERSONAL_ONLY,
    "tokens.update": PERSONAL_ONLY,
    "tokens.delete": PERSONAL_ONLY,
    "channels.create": PERSONAL_ONLY,
    "channels.delete": PERSONAL_ONLY,
    "channels.get": ANY_TOKEN,
    "channels.update": MANAGE_CHANNEL,
    "folders.get": READ,
    "folders.create": MANAGE,
    "folders.update": MANAGE,
    "folders.move": MANAGE,
    "folders.delete": MANAGE,
    "events.get": READ,
    "events.getRunning": READ_CHANNEL_WIDE,
    "events.getOne": READ,
    "events.getAttachment": READ,
    "events.create": CONTRIBUTE,
    "events.start": CONTRIBUTE,
    "events.stop": CONTRIBUTE,
    "events.update": CONTRIBUTE,
    "events.delete": CONTRIBUTE,
    "events.addAttachments": CONTRIBUTE,
    "events.deleteAttachment": CONTRIBUTE,
    "events.batch": CONTRIBUTE,
    "batch": CONTRIBUTE,
    # Series (API.md §15): points of a series event in the position's folder.
    "events.addSeriesPoints": CONTRIBUTE,
    "events.getSeries": READ,
    "series.batch": CONTRIBUTE,
    # App access requests (API.md §13; app tokens: tests/test_permission_matrix_apps.py).
    "tokens.checkApp": SESSION_ONLY,
    "access.request": ANYONE,
    "access.poll": ANYONE,
    "access.review": SESSION_ONLY,
    "access.accept": SESSION_ONLY,
    "access.refuse": SESSION_ONLY,
}

CODES = {"Y": None, "F": (403, "FORBIDDEN"), "I": (401, "INVALID_TOKEN")}
SCOPES = ("in", "out")


def expected(method_id: str, column: str, scope: str) -> str:
    cells = MATRIX[method_id].split()
    assert len(cells) == len(COLUMNS), f"{method_id}: {len(cells)} cells"
    return cells[COLUMNS.index(column)][SCOPES.index(scope)]


REACH_ALL = ("session", "personal", "all-read", "all-manage")
CASES = [(m, c, s) for m in MATRIX for c in COLUMNS for s in SCOPES]


def test_every_registered_method_is_in_the_matrix() -> None:
    assert set(MATRIX) == set(REGISTRY), "add the new method to MATRIX (and to SPECS)"
    assert set(SPECS) == set(REGISTRY)
    for method_id in MATRIX:
        for column in COLUMNS:
            for scope in SCOPES:
                assert expected(method_id, column, scope) in CODES


def test_every_registered_method_has_an_http_route() -> None:
    routed = {r.method_id for r in (*ROUTES, *SERVICE_ROUTES)}
    assert set(REGISTRY) <= routed


# -- the world ------------------------------------------------------------------------------


@dataclass
class World:
    """One user, a session and a personal token of theirs, channel A (folders F > F1, and
    G) and channel B (folder FB); both channels let periods overlap (the period rules are
    another test's subject)."""

    username: str
    session: str
    personal: str
    a: str
    b: str
    f: str
    f1: str
    g: str
    fb: str


@dataclass(frozen=True)
class Position:
    world: World
    channel: str
    folder: str


@dataclass
class Env:
    api: Api
    owner: World
    other: World
    credentials: dict[str, str | None]
    sockets: SocketPool
    settings: Settings
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def positions(self, column: str) -> dict[str, Position]:
        inside = Position(self.owner, self.owner.a, self.owner.f1)
        if column in REACH_ALL:
            outside = Position(self.other, self.other.a, self.other.f1)
        elif column.startswith("channel-"):
            outside = Position(self.owner, self.owner.b, self.owner.fb)
        else:
            outside = Position(self.owner, self.owner.a, self.owner.g)
        return {"in": inside, "out": outside}


async def build_world(api: Api) -> World:
    username = await api.register(password=PASSWORD)
    session = await api.login(username)
    personal = await api.personal_token(username, session)
    a = await api.channel(username, personal, enforceNoEventsOverlap=False)
    b = await api.channel(username, personal, enforceNoEventsOverlap=False)

    async def folder(channel: str, name: str, parent: str | None = None) -> str:
        body = {"name": name, "parentId": parent}
        reply = await api.post(f"/{username}/{channel}/folders", body, auth=personal)
        assert reply.status == 201, reply
        return str(reply.body["id"])

    f = await folder(a, "F")
    f1 = await folder(a, "F1", f)
    g = await folder(a, "G")
    fb = await folder(b, "FB")
    return World(username, session, personal, a, b, f, f1, g, fb)


async def build_credentials(
    api: Api, owner: World, other: World, expired: str | None
) -> dict[str, Any]:
    """A credential of each kind of COLUMNS (``expired``: a dead session of the owner)."""

    def token(perms: list[dict[str, Any]]) -> Awaitable[str]:
        return api.shared_token(owner.username, owner.personal, perms)

    def on_a(level: str) -> list[dict[str, Any]]:
        return [{"channelId": owner.a, "level": level}]

    def on_f(level: str) -> list[dict[str, Any]]:
        folders = [{"folderId": owner.f, "level": level}]
        return [{"channelId": owner.a, "level": "read", "folderPermissions": folders}]

    deleted = await token(on_a("manage"))
    reply = await api.delete(f"/{owner.username}/tokens/{deleted}", auth=owner.personal)
    assert reply.status == 200, reply
    return {
        "session": owner.session,
        "personal": owner.personal,
        "channel-read": await token(on_a("read")),
        "channel-contribute": await token(on_a("contribute")),
        "channel-manage": await token(on_a("manage")),
        "folder-read": await token(on_f("read")),
        "folder-contribute": await token(on_f("contribute")),
        "folder-manage": await token(on_f("manage")),
        "all-read": await token([{"channelId": "*", "level": "read"}]),
        "all-manage": await token([{"channelId": "*", "level": "manage"}]),
        "no-permission": await token([{"channelId": owner.b, "level": "read"}]),
        "other-user": other.personal,
        "no-credential": None,
        "deleted-token": deleted,
        "expired-session": expired,
    }


async def expired_session(settings: Settings, username: str) -> str:
    """A real session of ``username``, opened on a server whose sessions last 0.2 s."""
    async with TestClient(TestServer(create_app(replace(settings, session_ttl=0.2)))) as client:
        session = await Api(client, {username: PASSWORD}).login(username)
    await asyncio.sleep(0.3)
    return session


@pytest.fixture(scope="module")
def matrix_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Credentials are checked again on every socket call (no 5 s grace)."""
    return Settings(
        database_url=database_url,
        data_dir=Path(tmp_path_factory.mktemp("matrix")),
        password_hash_fast=True,
        socket_recheck_seconds=0.0,
        # Hundreds of cases present a wrong credential on purpose, from one address.
        token_max_failures_per_ip=1_000_000,
        access_requests_per_minute=1_000_000,  # every access.* case opens a request
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(matrix_settings: Settings) -> AsyncIterator[Env]:
    settings = matrix_settings
    async with TestClient(TestServer(create_app(settings))) as client:
        api = Api(client)
        owner = await build_world(api)
        other = await build_world(api)
        expired = await expired_session(settings, owner.username)
        credentials = await build_credentials(api, owner, other, expired)
        async with contextlib.AsyncExitStack() as stack:
            sockets = SocketPool(str(client.make_url("/")), stack)
            yield Env(api, owner, other, credentials, sockets, settings)


# -- one call per case ------------------------------------------------------------------------


@dataclass
class Call:
    method_id: str
    params: dict[str, Any]
    username: str  # whose API: the path's first segment, the Socket.IO namespace
    files: list[tuple[str, bytes, str]] | None = None


Spec = Callable[[Env, Position, str], Awaitable[Call]]


async def new_event(env: Env, at: Position, with_file: bool = False, **fields: Any) -> str:
    """An event in the position's folder, recorded by its user's personal token."""
    w = at.world
    body = {"folderId": at.folder, "time": time.time() - 60, **fields}
    path = f"/{w.username}/{at.channel}/events"
    if with_file:
        form = multipart(body, [("note.txt", b"hello", "text/plain")])
        reply = await env.api.post(path, auth=w.personal, data=form)
    else:
        reply = await env.api.post(path, body, auth=w.personal)
    assert reply.status == 201, reply
    return str(reply.body["id"])


async def new_folder(env: Env, at: Position) -> str:
    w = at.world
    body = {"name": env.fresh("x"), "parentId": at.folder}
    reply = await env.api.post(f"/{w.username}/{at.channel}/folders", body, auth=w.personal)
    assert reply.status == 201, reply
    return str(reply.body["id"])


async def new_token(env: Env, at: Position) -> str:
    perms = [{"channelId": at.world.a, "level": "read"}]
    return await env.api.shared_token(at.world.username, at.world.personal, perms)


async def new_bookmark(env: Env, at: Position) -> str:
    w = at.world
    body = {"name": env.fresh("bm"), "url": "https://x.example/", "accessToken": "t"}
    reply = await env.api.post(f"/{w.username}/bookmarks", body, auth=w.session)
    assert reply.status == 201, reply
    return str(reply.body["id"])


async def new_share(env: Env, at: Position) -> str:
    """A share delivered to the position's user by the other user (API.md §14)."""
    w = at.world
    sender = env.other if w is env.owner else env.owner
    body = {
        "name": env.fresh("sh"),
        "permissions": [{"channelId": sender.a, "level": "read"}],
        "shareWith": w.username,
    }
    reply = await env.api.post(f"/{sender.username}/tokens", body, auth=sender.personal)
    assert reply.status == 201, reply
    shares = await env.api.get(f"/{w.username}/shares", auth=w.session)
    return str(next(s["id"] for s in shares.body if s["name"] == body["name"]))


def on_channel(at: Position, method_id: str, **params: Any) -> Call:
    return Call(method_id, {"channelId": at.channel, **params}, at.world.username)


def on_user(at: Position, method_id: str, **params: Any) -> Call:
    return Call(method_id, params, at.world.username)


async def channels_delete(env: Env, at: Position, column: str) -> Call:
    # Every channel is in the scope of sessions and personal tokens: they delete a fresh one
    # (not the shared channel A); tokens aim at channel A, which their grants cover.
    channel = at.channel
    if column in ("session", "personal") and at.world is env.owner:
        channel = await env.api.channel(at.world.username, at.world.personal)
    return Call("channels.delete", {"channelId": channel}, at.world.username)


async def folders_move(env: Env, at: Position, column: str) -> Call:
    moved, target = await new_folder(env, at), await new_folder(env, at)
    return on_channel(at, "folders.move", id=moved, parentId=target)


async def events_stop(env: Env, at: Position, column: str) -> Call:
    w = at.world
    path = f"/{w.username}/{at.channel}/events/start"
    reply = await env.api.post(path, {"folderId": at.folder}, auth=w.personal)
    assert reply.status == 201, reply
    return on_channel(at, "events.stop", id=reply.body["id"])


async def add_attachments(env: Env, at: Position, column: str) -> Call:
    call = on_channel(at, "events.addAttachments", id=await new_event(env, at))
    call.files = [("more.txt", b"more", "text/plain")]
    return call


def now() -> float:
    return time.time() - 30


SPECS: dict[str, Spec] = {
    "users.create": lambda env, at, c: _ready(
        on_user(at, "users.create", username=env.fresh("mxuser"), password=PASSWORD)
    ),
    "admin.login": lambda env, at, c: _ready(
        on_user(at, "admin.login", userName=at.world.username, password=PASSWORD)
    ),
    "admin.logout": lambda env, at, c: _ready(on_user(at, "admin.logout")),
    "admin.getUserInfo": lambda env, at, c: _ready(on_user(at, "admin.getUserInfo")),
    "admin.updateUserInfo": lambda env, at, c: _ready(
        on_user(at, "admin.updateUserInfo", language="en")
    ),
    "admin.changePassword": lambda env, at, c: _ready(
        on_user(at, "admin.changePassword", oldPassword=PASSWORD, newPassword=PASSWORD)
    ),
    "bookmarks.get": lambda env, at, c: _ready(on_user(at, "bookmarks.get")),
    "bookmarks.create": lambda env, at, c: _ready(
        on_user(
            at,
            "bookmarks.create",
            name=env.fresh("bm"),
            url="https://x.example/",
            accessToken="t",
        )
    ),
    "bookmarks.update": lambda env, at, c: _then(
        new_bookmark(env, at), lambda i: on_user(at, "bookmarks.update", id=i, name=env.fresh("b"))
    ),
    "bookmarks.delete": lambda env, at, c: _then(
        new_bookmark(env, at), lambda i: on_user(at, "bookmarks.delete", id=i)
    ),
    "shares.get": lambda env, at, c: _ready(on_user(at, "shares.get")),
    "shares.accept": lambda env, at, c: _then(
        new_share(env, at), lambda i: on_user(at, "shares.accept", id=i, name=env.fresh("bm"))
    ),
    "shares.decline": lambda env, at, c: _then(
        new_share(env, at), lambda i: on_user(at, "shares.decline", id=i)
    ),
    "tokens.getOrCreatePersonal": lambda env, at, c: _ready(
        on_user(at, "tokens.getOrCreatePersonal", name=env.fresh("app"))
    ),
    "tokens.get": lambda env, at, c: _ready(on_user(at, "tokens.get")),
    "tokens.getAccessInfo": lambda env, at, c: _ready(on_user(at, "tokens.getAccessInfo")),
    "tokens.create": lambda env, at, c: _ready(
        on_user(
            at,
            "tokens.create",
            name=env.fresh("tk"),
            permissions=[{"channelId": at.world.a, "level": "read"}],
        )
    ),
    "tokens.update": lambda env, at, c: _then(
        new_token(env, at), lambda i: on_user(at, "tokens.update", id=i, name=env.fresh("tk"))
    ),
    "tokens.delete": lambda env, at, c: _then(
        new_token(env, at), lambda i: on_user(at, "tokens.delete", id=i)
    ),
    "channels.get": lambda env, at, c: _ready(on_user(at, "channels.get")),
    "channels.create": lambda env, at, c: _ready(
        on_user(at, "channels.create", name=env.fresh("ch"))
    ),
    "channels.update": lambda env, at, c: _ready(
        on_channel(at, "channels.update", clientData={"n": env.fresh("")})
    ),
    "channels.delete": channels_delete,
    "folders.get": lambda env, at, c: _ready(on_channel(at, "folders.get", parentId=at.folder)),
    "folders.create": lambda env, at, c: _ready(
        on_channel(at, "folders.create", name=env.fresh("x"), parentId=at.folder)
    ),
    "folders.update": lambda env, at, c: _then(
        new_folder(env, at),
        lambda i: on_channel(at, "folders.update", id=i, name=env.fresh("y")),
    ),
    "folders.move": folders_move,
    "folders.delete": lambda env, at, c: _then(
        new_folder(env, at), lambda i: on_channel(at, "folders.delete", id=i)
    ),
    "events.get": lambda env, at, c: _ready(on_channel(at, "events.get", onlyFolders=[at.folder])),
    "events.getRunning": lambda env, at, c: _ready(on_channel(at, "events.getRunning")),
    "events.getOne": lambda env, at, c: _then(
        new_event(env, at), lambda i: on_channel(at, "events.getOne", id=i)
    ),
    "events.getAttachment": lambda env, at, c: _then(
        new_event(env, at, with_file=True),
        lambda i: on_channel(at, "events.getAttachment", id=i, fileName="note.txt"),
    ),
    "events.create": lambda env, at, c: _ready(
        on_channel(at, "events.create", folderId=at.folder, time=now())
    ),
    "events.start": lambda env, at, c: _ready(on_channel(at, "events.start", folderId=at.folder)),
    "events.stop": events_stop,
    "events.update": lambda env, at, c: _then(
        new_event(env, at), lambda i: on_channel(at, "events.update", id=i, tags=["t"])
    ),
    "events.delete": lambda env, at, c: _then(
        new_event(env, at), lambda i: on_channel(at, "events.delete", id=i)
    ),
    "events.addAttachments": add_attachments,
    "events.deleteAttachment": lambda env, at, c: _then(
        new_event(env, at, with_file=True),
        lambda i: on_channel(at, "events.deleteAttachment", id=i, fileName="note.txt"),
    ),
    "events.batch": lambda env, at, c: _ready(
        on_channel(
            at, "events.batch", events=[{"clientId": "c", "folderId": at.folder, "time": now()}]
        )
    ),
    "batch": lambda env, at, c: _ready(
        on_user(
            at,
            "batch",
            calls=[
                {
                    "method": "events.create",
                    "params": {"channelId": at.channel, "folderId": at.folder, "time": now()},
                }
            ],
        )
    ),
    "tokens.checkApp": lambda env, at, c: _ready(
        on_user(at, "tokens.checkApp", requestingAppId="mx-app", requestedPermissions=read_a(at))
    ),
    "access.request": lambda env, at, c: _ready(
        on_user(at, "access.request", requestingAppId="mx-app", requestedPermissions=read_a(at))
    ),
    "access.poll": lambda env, at, c: _then(
        new_access_request(env, at), lambda k: on_user(at, "access.poll", key=k)
    ),
    "access.review": lambda env, at, c: _then(
        new_access_request(env, at), lambda k: on_user(at, "access.review", key=k)
    ),
    "access.accept": lambda env, at, c: _then(
        new_access_request(env, at), lambda k: on_user(at, "access.accept", key=k)
    ),
    "access.refuse": lambda env, at, c: _then(
        new_access_request(env, at), lambda k: on_user(at, "access.refuse", key=k)
    ),
}


SERIES = {"type": "series:mass/kg"}
POINTS = {"fields": ["deltaTime", "value"], "points": [[0.0, 1.0]]}
SPECS |= {
    "events.addSeriesPoints": lambda env, at, c: _then(
        new_event(env, at, **SERIES),
        lambda i: on_channel(at, "events.addSeriesPoints", id=i, **POINTS),
    ),
    "events.getSeries": lambda env, at, c: _then(
        new_event(env, at, **SERIES), lambda i: on_channel(at, "events.getSeries", id=i)
    ),
    "series.batch": lambda env, at, c: _then(
        new_event(env, at, **SERIES),
        lambda i: on_user(
            at, "series.batch", data=[{"channelId": at.channel, "eventId": i, "data": POINTS}]
        ),
    ),
}


def read_a(at: Position) -> list[dict[str, Any]]:
    return [{"channelId": at.world.a, "level": "read"}]


async def new_access_request(env: Env, at: Position) -> str:
    """A fresh app access request (no credential needed), for the owner's channel A."""
    body = {"requestingAppId": env.fresh("mx-app-"), "requestedPermissions": read_a(at)}
    reply = await env.api.post("/access", body)
    assert reply.status == 201, reply
    return str(reply.body["key"])


async def _ready(call: Call) -> Call:
    return call


async def _then(item: Awaitable[str], build: Callable[[str], Call]) -> Call:
    return build(await item)


# -- transports -------------------------------------------------------------------------------


def route_for(call: Call) -> Route:
    """The route of the method taking the most of the call's params from its path."""
    best: tuple[int, Route] | None = None
    for route in (*ROUTES, *SERVICE_ROUTES):
        if route.method_id != call.method_id:
            continue
        names = [p[1:-1] for p in route.path.split("/") if p.startswith("{")]
        if all(isinstance(call.params.get(n), str) for n in names):
            if best is None or len(names) > best[0]:
                best = (len(names), route)
    assert best is not None, f"no route for {call.method_id} with {sorted(call.params)}"
    return best[1]


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def over_http(api: Api, call: Call, credential: str | None) -> tuple[int, Any]:
    """The call as the HTTP request a client would send (path, query, JSON or multipart)."""
    route = route_for(call)
    rest = dict(call.params)
    path = route.path
    for name in [p[1:-1] for p in route.path.split("/") if p.startswith("{")]:
        path = path.replace("{" + name + "}", rest.pop(name))
    if route not in SERVICE_ROUTES:
        path = f"/{call.username}" + (path if path != "/" else "/")
    kwargs: dict[str, Any] = {}
    if call.files is not None:
        kwargs["data"] = multipart(None, call.files)
    elif route.verb == "GET":
        kwargs["params"] = [
            (k, query_value(v))
            for k, values in rest.items()
            for v in (values if isinstance(values, list) else [values])
        ]
    elif route.body_key is not None:
        kwargs["json"] = rest.pop(route.body_key)
    elif rest:
        kwargs["json"] = rest
    reply = await api.request(route.verb, path, auth=credential, **kwargs)
    return reply.status, reply.body


def outcome_of_http(call: Call, status: int, body: Any) -> str:
    """``Y``, a code of CODES, or a description of anything else (which fails the case)."""
    if call.method_id == "batch" and status == 200:
        inner = body[0]
        if "result" in inner:
            return "Y"
        check_declared(call.params["calls"][0]["method"], inner["error"])
        return code_of(None, inner["error"])
    if 200 <= status < 300:
        return "Y"
    check_declared(call.method_id, body)
    return code_of(status, body)


def check_declared(method_id: str, error: Any) -> None:
    """Every error a method answers with is one it declares (``Method.errors``: its
    handler's, plus those its authentication and declared need imply)."""
    error_id = error.get("id") if isinstance(error, dict) else None
    declared = REGISTRY[method_id].errors
    assert error_id in declared, f"{method_id} answered {error_id!r}, not among {declared}"


def code_of(status: int | None, error: Any) -> str:
    error_id = error.get("id") if isinstance(error, dict) else None
    for code, denial in CODES.items():
        if denial is not None and denial[1] == error_id and status in (None, denial[0]):
            return code
    return f"{status} {error!r}"


async def outcome(env: Env, method_id: str, column: str, scope: str) -> str:
    at = env.positions(column)[scope]
    call = await SPECS[method_id](env, at, column)
    status, body = await over_http(env.api, call, env.credentials[column])
    if method_id == "admin.logout" and status == 200:
        # The session ended, as asked: open a new one for the next cases.
        env.owner.session = await env.api.login(env.owner.username)
        env.credentials["session"] = env.owner.session
    return outcome_of_http(call, status, body)


async def run_case(env: Env, method_id: str, column: str, scope: str) -> tuple[str, str]:
    return await outcome(env, method_id, column, scope), expected(method_id, column, scope)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    """Counts the cases checked; the count is printed at the end of the module."""
    counts = {"http": 0, "socket.io": 0, "lists": 0}
    yield counts
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(
                f"\npermission matrix: {counts['http']} HTTP cases and {counts['socket.io']}"
                f" Socket.IO cases (method x credential x scope), {counts['lists']} list"
                " answers checked"
            )


@in_module_loop
@pytest.mark.parametrize(("method_id", "column", "scope"), CASES)
async def test_the_credential_gets_what_the_matrix_says_over_http(
    env: Env, tally: dict[str, int], method_id: str, column: str, scope: str
) -> None:
    got, want = await run_case(env, method_id, column, scope)
    tally["http"] += 1
    assert got == want, f"{method_id} with {column} on an item {scope} of scope"


class SocketPool:
    """One Socket.IO connection per (namespace, credential), opened on first use; a refused
    connection is remembered as its connect error."""

    def __init__(self, base_url: str, stack: contextlib.AsyncExitStack) -> None:
        self.base_url = base_url
        self.stack = stack
        self.open: dict[tuple[str, str | None], Socket | dict[str, Any]] = {}

    async def get(self, username: str, credential: str | None) -> Socket | dict[str, Any]:
        key = (username, credential)
        sock = self.open.get(key)
        if isinstance(sock, Socket) and not sock.client.connected:
            sock = None  # disconnected by the server (its credential ended): connect again
        if sock is None:
            try:
                sock = await self.stack.enter_async_context(
                    connect(self.base_url, username, credential)
                )
            except Exception:
                sock = await refusal(self.base_url, username, credential)
            self.open[key] = sock
        return sock


def outcome_of_ack(call: Call, error: Any, result: Any) -> str:
    if error is not None:
        check_declared(call.method_id, error)
        return code_of(None, error)
    if call.method_id == "batch":
        inner = result[0]
        if "result" in inner:
            return "Y"
        check_declared(call.params["calls"][0]["method"], inner["error"])
        return code_of(None, inner["error"])
    return "Y"


UNKNOWN_CREDENTIALS = ("other-user", "no-credential", "deleted-token", "expired-session")
SOCKET_CASES = [case for case in CASES if REGISTRY[case[0]].socket]


@in_module_loop
@pytest.mark.parametrize(("method_id", "column", "scope"), SOCKET_CASES)
async def test_the_credential_gets_what_the_matrix_says_over_socketio(
    env: Env, tally: dict[str, int], method_id: str, column: str, scope: str
) -> None:
    at = env.positions(column)[scope]
    call = await SPECS[method_id](env, at, column)
    sock = await env.sockets.get(at.world.username, env.credentials[column])
    if isinstance(sock, Socket):
        error, result = await sock.call(method_id, call.params)
        got = outcome_of_ack(call, error, result)
    else:  # the connection was refused: its error is the outcome
        got = code_of(None, sock.get("data") if sock else None)
    if method_id == "admin.logout" and got == "Y":
        env.owner.session = await env.api.login(env.owner.username)
        env.credentials["session"] = env.owner.session
    # A socket opens only with a live credential of the namespace's user (§10); without one
    # nothing can be called, not even the methods that need no credential over HTTP.
    opens = column not in UNKNOWN_CREDENTIALS and at.world is env.owner
    want = expected(method_id, column, scope) if opens else "I"
    tally["socket.io"] += 1
    assert got == want, f"{method_id} with {column} on an item {scope} of scope, over Socket.IO"


# -- the declared level is the enforced one ------------------------------------------------
#
# Derived from each method's declaration (``Method.need``), not from the table above: a
# token holding exactly the declared level on the declared target (the whole channel for
# Reach.CHANNEL, else folder F, the parent of the case's folder F1) is never refused; one
# holding the level below it there (no permission in the channel below read) is.

DECLARING = [m.id for m in REGISTRY.values() if m.need is not None and m.auth is Auth.ACCESS]


def declared_columns(method_id: str) -> tuple[str, str]:
    """(the column holding exactly the declared level, the column one level below)."""
    need = REGISTRY[method_id].need
    assert need is not None
    kind = "channel" if need.target.reach is Reach.CHANNEL else "folder"
    below = (
        "no-permission" if need.level is Level.READ else f"{kind}-{Level(need.level - 1).api_name}"
    )
    return f"{kind}-{need.level.api_name}", below


def test_every_channel_method_declares_its_need() -> None:
    channel_methods = [m.id for m in REGISTRY.values() if issubclass(m.params, ChannelParams)]
    assert channel_methods and all(REGISTRY[m].need is not None for m in channel_methods)
    assert len(DECLARING) == len(channel_methods) - 1  # channels.delete: personal only


@in_module_loop
@pytest.mark.parametrize("method_id", DECLARING)
async def test_the_declared_level_on_the_declared_target_is_the_enforced_one(
    env: Env, method_id: str
) -> None:
    at_level, below = declared_columns(method_id)
    assert await outcome(env, method_id, at_level, "in") == "Y", f"{method_id} at {at_level}"
    assert await outcome(env, method_id, below, "in") == "F", f"{method_id} at {below}"


# -- lists never show what the credential does not cover -----------------------------------

IN_F = ("in-f", "in-f1", "in-hidden", "in-trashed-folder", "in-trashed", "run-f1", "file-f1")
OUT_OF_F = ("out-g", "out-g2", "out-none", "out-trashed", "run-g", "file-g")


@dataclass
class Listing:
    """A third user whose channel A holds events in and out of folder F's subtree, in
    every state (trashed events, a trashed and a hidden folder, running periods, files)."""

    world: World
    credentials: dict[str, str | None]
    folders_in_f: set[str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def listing(env: Env) -> Listing:
    api = env.api
    w = await build_world(api)
    expired = await expired_session(env.settings, w.username)
    credentials = await build_credentials(api, w, env.other, expired)

    async def folder(name: str, parent: str, **fields: Any) -> str:
        body = {"name": name, "parentId": parent, **fields}
        reply = await api.post(f"/{w.username}/{w.a}/folders", body, auth=w.personal)
        assert reply.status == 201, reply
        return str(reply.body["id"])

    hidden = await folder("H", w.f1, hidden=True)
    trashed = await folder("T", w.f)
    g2 = await folder("G2", w.g)
    at = {"in": Position(w, w.a, w.f1), "out": Position(w, w.a, w.g)}
    for event_id, folder_id in (
        ("in-f", w.f),
        ("in-f1", w.f1),
        ("in-hidden", hidden),
        ("in-trashed-folder", trashed),
        ("in-trashed", w.f1),
        ("out-g", w.g),
        ("out-g2", g2),
        ("out-none", None),
        ("out-trashed", w.g),
    ):
        await new_event(env, replace(at["in"], folder=folder_id), id=event_id)
    for event_id in ("in-trashed", "out-trashed"):
        reply = await api.delete(f"/{w.username}/{w.a}/events/{event_id}", auth=w.personal)
        assert reply.status == 200, reply
    reply = await api.delete(f"/{w.username}/{w.a}/folders/{trashed}", auth=w.personal)
    assert reply.status == 200, reply
    for event_id, where in (("run-f1", "in"), ("run-g", "out")):
        body = {"id": event_id, "folderId": at[where].folder}
        reply = await api.post(f"/{w.username}/{w.a}/events/start", body, auth=w.personal)
        assert reply.status == 201, reply
        file_id = "file-f1" if where == "in" else "file-g"
        await new_event(env, at[where], with_file=True, id=file_id)
    return Listing(w, credentials, {w.f, w.f1, hidden, trashed})


def scope_of(column: str) -> str:
    """What a credential reads in the listing's channel A: all, F's subtree, or nothing."""
    if column.startswith("folder-"):
        return "folder F"
    if column == "no-permission":
        return "forbidden"
    if column in UNKNOWN_CREDENTIALS:
        return "unknown"
    return "all"


FAR = "&fromTime=0&toTime=1e10"
EVENT_QUERIES = (
    "?state=all&limit=1000" + FAR,
    "?state=trashed" + FAR,
    "?state=default" + FAR,
    "?modifiedSince=0&state=all&limit=1000",
    "?state=all&sortAscending=true&limit=3&skip=1" + FAR,
    "?tags=none-has-it&state=all" + FAR,
)


def tree_ids(tree: list[dict[str, Any]]) -> list[str]:
    return [i for f in tree for i in (f["id"], *tree_ids(f["children"]))]


@in_module_loop
@pytest.mark.parametrize("column", COLUMNS)
async def test_lists_leave_out_everything_the_credential_does_not_cover(
    env: Env, listing: Listing, tally: dict[str, int], column: str
) -> None:
    """Each list, as the owner's session sees it, filtered to the credential's scope, must be
    exactly what the credential gets: over HTTP, inside a batch and over Socket.IO."""
    api, w = env.api, listing.world
    credential = listing.credentials[column]
    scope = scope_of(column)
    denial = {"forbidden": "F", "unknown": "I"}.get(scope)

    async def whole(path: str) -> Any:
        reply = await api.get(f"/{w.username}{path}", auth=w.session)
        assert reply.status == 200, reply
        return reply.body

    async def theirs(path: str) -> Any:
        reply = await api.get(f"/{w.username}{path}", auth=credential)
        return reply.body if reply.status == 200 else code_of(reply.status, reply.body)

    def keep(ids: list[str], covered: set[str]) -> Any:
        return denial or [i for i in ids if scope == "all" or i in covered]

    def event_ids(body: Any) -> Any:
        return [e["id"] for e in body] if isinstance(body, list) else body

    checks: list[tuple[str, Any, Any]] = []  # (what, the credential's answer, expected)
    for query in EVENT_QUERIES:
        got = event_ids(await theirs(f"/{w.a}/events{query}"))
        if "limit=3" in query:  # skip and limit apply to what the credential covers
            page = "?state=all&sortAscending=true&limit=1000" + FAR
            want = keep(event_ids(await whole(f"/{w.a}/events{page}")), set(IN_F))
            want = want if denial else want[1:4]
        else:
            whole_ids = event_ids(await whole(f"/{w.a}/events{query}"))
            assert set(whole_ids) <= set(IN_F) | set(OUT_OF_F)
            if query == EVENT_QUERIES[0]:  # the owner sees both sides: filtering is tested
                assert set(whole_ids) == set(IN_F) | set(OUT_OF_F)
            want = keep(whole_ids, set(IN_F))
        checks.append((f"events.get{query}", got, want))

    whole_running = event_ids(await whole(f"/{w.a}/events/running"))
    assert sorted(whole_running) == ["run-f1", "run-g"]
    got = event_ids(await theirs(f"/{w.a}/events/running"))
    checks.append(("events.getRunning", got, keep(whole_running, set(IN_F))))

    query = "?state=all&includeHidden=true"
    whole_tree = tree_ids(await whole(f"/{w.a}/folders{query}"))
    got = await theirs(f"/{w.a}/folders{query}")
    got = sorted(tree_ids(got)) if isinstance(got, list) else got
    checks.append(("folders.get", got, keep(sorted(whole_tree), listing.folders_in_f)))

    got = await theirs("/channels")
    got = sorted(c["id"] for c in got) if isinstance(got, list) else got
    if scope == "unknown":
        checks.append(("channels.get", got, "I"))
    else:
        reach = [w.b] if scope == "forbidden" else [w.a, w.b] if column in REACH_ALL else [w.a]
        checks.append(("channels.get", got, sorted(reach)))

    # The same lists through a batch, and over Socket.IO, say the same.
    calls = [
        {"method": "events.get", "params": {"channelId": w.a, "state": "all", "limit": 1000}},
        {"method": "events.getRunning", "params": {"channelId": w.a}},
        {"method": "folders.get", "params": {"channelId": w.a, "state": "all"}},
    ]
    reply = await api.post(f"/{w.username}/", calls, auth=credential)
    socket = await env.sockets.get(w.username, credential)
    answers: list[Any] = []
    for call in calls:
        if isinstance(socket, Socket):
            error, result = await socket.call(call["method"], call["params"])
            answers.append({"error": error} if error else {"result": result})
        else:
            answers.append(code_of(None, socket.get("data")))
    for transport, results in (("batch", reply.body), ("Socket.IO", answers)):
        if scope == "unknown":
            got = code_of(reply.status, reply.body) if transport == "batch" else results
            checks.append((transport, got, "I" if transport == "batch" else ["I"] * 3))
            continue
        for call, result in zip(calls, results, strict=True):
            direct = await theirs_params(api, w, credential, call)
            checks.append((f"{call['method']} in {transport}", result, direct))

    for what, got, want in checks:
        tally["lists"] += 1
        assert got == want, f"{what} with {column}"


async def theirs_params(api: Api, w: World, credential: str | None, call: dict[str, Any]) -> Any:
    """The batch/socket item the same call gives over plain HTTP: ``{result}`` or ``{error}``."""
    status, body = await over_http(
        api, Call(call["method"], dict(call["params"]), w.username), credential
    )
    return {"result": body} if status == 200 else {"error": body}


@in_module_loop
async def test_a_read_token_opens_its_own_file_and_nothing_else(env: Env, listing: Listing) -> None:
    api, w = env.api, listing.world
    events = await over_http(
        api, Call("events.get", {"channelId": w.a, "state": "all"}, w.username), w.session
    )
    tokens = {e["id"]: e["attachments"][0]["readToken"] for e in events[1] if e["attachments"]}
    assert set(tokens) == {"file-f1", "file-g"}

    async def download(event_id: str, file_name: str, read_token: str) -> tuple[int, Any]:
        path = f"/{w.username}/{w.a}/events/{event_id}/{file_name}?readToken={read_token}"
        reply = await api.get(path)
        return reply.status, reply.body

    assert await download("file-f1", "note.txt", tokens["file-f1"]) == (200, b"hello")
    refused = (401, "INVALID_TOKEN")
    for event_id, file_name in (("file-g", "note.txt"), ("file-f1", "other.txt")):
        status, body = await download(event_id, file_name, tokens["file-f1"])
        # Without a credential, a wrong pair never tells which files exist.
        assert (status, body["id"]) == refused, (event_id, file_name)
    status, body = await download("no-such-event", "note.txt", tokens["file-f1"])
    assert (status, body["id"]) == refused
    # A folder-scoped token lists the read tokens of its own files only.
    got = await over_http(
        api,
        Call("events.get", {"channelId": w.a, "state": "all"}, w.username),
        listing.credentials["folder-read"],
    )
    seen = {e["id"]: e["attachments"][0]["readToken"] for e in got[1] if e["attachments"]}
    assert list(seen) == ["file-f1"]
    # Each reader gets its own readToken (API.md §6.4); both open the file.
    assert seen["file-f1"] != tokens["file-f1"]
    assert await download("file-f1", "note.txt", seen["file-f1"]) == (200, b"hello")


@in_module_loop
@pytest.mark.parametrize("column", ["folder-read", "channel-read", "personal"])
async def test_unknown_list_parameters_are_refused_not_ignored(
    env: Env, listing: Listing, column: str
) -> None:
    w = listing.world
    for method_id, extra in (
        ("events.get", {"includeDeletions": "true"}),
        ("folders.get", {"includeDeletions": "true"}),
    ):
        status, body = await over_http(
            env.api,
            Call(method_id, {"channelId": w.a, **extra}, w.username),
            listing.credentials[column],
        )
        assert (status, body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")


@in_module_loop
async def test_without_permission_on_a_channel_missing_and_existing_events_look_alike(
    env: Env, listing: Listing
) -> None:
    """403 whether the event exists or not: the answer tells nothing about the channel."""
    w, token = listing.world, listing.credentials["no-permission"]
    for event_id in ("out-g", "no-such-event"):
        at = {"channelId": w.a, "id": event_id}
        for call in (
            Call("events.update", {**at, "tags": ["x"]}, w.username),
            Call("events.delete", at, w.username),
            Call("events.stop", at, w.username),
            Call("events.getAttachment", {**at, "fileName": "note.txt"}, w.username),
            Call("events.deleteAttachment", {**at, "fileName": "note.txt"}, w.username),
            Call("events.addAttachments", at, w.username, [("x.txt", b"x", "text/plain")]),
        ):
            status, body = await over_http(env.api, call, token)
            assert code_of(status, body) == "F", (call.method_id, event_id)


@in_module_loop
async def test_period_rules_never_name_events_out_of_the_credential_scope(env: Env) -> None:
    """In a strict channel a folder-scoped token's periods meet periods of other folders: the
    rules apply (the channel has one timeline), but answers name only events it can read."""
    api, w = env.api, env.owner
    channel = await api.channel(w.username, w.personal)  # strict (the default)
    base = f"/{w.username}/{channel}"
    mine, theirs = [
        (await api.post(f"{base}/folders", {"name": n}, auth=w.personal)).body["id"]
        for n in ("mine", "theirs")
    ]
    grant = [{"folderId": mine, "level": "contribute"}]
    token = await api.shared_token(
        w.username, w.personal, [{"channelId": channel, "folderPermissions": grant}]
    )

    async def record(path: str, auth: str, **body: Any) -> tuple[int, Any]:
        reply = await api.post(f"{base}/events{path}", body, auth=auth)
        return reply.status, reply.body

    # Someone else's period runs in "theirs"; the token's new period stops it (rule 2).
    assert (await record("/start", w.personal, id="their-run", folderId=theirs, time=1000.0))[
        0
    ] == 201
    status, body = await record("", token, folderId=mine, time=2000.0, duration=10.0)
    assert status == 201 and "stoppedId" not in body, body
    running = await record("/stop", w.personal, id="their-run")
    assert running == (200, {"stoppedId": None}), "the rule still applied"

    assert (
        await record("", w.personal, id="their-done", folderId=theirs, time=3000.0, duration=100.0)
    )[0] == 201
    for path, fields, error_id, key in (
        ("", {"time": 3050.0, "duration": 1.0}, "PERIODS_OVERLAP", "overlappedIds"),
        ("/start", {"time": 2500.0}, "INVALID_OPERATION", "laterIds"),
    ):
        status, body = await record(path, token, folderId=mine, **fields)
        assert (status, body["id"]) == (400, error_id), body
        assert body["data"][key] == [], body
    events = [{"clientId": "c", "folderId": mine, "time": 3010.0, "duration": 5.0}]
    reply = await api.post(f"{base}/events/batch", {"events": events}, auth=token)
    assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP"), reply
    assert reply.body["data"]["overlappedIds"] == [], reply
    # Its own events are still named.
    status, body = await record("", token, id="my-done", folderId=mine, time=4000.0, duration=9.0)
    assert status == 201
    status, body = await record("", token, folderId=mine, time=4001.0, duration=1.0)
    assert (status, body["data"]["overlappedIds"]) == (400, ["my-done"])
    # Addressing an event of another folder: refused, without naming that folder.
    reply = await api.put(f"{base}/events/their-done", {"tags": ["x"]}, auth=token)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")
    assert theirs not in reply.body["message"]


@in_module_loop
async def test_a_grant_of_no_folder_shows_nothing_of_the_channel(env: Env) -> None:
    """``folderPermissions: []`` reaches no folder and no event: the channel is not listed."""
    api, w = env.api, env.owner
    token = await api.shared_token(
        w.username, w.personal, [{"channelId": w.a, "level": "manage", "folderPermissions": []}]
    )
    reply = await api.get(f"/{w.username}/channels", auth=token)
    assert (reply.status, reply.body) == (200, [])
    reply = await api.get(f"/{w.username}/{w.a}/events", auth=token)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN")


@in_module_loop
async def test_the_seed_era_command_form_obeys_the_same_scope(env: Env, listing: Listing) -> None:
    w = listing.world
    sock = await env.sockets.get(w.username, listing.credentials["folder-read"])
    assert isinstance(sock, Socket)
    params = {"state": "all", "limit": 1000}
    error, result = await sock.call("command", {"id": f"{w.a}.events.get", "params": params})
    assert error is None and sorted(e["id"] for e in result) == sorted(IN_F)
    params = {"onlyFolders": [w.g]}
    error, _ = await sock.call("command", {"id": f"{w.a}.events.get", "params": params})
    assert error["id"] == "FORBIDDEN"
