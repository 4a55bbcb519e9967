"""Narrowed grants (API.md §14) in the permission matrix: tokens whose permissions carry tags,
a time frame, both, or a filter inside a folder grant, x every event method x an event in or
out of their filter, over HTTP, Socket.IO and batch; lists with zero out-of-filter items;
writes whose result would leave the filter refused with nothing written; out-of-filter
events indistinguishable from out-of-scope ones; notifications per socket.

Every event of a case lies in folder F1 (a child of F) of the owner's channel A, so that
only the filter decides: ``inside`` fields pass the column's filter, ``outside`` fields do
not (see ``KINDS``). Expected cells follow §14: a narrowed grant is the plain grant for the
events its filter passes, and nothing for the others (403, as for an item out of scope).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pryvrt.app import create_app
from pryvrt.auth.permissions import Access, parse_permissions
from pryvrt.config import Settings
from pryvrt.methods.registry import REGISTRY
from pryvrt.notify.messages import EVENTS_CHANGED, Change, Spot
from pryvrt.notify.routing import route
from tests.conftest import Api
from tests.sockets import Socket, connect
from tests.test_attachments import multipart
from tests.test_permission_matrix import (
    Call,
    SocketPool,
    World,
    build_world,
    code_of,
    outcome_of_ack,
    outcome_of_http,
    over_http,
)

in_module_loop = pytest.mark.asyncio(loop_scope="module")

NOW = time.time()
# The frame of the time-narrowed grants; event times in and out of it.
T0, T1 = NOW - 10_000, NOW - 100
IN_TIME, OUT_TIME = NOW - 1_000, NOW - 20_000
# A running period overlaps every frame ending after its start: one out of the frame
# starts after it.
OUT_RUNNING_TIME = NOW - 50


@dataclass(frozen=True)
class Kind:
    """A credential kind: its permissions on channel A (given the world), its level, and
    the fields of an event inside and outside its filter."""

    perms: Callable[[World], list[dict[str, Any]]]
    writes: bool
    inside: dict[str, Any]
    outside: dict[str, Any]


def whole(level: str, **narrowing: Any) -> Callable[[World], list[dict[str, Any]]]:
    return lambda w: [{"channelId": w.a, "level": level, **narrowing}]


def in_folder_f(level: str, **narrowing: Any) -> Callable[[World], list[dict[str, Any]]]:
    return lambda w: [
        {
            "channelId": w.a,
            "level": "read",
            "folderPermissions": [{"folderId": w.f, "level": level, **narrowing}],
        }
    ]


TAGS = {"tags": ["in"]}
FRAME = {"fromTime": T0, "toTime": T1}
KINDS: dict[str, Kind] = {
    "tags-read": Kind(
        whole("read", **TAGS), False, {"tags": ["in", "x"], "time": IN_TIME}, {"tags": ["out"]}
    ),
    "tags-contribute": Kind(
        whole("contribute", **TAGS), True, {"tags": ["x", "in"], "time": IN_TIME}, {"tags": []}
    ),
    "time-read": Kind(whole("read", **FRAME), False, {"time": IN_TIME}, {"time": OUT_TIME}),
    "time-contribute": Kind(
        whole("contribute", **FRAME), True, {"time": IN_TIME}, {"time": OUT_TIME}
    ),
    "both-read": Kind(
        whole("read", **TAGS, **FRAME),
        False,
        {"tags": ["in"], "time": IN_TIME},
        {"tags": ["out"], "time": IN_TIME},
    ),
    "both-contribute": Kind(
        whole("contribute", **TAGS, **FRAME),
        True,
        {"tags": ["in"], "time": IN_TIME},
        {"tags": ["in"], "time": OUT_TIME},
    ),
    "folder-tags-contribute": Kind(
        in_folder_f("contribute", **TAGS), True, {"tags": ["in"], "time": IN_TIME}, {"tags": []}
    ),
    "folder-time-read": Kind(in_folder_f("read", **FRAME), False, {"time": IN_TIME}, {"time": 1.0}),
}
COLUMNS = tuple(KINDS)
SCOPES = ("in", "out")


def running_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A running period's fields: one out of a frame starts after the frame."""
    if fields.get("time", IN_TIME) < T0:
        return {**fields, "time": OUT_RUNNING_TIME}
    return fields


