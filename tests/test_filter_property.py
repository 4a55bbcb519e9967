"""Property (API.md §7, §14): for random events, random narrowed permissions and random
events.get queries, what a token reads is exactly the brute-force filter, in Python, of all
the channel's events — its folders (with their descendants), its tags and time frames,
and every filter of the query (window, tags, onlyFolders, state, order, skip, limit)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api

TAGS = ("a", "b", "c")
FOLDERS = ("F", "F1", "G", None)  # F1 is a child of F
TIMES = st.integers(min_value=1000, max_value=1100).map(float)

event_strategy = st.fixed_dictionaries(
    {
        "time": TIMES,
        "kind": st.sampled_from(("mark", "period", "running")),
        "duration": st.integers(min_value=0, max_value=40).map(float),
        "folder": st.sampled_from(FOLDERS),
        "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=2),
        "trashed": st.booleans(),
    }
)


@st.composite
def narrowing(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["tags"] = draw(st.lists(st.sampled_from(TAGS), unique=True, min_size=1, max_size=2))
    bounds = sorted(draw(st.lists(TIMES, min_size=2, max_size=2)))
    which = draw(st.sampled_from(("none", "from", "to", "both")))
    if which in ("from", "both"):
        out["fromTime"] = bounds[0]
    if which in ("to", "both"):
        out["toTime"] = bounds[1]
    return out


@st.composite
def grant(draw: st.DrawFn) -> dict[str, Any]:
    """One permission on the channel: whole (maybe narrowed) or folder grants (maybe
    narrowed each, and/or at the permission level)."""
    if draw(st.booleans()):
        return {"level": "read", **draw(narrowing())}
    folders = draw(st.lists(st.sampled_from(FOLDERS), unique=True, min_size=1, max_size=2))
    return {
        "level": "read",
        **(draw(narrowing()) if draw(st.booleans()) else {}),
        "folderPermissions": [{"folder": f, "level": "read", **draw(narrowing())} for f in folders],
    }


@st.composite
def query(draw: st.DrawFn) -> dict[str, Any]:
    q: dict[str, Any] = {
        "state": draw(st.sampled_from(("default", "trashed", "all"))),
        "sortAscending": draw(st.booleans()),
        "skip": draw(st.integers(0, 5)),
        "limit": draw(st.integers(1, 40)),
    }
    if draw(st.booleans()):
        bounds = sorted(draw(st.lists(TIMES, min_size=2, max_size=2)))
        q["fromTime"], q["toTime"] = bounds
    if draw(st.booleans()):
        q["tags"] = draw(st.lists(st.sampled_from(TAGS), unique=True, min_size=1, max_size=2))
    if draw(st.booleans()):
        q["onlyFolders"] = draw(
            st.lists(st.sampled_from(("F", "F1", "G")), unique=True, min_size=1, max_size=2)
        )
    return q


def path(folder: str | None) -> tuple[str | None, ...]:
    return {"F": ("F",), "F1": ("F1", "F"), "G": ("G",), None: (None,)}[folder]


def end_of(e: dict[str, Any]) -> float:
    if e["kind"] == "mark":
        return float(e["time"])
    return math.inf if e["kind"] == "running" else e["time"] + e["duration"]


def passes(flt: dict[str, Any], e: dict[str, Any]) -> bool:
    if "tags" in flt and not set(flt["tags"]) & set(e["tags"]):
        return False
    if "toTime" in flt and e["time"] > flt["toTime"]:
        return False
    return not ("fromTime" in flt and end_of(e) < flt["fromTime"])


def reads(perms: list[dict[str, Any]], e: dict[str, Any]) -> bool:
    for perm in perms:
        own = {k: perm[k] for k in ("tags", "fromTime", "toTime") if k in perm}
        if "folderPermissions" not in perm:
            if passes(own, e):
                return True
            continue
        for fp in perm["folderPermissions"]:
            if fp["folder"] in path(e["folder"]) and passes(own, e) and passes(fp, e):
                return True
    return False


def reaches_folder(perms: list[dict[str, Any]], folder: str) -> bool:
    for perm in perms:
        if "folderPermissions" not in perm:
            return True
        if any(fp["folder"] in path(folder) for fp in perm["folderPermissions"]):
            return True
    return False


def brute_force(
    events: list[dict[str, Any]], perms: list[dict[str, Any]], q: dict[str, Any]
) -> list[str] | str:
    if any(not reaches_folder(perms, f) for f in q.get("onlyFolders", ())):
        return "FORBIDDEN"
    kept = []
    for e in events:
        if q["state"] != "all" and e["trashed"] != (q["state"] == "trashed"):
            continue
        if "fromTime" in q and not (e["time"] <= q["toTime"] and end_of(e) >= q["fromTime"]):
            continue
        if "tags" in q and not set(q["tags"]) & set(e["tags"]):
            continue
        if "onlyFolders" in q and not any(f in path(e["folder"]) for f in q["onlyFolders"]):
            continue
        if reads(perms, e):
            kept.append(e)
    kept.sort(key=lambda e: (e["time"], e["id"]), reverse=not q["sortAscending"])
    return [e["id"] for e in kept[q["skip"] : q["skip"] + q["limit"]]]


@pytest.mark.asyncio
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(event_strategy, max_size=25),
    perms=st.lists(grant(), min_size=1, max_size=2),
    queries=st.lists(query(), min_size=1, max_size=4),
)
async def test_events_get_is_the_brute_force_filter_of_all_events(
    api: Api,
    events: list[dict[str, Any]],
    perms: list[dict[str, Any]],
    queries: list[dict[str, Any]],
) -> None:
    if not hasattr(api, "owner"):
        username, session = await api.user()
        api.owner = (username, session)  # type: ignore[attr-defined]
    username, session = api.owner  # type: ignore[attr-defined]
    channel = await api.channel(username, session, enforceNoEventsOverlap=False)
    base = f"/{username}/{channel}"
    ids: dict[str | None, str | None] = {None: None}
    for name, parent in (("F", None), ("F1", "F"), ("G", None)):
        reply = await api.post(
            f"{base}/folders", {"name": name, "parentId": ids[parent]}, auth=session
        )
        assert reply.status == 201, reply
        ids[name] = reply.body["id"]
    batch = []
    for i, e in enumerate(events):
        e["id"] = f"e{i:02}"
        item: dict[str, Any] = {
            "clientId": e["id"],
            "id": e["id"],
            "time": e["time"],
            "folderId": ids[e["folder"]],
            "tags": e["tags"],
        }
        if e["kind"] != "mark":
            item["duration"] = None if e["kind"] == "running" else e["duration"]
        batch.append(item)
    if batch:
        reply = await api.post(f"{base}/events/batch", {"events": batch}, auth=session)
        assert reply.status == 200, reply
    for e in events:
        if e["trashed"]:
            reply = await api.delete(f"{base}/events/{e['id']}", auth=session)
            assert reply.status == 200, reply
    stored = []
    for perm in perms:
        item = {"channelId": channel, **{k: v for k, v in perm.items() if k != "folderPermissions"}}
        if "folderPermissions" in perm:
            item["folderPermissions"] = [
                {"folderId": ids[fp["folder"]], **{k: v for k, v in fp.items() if k != "folder"}}
                for fp in perm["folderPermissions"]
            ]
        stored.append(item)
    token = await api.shared_token(username, session, stored)
    for q in queries:
        params: list[tuple[str, str]] = []
        for key, value in q.items():
            if key == "onlyFolders":
                params.extend(("onlyFolders", str(ids[f])) for f in value)
            elif key == "tags":
                params.extend(("tags", t) for t in value)
            elif isinstance(value, bool):
                params.append((key, "true" if value else "false"))
            else:
                params.append((key, str(value)))
        reply = await api.get(f"{base}/events", auth=token, params=params)
        want = brute_force(events, perms, q)
        if want == "FORBIDDEN":
            assert (reply.status, reply.body["id"]) == (403, "FORBIDDEN"), (q, reply)
        else:
            assert reply.status == 200, reply
            assert [e["id"] for e in reply.body] == want, (perms, q)
