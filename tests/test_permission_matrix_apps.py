"""The permission matrix for app tokens (API.md §13 end), on the world and calls of
tests/test_permission_matrix.py: an app token obtained through an access request reaches
data exactly as a shared token with the same permissions does (every method, both scopes,
HTTP and Socket.IO), and unlike a shared token it manages tokens: it lists and changes the
shared tokens it created (others are unknown to it: 404) and creates shared tokens within
its own scope (beyond it: 403)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pryvrt.app import create_app
from pryvrt.config import Settings
from pryvrt.methods.registry import REGISTRY
from tests import test_permission_matrix as pm
from tests.conftest import Api
from tests.sockets import Socket

in_module_loop = pm.in_module_loop

# The shared-token columns of the matrix that app tokens mirror (same permissions).
MIRRORED = (
    "channel-read",
    "channel-contribute",
    "channel-manage",
    "folder-read",
    "folder-contribute",
    "folder-manage",
    "all-read",
    "all-manage",
    "no-permission",
)
APP_COLUMNS = tuple(f"app-{c}" for c in MIRRORED)

# Where app tokens differ from shared ones: token management. N: 404 UNKNOWN_TOKEN.
# Account methods address a user: "out" is another user's account for the `*` columns, the
# owner's own for the others (as in the main matrix). tokens.create asks for read on the
# owner's channel A: within the channel and `*` grants, beyond folder grants and channel B.
#                       chR  chC  chM  fdR  fdC  fdM  *R   *M   noP
TOKENS_GET = "          YY   YY   YY   YY   YY   YY   YI   YI   YY"
TOKENS_CREATE = "       YY   YY   YY   FF   FF   FF   YI   YI   FF"
OWN_TOKENS = "          YN   YN   YN   YN   YN   YN   YI   YI   YN"
APP_CELLS = {
    "tokens.get": TOKENS_GET,
    "tokens.create": TOKENS_CREATE,
    "tokens.update": OWN_TOKENS,
    "tokens.delete": OWN_TOKENS,
}
CODES = {**pm.CODES, "N": (404, "UNKNOWN_TOKEN")}


def expected(method_id: str, column: str, scope: str) -> str:
    base = column.removeprefix("app-")
    cells = APP_CELLS.get(method_id)
    if cells is None:
        return pm.expected(method_id, base, scope)
    return cells.split()[MIRRORED.index(base)][pm.SCOPES.index(scope)]


CASES = [(m, c, s) for m in pm.MATRIX for c in APP_COLUMNS for s in pm.SCOPES]


def code_of(status: int | None, error: Any) -> str:
    error_id = error.get("id") if isinstance(error, dict) else None
    for code, denial in CODES.items():
        if denial is not None and denial[1] == error_id and status in (None, denial[0]):
            return code
    return f"{status} {error!r}"


async def app_token(api: Api, w: pm.World, perms: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """An app token of the owner, through an access request its session accepts."""
    body = {"requestingAppId": f"app-{len(perms)}-{id(perms)}", "requestedPermissions": perms}
    reply = await api.post("/access", body)
    assert reply.status == 201, reply
    key = reply.body["key"]
    reply = await api.post(f"/{w.username}/access/{key}/accept", auth=w.session)
    assert reply.status == 200, reply
    reply = await api.get(f"/access/{key}")
    assert reply.body["status"] == "ACCEPTED", reply
    return str(reply.body["token"]), perms


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(matrix_settings: Settings) -> AsyncIterator[pm.Env]:
    settings = matrix_settings
    async with TestClient(TestServer(create_app(settings))) as client:
        api = Api(client)
        owner = await pm.build_world(api)
        other = await pm.build_world(api)
        expired = await pm.expired_session(settings, owner.username)
        shared = await pm.build_credentials(api, owner, other, expired)
        credentials: dict[str, str | None] = dict(shared)
        perms: dict[str, list[Any]] = {}
        tokens = (await api.get(f"/{owner.username}/tokens", auth=owner.session)).body
        by_secret = {t["id"]: t for t in tokens}
        for column in MIRRORED:
            # The same permissions as the shared token of the mirrored column.
            wanted = by_secret[shared[column]]["permissions"]
            credentials[f"app-{column}"], perms[column] = await app_token(api, owner, wanted)
        async with contextlib.AsyncExitStack() as stack:
            sockets = pm.SocketPool(str(client.make_url("/")), stack)
            environment = pm.Env(api, owner, other, credentials, sockets, settings)
            environment.app_perms = perms  # type: ignore[attr-defined]
            yield environment


@pytest.fixture(scope="module")
def matrix_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return pm.matrix_settings.__wrapped__(database_url, tmp_path_factory)  # type: ignore[attr-defined]


async def call_for(env: pm.Env, method_id: str, column: str, scope: str) -> pm.Call:
    """The matrix's call; tokens.update/delete in scope aim at a token the app created."""
    base = column.removeprefix("app-")
    at = env.positions(base)[scope]
    if method_id in ("tokens.update", "tokens.delete") and scope == "in":
        perms = env.app_perms[base]  # type: ignore[attr-defined]
        body = {"name": env.fresh("by-app"), "permissions": perms}
        reply = await env.api.post(
            f"/{at.world.username}/tokens", body, auth=env.credentials[column]
        )
        assert reply.status == 201, reply
        extra = {"name": env.fresh("tk")} if method_id == "tokens.update" else {}
        return pm.on_user(at, method_id, id=reply.body["accessId"], **extra)
    return await pm.SPECS[method_id](env, at, base)


def outcome_of(call: pm.Call, status: int | None, body: Any) -> str:
    if call.method_id == "batch" and status in (200, None):
        inner = body[0]
        if "result" in inner:
            return "Y"
        pm.check_declared(call.params["calls"][0]["method"], inner["error"])
        return code_of(None, inner["error"])
    if status is not None and 200 <= status < 300:
        return "Y"
    pm.check_declared(call.method_id, body)
    return code_of(status, body)


@in_module_loop
@pytest.mark.parametrize(("method_id", "column", "scope"), CASES)
async def test_an_app_token_gets_what_the_matrix_says_over_http(
    env: pm.Env, method_id: str, column: str, scope: str
) -> None:
    call = await call_for(env, method_id, column, scope)
    status, body = await pm.over_http(env.api, call, env.credentials[column])
    got = outcome_of(call, status, body)
    assert got == expected(method_id, column, scope), f"{method_id} with {column}, {scope}"


SOCKET_CASES = [case for case in CASES if REGISTRY[case[0]].socket]


@in_module_loop
@pytest.mark.parametrize(("method_id", "column", "scope"), SOCKET_CASES)
async def test_an_app_token_gets_what_the_matrix_says_over_socketio(
    env: pm.Env, method_id: str, column: str, scope: str
) -> None:
    call = await call_for(env, method_id, column, scope)
    base = column.removeprefix("app-")
    at = env.positions(base)[scope]
    sock = await env.sockets.get(at.world.username, env.credentials[column])
    if isinstance(sock, Socket):
        error, result = await sock.call(method_id, call.params)
        got = "Y" if error is None else outcome_of(call, None, error)
        if error is None and method_id == "batch":
            got = outcome_of(call, None, result)
    else:
        got = code_of(None, sock.get("data") if sock else None)
    want = expected(method_id, column, scope) if at.world is env.owner else "I"
    assert got == want, f"{method_id} with {column}, {scope}, over Socket.IO"