@dataclass
class Env:
    api: Api
    owner: World
    credentials: dict[str, str]
    sockets: SocketPool
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def fields(self, column: str, scope: str) -> dict[str, Any]:
        kind = KINDS[column]
        base = {"time": IN_TIME, "tags": []}
        return {**base, **(kind.inside if scope == "in" else kind.outside)}


@pytest.fixture(scope="module")
def filtered_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=Path(tmp_path_factory.mktemp("filtered")),
        password_hash_fast=True,
        socket_recheck_seconds=0.0,
        token_max_failures_per_ip=1_000_000,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(filtered_settings: Settings) -> AsyncIterator[Env]:
    async with TestClient(TestServer(create_app(filtered_settings))) as client:
        api = Api(client)
        owner = await build_world(api)
        credentials = {
            column: await api.shared_token(owner.username, owner.personal, kind.perms(owner))
            for column, kind in KINDS.items()
        }
        async with contextlib.AsyncExitStack() as stack:
            yield Env(api, owner, credentials, SocketPool(str(client.make_url("/")), stack))


# -- one call per case ------------------------------------------------------------------------


async def owner_event(env: Env, fields: dict[str, Any], with_file: bool = False) -> str:
    """An event in F1, recorded by the owner."""
    w = env.owner
    body = {"folderId": w.f1, **fields}
    path = f"/{w.username}/{w.a}/events"
    if with_file:
        reply = await env.api.post(
            path, auth=w.personal, data=multipart(body, [("note.txt", b"hi", "text/plain")])
        )
    else:
        reply = await env.api.post(path, body, auth=w.personal)
    assert reply.status == 201, reply
    return str(reply.body["id"])


async def owner_running(env: Env, fields: dict[str, Any]) -> str:
    w = env.owner
    body = {"folderId": w.f1, **running_fields(fields)}
    reply = await env.api.post(f"/{w.username}/{w.a}/events/start", body, auth=w.personal)
    assert reply.status == 201, reply
    return str(reply.body["id"])


Spec = Callable[[Env, dict[str, Any]], Awaitable[Call]]


def on_a(env: Env, method_id: str, **params: Any) -> Call:
    return Call(method_id, {"channelId": env.owner.a, **params}, env.owner.username)


async def _get_attachment(env: Env, f: dict[str, Any]) -> Call:
    event = await owner_event(env, f, with_file=True)
    return on_a(env, "events.getAttachment", id=event, fileName="note.txt")


async def _get_one(env: Env, f: dict[str, Any]) -> Call:
    return on_a(env, "events.getOne", id=await owner_event(env, f))


async def _create(env: Env, f: dict[str, Any]) -> Call:
    return on_a(env, "events.create", folderId=env.owner.f1, **f)


async def _start(env: Env, f: dict[str, Any]) -> Call:
    return on_a(env, "events.start", folderId=env.owner.f1, **running_fields(f))


async def _stop(env: Env, f: dict[str, Any]) -> Call:
    return on_a(env, "events.stop", id=await owner_running(env, f))


async def _update(env: Env, f: dict[str, Any]) -> Call:
    return on_a(env, "events.update", id=await owner_event(env, f), description="edited")


async def _delete(env: Env, f: dict[str, Any]) -> Call:
    return on_a(env, "events.delete", id=await owner_event(env, f))


async def _add_attachments(env: Env, f: dict[str, Any]) -> Call:
    call = on_a(env, "events.addAttachments", id=await owner_event(env, f))
    call.files = [("more.txt", b"more", "text/plain")]
    return call


async def _delete_attachment(env: Env, f: dict[str, Any]) -> Call:
    event = await owner_event(env, f, with_file=True)
    return on_a(env, "events.deleteAttachment", id=event, fileName="note.txt")


async def _events_batch(env: Env, f: dict[str, Any]) -> Call:
    return on_a(env, "events.batch", events=[{"clientId": "c", "folderId": env.owner.f1, **f}])


async def _batch(env: Env, f: dict[str, Any]) -> Call:
    params = {"channelId": env.owner.a, "folderId": env.owner.f1, **f}
    return Call("batch", {"calls": [{"method": "events.create", "params": params}]}, "")


SPECS: dict[str, tuple[Spec, bool]] = {  # (the call, whether it writes)
    "events.getOne": (_get_one, False),
    "events.getAttachment": (_get_attachment, False),
    "events.create": (_create, True),
    "events.start": (_start, True),
    "events.stop": (_stop, True),
    "events.update": (_update, True),
    "events.delete": (_delete, True),
    "events.addAttachments": (_add_attachments, True),
    "events.deleteAttachment": (_delete_attachment, True),
    "events.batch": (_events_batch, True),
    "batch": (_batch, True),
}
CASES = [(m, c, s) for m in SPECS for c in COLUMNS for s in SCOPES]


def expected(method_id: str, column: str, scope: str) -> str:
    writes = SPECS[method_id][1]
    if scope == "out" or (writes and not KINDS[column].writes):
        return "F"
    return "Y"


async def build(env: Env, method_id: str, column: str, scope: str) -> Call:
    call = await SPECS[method_id][0](env, env.fields(column, scope))
    call.username = env.owner.username
    return call


@in_module_loop
@pytest.mark.parametrize(("method_id", "column", "scope"), CASES)
async def test_a_narrowed_grant_reaches_the_events_its_filter_passes_over_http(
    env: Env, method_id: str, column: str, scope: str
) -> None:
    call = await build(env, method_id, column, scope)
    status, body = await over_http(env.api, call, env.credentials[column])
    got = outcome_of_http(call, status, body)
    assert got == expected(method_id, column, scope), f"{method_id} {column} {scope}: {body}"


SOCKET_CASES = [c for c in CASES if REGISTRY[c[0]].socket]


@in_module_loop
@pytest.mark.parametrize(("method_id", "column", "scope"), SOCKET_CASES)
async def test_a_narrowed_grant_reaches_the_events_its_filter_passes_over_socketio(
    env: Env, method_id: str, column: str, scope: str
) -> None:
    call = await build(env, method_id, column, scope)
    sock = await env.sockets.get(env.owner.username, env.credentials[column])
    assert isinstance(sock, Socket)
    error, result = await sock.call(method_id, call.params)
    got = outcome_of_ack(call, error, result)
    assert got == expected(method_id, column, scope), f"{method_id} {column} {scope}: {error}"


@in_module_loop
@pytest.mark.parametrize(
    ("method_id", "column", "scope"), [c for c in SOCKET_CASES if c[0] != "batch"]
)
async def test_a_narrowed_grant_reaches_the_events_its_filter_passes_in_a_batch(
    env: Env, method_id: str, column: str, scope: str
) -> None:
    call = await build(env, method_id, column, scope)
    w = env.owner
    calls = [{"method": method_id, "params": call.params}]
    reply = await env.api.post(f"/{w.username}/", calls, auth=env.credentials[column])
    assert reply.status == 200, reply
    inner = reply.body[0]
    got = "Y" if "result" in inner else code_of(None, inner["error"])
    assert got == expected(method_id, column, scope), f"{method_id} {column} {scope}: {inner}"


# -- writes must end inside the filter --------------------------------------------------------


async def state_of(env: Env, event_id: str) -> Any:
    w = env.owner
    reply = await env.api.get(
        f"/{w.username}/{w.a}/events?state=all&fromTime=-1e10&toTime=1e12&limit=10000",
        auth=w.personal,
    )
    return next((e for e in reply.body if e["id"] == event_id), None)


WRITERS = [c for c in COLUMNS if KINDS[c].writes]


@in_module_loop
@pytest.mark.parametrize("column", WRITERS)
async def test_a_write_that_would_take_an_event_out_of_the_filter_is_refused_and_writes_nothing(
    env: Env, column: str
) -> None:
    api, w, token = env.api, env.owner, env.credentials[column]
    inside, outside = env.fields(column, "in"), env.fields(column, "out")
    moved = {k: v for k, v in outside.items() if inside.get(k) != v}
    event = await owner_event(env, inside)
    before = await state_of(env, event)
    reply = await api.put(f"/{w.username}/{w.a}/events/{event}", moved, auth=token)
    assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN"), reply
    assert await state_of(env, event) == before
    # Moving it to a folder out of reach of a folder grant: the same.
    if column.startswith("folder-"):
        reply = await api.put(f"/{w.username}/{w.a}/events/{event}", {"folderId": w.g}, auth=token)
        assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN"), reply
        assert await state_of(env, event) == before
    # Created out of the filter, in a batch among events inside it: nothing is recorded.
    marker = f"batch-{column}"
    batch = [
        {"clientId": "a", "folderId": w.f1, **inside, "description": marker},
        {"clientId": "b", "folderId": w.f1, **outside, "description": marker},
    ]
    reply = await api.post(f"/{w.username}/{w.a}/events/batch", {"events": batch}, auth=token)
    assert (reply.status, reply.body["id"], reply.body["data"]["clientId"]) == (
        403,
        "FORBIDDEN",
        "b",
    ), reply
    everything = await api.get(
        f"/{w.username}/{w.a}/events?state=all&fromTime=-1e10&toTime=1e12&limit=10000",
        auth=w.personal,
    )
    assert not [e for e in everything.body if e.get("description") == marker]
    # Stopped out of the frame: a period that began before the frame, stopped before it.
    if "fromTime" in str(KINDS[column].perms(w)):
        running = await owner_running(env, {**inside, "time": T0 - 500})
        reply = await api.post(
            f"/{w.username}/{w.a}/events/stop", {"id": running, "time": T0 - 100}, auth=token
        )
        assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN"), reply
        assert (await state_of(env, running))["duration"] is None


@in_module_loop
async def test_an_event_out_of_the_filter_looks_like_one_out_of_the_folders(env: Env) -> None:
    """Same status, id and message whether a folder grant's filter or its folder keeps the
    event out: the answer never tells which."""
    api, w = env.api, env.owner
    token = env.credentials["folder-tags-contribute"]
    out_of_filter = await owner_event(env, {"tags": ["out"], "time": IN_TIME}, with_file=True)
    reply = await api.post(
        f"/{w.username}/{w.a}/events",
        auth=w.personal,
        data=multipart(
            {"folderId": w.g, "tags": ["in"], "time": IN_TIME},
            [("note.txt", b"hi", "text/plain")],
        ),
    )
    out_of_folder = reply.body["id"]
    for method, tail, body in (
        ("PUT", "", {"description": "x"}),
        ("DELETE", "", None),
        ("GET", "/note.txt", None),
        ("DELETE", "/note.txt", None),
    ):
        answers = []
        for event in (out_of_filter, out_of_folder):
            path = f"/{w.username}/{w.a}/events/{event}{tail}"
            reply = await api.request(method, path, json=body, auth=token)
            answers.append((reply.status, reply.body))
        assert answers[0] == answers[1], (method, tail, answers)
        assert answers[0][0] == 403


# -- lists: zero out-of-filter items -----------------------------------------------------------


def passes(column: str, world: World, event: dict[str, Any]) -> bool:
    """The column's filter, written from API.md §14 (not from the server's code)."""
    perm = KINDS[column].perms(world)[0]
    grant = perm["folderPermissions"][0] if "folderPermissions" in perm else perm
    if "folderPermissions" in perm and event["folderId"] not in (world.f, world.f1):
        return False  # folder F's subtree only
    tags = grant.get("tags")
    if tags is not None and not set(tags) & set(event["tags"]):
        return False
    end = event["time"]
    if "duration" in event:
        end = float("inf") if event["duration"] is None else event["time"] + event["duration"]
    if "toTime" in grant and event["time"] > grant["toTime"]:
        return False
    return not ("fromTime" in grant and end < grant["fromTime"])


QUERIES = (
    "?state=all&limit=10000&fromTime=-1e10&toTime=1e12",
    "?state=all&limit=10000",
    "?state=default&fromTime={mid}&toTime=1e12&limit=10000",
    "?state=all&tags=in&tags=x&fromTime=-1e10&toTime=1e12&limit=10000",
    "?state=all&sortAscending=true&limit=4&skip=2&fromTime=-1e10&toTime=1e12",
    "?state=all&limit=7",
    "?state=all&modifiedSince=0&limit=10000",
    "?state=all&onlyFolders={f1}&fromTime=-1e10&toTime=1e12&limit=10000",
)


@in_module_loop
@pytest.mark.parametrize("column", COLUMNS)
async def test_lists_hold_no_event_out_of_the_filter(env: Env, column: str) -> None:
    """Every events.get (its own filters combined), getRunning and timeCount: exactly the
    owner's answer filtered by the column's filter, over HTTP, in a batch, over Socket.IO."""
    api, w, token = env.api, env.owner, env.credentials[column]
    # Make sure both sides exist: marks, finished periods and running ones, in and out.
    for scope in SCOPES:
        fields = env.fields(column, scope)
        await owner_event(env, fields)
        await owner_event(env, {**fields, "duration": 30.0})
        await owner_running(env, fields)
    sock = await env.sockets.get(w.username, token)
    assert isinstance(sock, Socket)

    def ids(body: Any) -> list[str]:
        return [e["id"] for e in body]

    base = f"/{w.username}/{w.a}"
    mid = T0 + 100
    for query in QUERIES:
        query = query.format(mid=mid, f1=w.f1)
        whole_query = query
        page = None
        if "skip=2" in query:  # the page is taken from what the credential reads
            whole_query = query.replace("limit=4&skip=2", "limit=10000")
            page = (2, 6)
        elif "limit=7" in query:
            whole_query = query.replace("limit=7", "limit=10000")
            page = (0, 7)
        everything = (await api.get(base + "/events" + whole_query, auth=w.personal)).body
        want = [e["id"] for e in everything if passes(column, w, e)]
        if page:
            want = want[page[0] : page[1]]
        got = await api.get(base + "/events" + query, auth=token)
        assert got.status == 200, got
        assert ids(got.body) == want, (column, query)
    params = {"channelId": w.a, "state": "all", "fromTime": -1e10, "toTime": 1e12, "limit": 10000}
    everything = (
        await api.get(
            base + "/events?state=all&limit=10000&fromTime=-1e10&toTime=1e12", auth=w.personal
        )
    ).body
    want = [e["id"] for e in everything if passes(column, w, e)]
    error, result = await sock.call("events.get", params)
    assert error is None and ids(result) == want
    reply = await api.post(
        f"/{w.username}/", [{"method": "events.get", "params": params}], auth=token
    )
    assert ids(reply.body[0]["result"]) == want

    running = (await api.get(base + "/events/running", auth=w.personal)).body
    got = (await api.get(base + "/events/running", auth=token)).body
    assert ids(got) == [e["id"] for e in running if passes(column, w, e)]
    error, result = await sock.call("events.getRunning", {"channelId": w.a})
    assert error is None and ids(result) == ids(got)

    # timeCount: the durations of the periods the credential reads (running ones until now).
    since = OUT_TIME - 1
    tree = (await api.get(base + f"/folders?timeCountBase={since}", auth=token)).body
    f1 = next(n for root in tree for n in (root, *root["children"]) if n["id"] == w.f1)
    periods = [
        e
        for e in everything
        if "duration" in e
        and not e["trashed"]
        and e["folderId"] == w.f1
        and e["time"] >= since
        and passes(column, w, e)
    ]
    expected_seconds = sum(
        e["duration"] if e["duration"] is not None else time.time() - e["time"] for e in periods
    )
    assert f1["timeCount"] == pytest.approx(expected_seconds, abs=30)


@in_module_loop
async def test_period_answers_never_name_events_out_of_the_filter(env: Env) -> None:
    """In a strict channel the rules meet out-of-filter periods; answers leave them out."""
    api, w = env.api, env.owner
    channel = await api.channel(w.username, w.personal)  # strict
    base = f"/{w.username}/{channel}"
    folder = (await api.post(f"{base}/folders", {"name": "f"}, auth=w.personal)).body["id"]
    token = await api.shared_token(
        w.username, w.personal, [{"channelId": channel, "level": "contribute", "tags": ["mine"]}]
    )

    async def post(path: str, auth: str, **body: Any) -> tuple[int, Any]:
        reply = await api.post(f"{base}/events{path}", body, auth=auth)
        return reply.status, reply.body

    assert (await post("/start", w.personal, id="theirs-run", folderId=folder, time=1000.0))[
        0
    ] == 201
    status, body = await post("", token, folderId=folder, time=2000.0, duration=5.0, tags=["mine"])
    assert status == 201 and "stoppedId" not in body, body
    await post("", w.personal, id="theirs-done", folderId=folder, time=3000.0, duration=100.0)
    status, body = await post("", token, folderId=folder, time=3050.0, duration=1.0, tags=["mine"])
    assert (status, body["id"], body["data"]["overlappedIds"]) == (400, "PERIODS_OVERLAP", [])
    await post(
        "", w.personal, id="mine-done", folderId=folder, time=4000.0, duration=9.0, tags=["mine"]
    )
    status, body = await post("", token, folderId=folder, time=4001.0, duration=1.0, tags=["mine"])
    assert (status, body["data"]["overlappedIds"]) == (400, ["mine-done"])
    # Its own running period, stopped by its next one: named.
    status, body = await post(
        "/start", token, id="mine-run", folderId=folder, time=5000.0, tags=["mine"]
    )
    assert status == 201, body
    status, body = await post("", token, folderId=folder, time=6000.0, duration=1.0, tags=["mine"])
    assert (status, body.get("stoppedId")) == (201, "mine-run")


@in_module_loop
async def test_a_read_token_stops_working_when_its_event_leaves_the_filter(env: Env) -> None:
    api, w = env.api, env.owner
    token = env.credentials["tags-read"]
    event = await owner_event(env, {"tags": ["in"], "time": IN_TIME}, with_file=True)
    listed = (
        await api.get(
            f"/{w.username}/{w.a}/events?fromTime={IN_TIME - 1}&toTime={IN_TIME + 1}&limit=1000",
            auth=token,
        )
    ).body
    read_token = next(e for e in listed if e["id"] == event)["attachments"][0]["readToken"]
    path = f"/{w.username}/{w.a}/events/{event}/note.txt?readToken={read_token}"
    assert (await api.get(path)).status == 200
    reply = await api.put(f"/{w.username}/{w.a}/events/{event}", {"tags": ["out"]}, auth=w.personal)
    assert reply.status == 200
    reply = await api.get(path)
    assert (reply.status, reply.body["id"]) == (401, "INVALID_TOKEN")


# -- notifications, per socket ----------------------------------------------------------------


@in_module_loop
async def test_a_socket_hears_only_changes_touching_an_event_it_reads_before_or_after(
    env: Env,
) -> None:
    api, w = env.api, env.owner
    url = str(api.client.make_url("/"))
    columns = ["tags-read", "time-read", "both-read", "folder-time-read"]
    async with contextlib.AsyncExitStack() as stack:
        sockets = {
            c: await stack.enter_async_context(connect(url, w.username, env.credentials[c]))
            for c in columns
        }

        async def heard(write: Callable[[], Awaitable[Any]]) -> set[str]:
            for sock in sockets.values():
                await sock.drain(0)
            await write()
            got = await asyncio.gather(*(s.drain(0.5) for s in sockets.values()))
            return {
                c
                for c, items in zip(columns, got, strict=True)
                if ("eventsChanged", {"channelId": w.a}) in items
            }

        inside = {"tags": ["in"], "time": IN_TIME}
        outside = {"tags": ["out"], "time": OUT_TIME}
        assert await heard(lambda: owner_event(env, inside)) == set(columns)
        assert await heard(lambda: owner_event(env, outside)) == set()
        # Tags in, time out: only the tag grant reads it.
        event = await owner_event(env, {"tags": ["in"], "time": OUT_TIME})
        assert await heard(
            lambda: api.put(
                f"/{w.username}/{w.a}/events/{event}", {"description": "x"}, auth=w.personal
            )
        ) == {"tags-read"}
        # Moved into every filter: all hear (after); moved out again: all hear (before).
        for fields in (inside, outside):
            assert await heard(
                lambda fields=fields: api.put(
                    f"/{w.username}/{w.a}/events/{event}", fields, auth=w.personal
                )
            ) == set(columns)
        # An event of folder G: the folder grant does not hear it.
        reply_path = f"/{w.username}/{w.a}/events"
        assert await heard(
            lambda: api.post(reply_path, {"folderId": w.g, **inside}, auth=w.personal)
        ) == {"tags-read", "time-read", "both-read"}


# -- never more than its creator, and validation ----------------------------------------------


def access(*perms: dict[str, Any]) -> Access:
    return Access("shared", "", "", parse_permissions({"level": "read", **p} for p in perms))


def test_a_narrowed_grant_never_covers_a_wider_one() -> None:
    narrowed = access({"channelId": "a", "level": "contribute", "tags": ["x"], "fromTime": 10.0})
    assert narrowed.covers(
        access({"channelId": "a", "level": "read", "tags": ["x"], "fromTime": 20.0, "toTime": 30.0})
    )
    for wider in (
        {"channelId": "a", "level": "read"},
        {"channelId": "a", "level": "read", "tags": ["x", "y"], "fromTime": 10.0},
        {"channelId": "a", "level": "read", "tags": ["x"], "fromTime": 5.0},
        {"channelId": "a", "level": "read", "fromTime": 10.0},
        {
            "channelId": "a",
            "level": "read",
            "folderPermissions": [{"folderId": "f", "level": "read"}],
        },
        {"channelId": "*", "level": "read", "tags": ["x"], "fromTime": 10.0},
    ):
        assert not narrowed.covers(access(wider)), wider
    folder = access(
        {
            "channelId": "a",
            "level": "read",
            "folderPermissions": [{"folderId": "f", "level": "contribute", "toTime": 50.0}],
        }
    )
    assert folder.covers(
        access(
            {
                "channelId": "a",
                "folderPermissions": [
                    {"folderId": "f", "level": "read", "toTime": 40.0, "tags": ["t"]}
                ],
            }
        )
    )
    assert not folder.covers(
        access(
            {
                "channelId": "a",
                "folderPermissions": [{"folderId": "f", "level": "read", "toTime": 60.0}],
            }
        )
    )


@in_module_loop
async def test_narrowed_permissions_are_stored_and_shown_as_given(env: Env) -> None:
    api, w = env.api, env.owner
    perms = [
        {"channelId": w.a, "level": "read", "tags": ["a", "b"], "fromTime": 1.0, "toTime": 2.0},
        {
            "channelId": w.b,
            "level": "read",
            "folderPermissions": [{"folderId": w.fb, "level": "contribute", "tags": ["c"]}],
        },
    ]
    token = await api.shared_token(w.username, w.personal, perms)
    # (a personal token lists shared tokens by accessId, without their secret)
    created = (await api.get(f"/{w.username}/access-info", auth=token)).body
    listed = (await api.get(f"/{w.username}/tokens", auth=w.personal)).body
    mine = next(t for t in listed if t["accessId"] == created["accessId"])
    assert mine["permissions"] == perms


@in_module_loop
@pytest.mark.parametrize(
    "perm",
    [
        {"level": "manage", "tags": ["x"]},
        {"level": "read", "tags": []},
        {"level": "read", "fromTime": 5.0, "toTime": 4.0},
        {"level": "read", "tags": "x", "extra": 1},
        {
            "level": "read",
            "folderPermissions": [{"folderId": None, "level": "manage", "toTime": 3.0}],
        },
        {
            "level": "read",
            "toTime": 3.0,
            "folderPermissions": [{"folderId": None, "level": "manage"}],
        },
    ],
)
async def test_invalid_narrowings_are_refused(env: Env, perm: dict[str, Any]) -> None:
    w = env.owner
    reply = await env.api.post(
        f"/{w.username}/tokens",
        {"name": f"bad-{next(env.counter)}", "permissions": [{"channelId": w.a, **perm}]},
        auth=w.personal,
    )
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply


@dataclass
class Listener:
    access: Access


def test_routing_hears_spots_before_or_after_and_keeps_them_on_the_wire() -> None:
    """Pure: ``notify.routing`` with the Spots a change carries (and their wire format)."""
    tagged = Listener(access({"channelId": "a", "tags": ["in"]}))
    framed = Listener(access({"channelId": "a", "fromTime": 100.0, "toTime": 200.0}))
    folder = Listener(
        access({"channelId": "a", "folderPermissions": [{"folderId": "f", "level": "read"}]})
    )
    full = Listener(Access("personal", "", ""))
    everyone = [tagged, framed, folder, full]
    before = Spot(("g",), 50.0, 50.0, ("in",))
    after = Spot(("f1", "f"), 150.0, math.inf, ())
    for spots, hearing in (
        ((before,), [tagged, full]),
        ((after,), [framed, folder, full]),
        ((before, after), everyone),
        ((Spot((None,), 300.0, 300.0, ("out",)),), [full]),
        (None, everyone),  # a change that lists no events: the channel decides
    ):
        change = Change(EVENTS_CHANGED, "a", spots=spots)
        assert Change.from_wire(orjson.loads(orjson.dumps(change.to_wire()))) == change
        [send] = route([change], everyone).sends
        assert list(send.to) == hearing, spots
    # Two changes of one channel in one publish: heard once, by the union.
    sends = route(
        [Change(EVENTS_CHANGED, "a", spots=(before,)), Change(EVENTS_CHANGED, "a", spots=(after,))],
        everyone,
    ).sends
    assert [list(s.to) for s in sends] == [everyone]
