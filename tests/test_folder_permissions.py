"""Tokens on folders and events (API.md §7): channel-level and folder-level permissions."""

from __future__ import annotations

from typing import Any

from tests.activity import Owner, names, owner
from tests.conftest import Api


async def setup(api: Api) -> tuple[Owner, dict[str, str]]:
    """Folders a > a1 > a11, and b; one event in each folder and one with no folder."""
    me = await owner(api)
    a = await me.folder("a")
    a1 = await me.folder("a1", parent=a)
    a11 = await me.folder("a11", parent=a1)
    b = await me.folder("b")
    folders = {"a": a, "a1": a1, "a11": a11, "b": b}
    for i, (name, folder) in enumerate(folders.items()):
        assert (await me.event(id=f"in-{name}", time=100.0 + i, folderId=folder)).status == 201
    assert (await me.event(id="loose", time=200.0)).status == 201
    return me, folders


async def event_ids(me: Owner, token: str, query: str = "") -> list[str]:
    reply = await me.events("?fromTime=0&toTime=1000" + query, auth=token)
    assert reply.status == 200, reply
    return [e["id"] for e in reply.body]


async def status(reply: Any) -> tuple[int, str | None]:
    return reply.status, reply.body.get("id") if isinstance(reply.body, dict) else None


async def test_sessions_and_personal_tokens_reach_everything(api: Api) -> None:
    me, f = await setup(api)
    personal = await api.personal_token(me.username, me.session)
    assert len(await event_ids(me, personal)) == 5
    assert (await me.folder("c", auth=personal)) is not None
    reply = await api.delete(me.path(f"/folders/{f['b']}"), auth=personal)
    assert reply.status == 200


async def test_channel_read_reads_but_writes_nothing(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token([{"level": "read"}])
    assert len(await event_ids(me, token)) == 5
    assert names((await me.folders(auth=token)).body) == [("a", [("a1", ["a11"])]), "b"]
    assert (await api.get(me.path("/events/running"), auth=token)).status == 200
    for reply in (
        await me.event(auth=token),
        await me.start(auth=token, folderId=f["a"]),
        await me.stop(auth=token),
        await api.put(me.path("/events/loose"), {"tags": []}, auth=token),
        await api.delete(me.path("/events/loose"), auth=token),
        await api.post(me.path("/events/batch"), {"events": []}, auth=token),
        await api.post(me.path("/folders"), {"name": "x"}, auth=token),
    ):
        assert await status(reply) == (403, "FORBIDDEN")


async def test_channel_contribute_writes_events_but_not_folders(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token([{"level": "contribute"}])
    assert (await me.event(auth=token, folderId=f["b"])).status == 201
    assert (await me.start(auth=token, folderId=f["a"])).status == 201
    assert (await me.stop(auth=token)).status == 200
    assert (await api.put(me.path("/events/loose"), {"tags": ["t"]}, auth=token)).status == 200
    assert (await api.delete(me.path("/events/loose"), auth=token)).status == 200
    for reply in (
        await api.post(me.path("/folders"), {"name": "x"}, auth=token),
        await api.put(me.path(f"/folders/{f['a']}"), {"name": "z"}, auth=token),
        await api.post(me.path(f"/folders/{f['a1']}/move"), {"parentId": None}, auth=token),
        await api.delete(me.path(f"/folders/{f['b']}"), auth=token),
    ):
        assert await status(reply) == (403, "FORBIDDEN")


async def test_channel_manage_manages_folders(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token([{"level": "manage"}])
    new = await me.folder("c", auth=token)
    reply = await api.post(me.path(f"/folders/{new}/move"), {"parentId": f["b"]}, auth=token)
    assert reply.status == 200
    assert (await api.delete(me.path(f"/folders/{new}"), auth=token)).status == 200


async def test_a_token_of_another_channel_is_forbidden(api: Api) -> None:
    me, _ = await setup(api)
    other = await api.channel(me.username, me.session)
    token = await api.shared_token(
        me.username, me.session, [{"channelId": other, "level": "manage"}]
    )
    assert await status(await me.events(auth=token)) == (403, "FORBIDDEN")
    assert await status(await me.folders(auth=token)) == (403, "FORBIDDEN")


async def test_folder_read_lists_only_the_folders_and_events_in_scope(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token(
        [{"level": "read", "folderPermissions": [{"folderId": f["a1"], "level": "read"}]}]
    )
    tree = (await me.folders(auth=token)).body
    assert names(tree) == [("a1", ["a11"])]
    assert tree[0]["parentId"] == f["a"]
    assert await event_ids(me, token) == ["in-a11", "in-a1"]
    assert await event_ids(me, token, f"&onlyFolders={f['a11']}") == ["in-a11"]
    reply = await me.events(f"?onlyFolders={f['b']}", auth=token)
    assert await status(reply) == (403, "FORBIDDEN")
    reply = await api.get(me.path(f"/folders/{f['a']}"), auth=token)
    assert await status(reply) == (403, "FORBIDDEN")
    reply = await api.get(me.path(f"/folders/{f['a1']}"), auth=token)
    assert names(reply.body) == ["a11"]


async def test_folder_scope_is_applied_before_skip_and_limit(api: Api) -> None:
    me, f = await setup(api)
    for i in range(30):
        await me.event(time=300.0 + i, folderId=f["b"])
    token = await me.token(
        [{"level": "read", "folderPermissions": [{"folderId": f["a"], "level": "read"}]}]
    )
    reply = await me.events("?limit=2&skip=1", auth=token)
    assert [e["id"] for e in reply.body] == ["in-a1", "in-a"]


async def test_a_null_folder_permission_reaches_the_events_with_no_folder(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token(
        [
            {
                "level": "contribute",
                "folderPermissions": [
                    {"folderId": None, "level": "contribute"},
                    {"folderId": f["b"], "level": "read"},
                ],
            }
        ]
    )
    assert await event_ids(me, token) == ["loose", "in-b"]
    assert names((await me.folders(auth=token)).body) == ["b"]
    assert (await me.event(auth=token)).status == 201
    assert await status(await me.event(auth=token, folderId=f["b"])) == (403, "FORBIDDEN")


async def test_folder_contribute_writes_only_events_in_scope(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token(
        [
            {
                "level": "contribute",
                "folderPermissions": [{"folderId": f["a"], "level": "contribute"}],
            }
        ]
    )
    assert (await me.event(auth=token, folderId=f["a11"])).status == 201
    reply = await api.put(me.path("/events/in-a1"), {"folderId": f["a11"]}, auth=token)
    assert reply.status == 200
    assert (await api.delete(me.path("/events/in-a"), auth=token)).status == 200
    for reply in (
        await me.event(auth=token, folderId=f["b"]),
        await me.event(auth=token),
        await api.put(me.path("/events/in-b"), {"tags": ["x"]}, auth=token),
        await api.put(me.path("/events/in-a11"), {"folderId": f["b"]}, auth=token),
        await api.delete(me.path("/events/in-b"), auth=token),
        await api.post(me.path("/folders"), {"name": "x", "parentId": f["a"]}, auth=token),
    ):
        assert await status(reply) == (403, "FORBIDDEN")


async def test_stop_without_id_leaves_out_a_period_out_of_scope_as_if_none_ran(
    api: Api,
) -> None:
    """API.md §7: what is out of scope is left out silently. A 403 here (and null when
    nothing runs) told a folder-scoped token that a hidden period was running."""
    me, f = await setup(api)
    token = await me.token(
        [
            {
                "level": "contribute",
                "folderPermissions": [{"folderId": f["a"], "level": "contribute"}],
            }
        ]
    )
    nothing_runs = await me.stop(auth=token)
    running = (await me.start(folderId=f["b"], time=500.0)).body["id"]
    hidden_runs = await me.stop(auth=token)
    assert (nothing_runs.status, nothing_runs.body) == (200, {"stoppedId": None})
    assert (hidden_runs.status, hidden_runs.body) == (nothing_runs.status, nothing_runs.body)
    assert (await api.get(me.path("/events/running"), auth=token)).body == []
    [still] = (await api.get(me.path("/events/running"), auth=me.session)).body
    assert (still["id"], still["duration"]) == (running, None)
    # A running period it can read but not write is still refused (nothing hidden there).
    reader = await me.token(
        [
            {
                "level": "contribute",
                "folderPermissions": [
                    {"folderId": f["a"], "level": "contribute"},
                    {"folderId": f["b"], "level": "read"},
                ],
            }
        ]
    )
    assert await status(await me.stop(auth=reader)) == (403, "FORBIDDEN")


async def test_folder_manage_covers_the_subtree_only(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token(
        [{"level": "manage", "folderPermissions": [{"folderId": f["a1"], "level": "manage"}]}]
    )
    deep = await me.folder("deep", parent=f["a11"], auth=token)
    reply = await api.put(me.path(f"/folders/{deep}"), {"name": "deeper"}, auth=token)
    assert reply.status == 200
    reply = await api.post(me.path(f"/folders/{deep}/move"), {"parentId": f["a1"]}, auth=token)
    assert reply.status == 200
    assert (await api.delete(me.path(f"/folders/{deep}"), auth=token)).status == 200
    for reply in (
        await api.post(me.path("/folders"), {"name": "root"}, auth=token),
        await api.post(me.path("/folders"), {"name": "x", "parentId": f["b"]}, auth=token),
        await api.post(me.path(f"/folders/{f['a11']}/move"), {"parentId": f["b"]}, auth=token),
        await api.post(me.path(f"/folders/{f['a11']}/move"), {"parentId": None}, auth=token),
        await api.put(me.path(f"/folders/{f['a']}"), {"name": "z"}, auth=token),
        await api.delete(me.path(f"/folders/{f['b']}"), auth=token),
    ):
        assert await status(reply) == (403, "FORBIDDEN")


async def test_the_highest_level_wins_down_the_tree(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token(
        [
            {
                "level": "contribute",
                "folderPermissions": [
                    {"folderId": f["a"], "level": "read"},
                    {"folderId": f["a1"], "level": "contribute"},
                ],
            }
        ]
    )
    assert (await me.event(auth=token, folderId=f["a11"], time=150.0)).status == 201
    assert await status(await me.event(auth=token, folderId=f["a"])) == (403, "FORBIDDEN")
    assert len(await event_ids(me, token)) == 4


async def test_merging_events_needs_contribute_where_they_go(api: Api) -> None:
    me, f = await setup(api)
    token = await me.token(
        [{"level": "manage", "folderPermissions": [{"folderId": f["a1"], "level": "manage"}]}]
    )
    await api.delete(me.path(f"/folders/{f['a11']}"), auth=token)
    reply = await api.delete(me.path(f"/folders/{f['a11']}?mergeEventsWithParent=true"), auth=token)
    assert reply.status == 200
    await api.delete(me.path(f"/folders/{f['a1']}"), auth=token)
    reply = await api.delete(me.path(f"/folders/{f['a1']}?mergeEventsWithParent=true"), auth=token)
    assert await status(reply) == (403, "FORBIDDEN")
    reply = await api.delete(me.path(f"/folders/{f['a1']}?mergeEventsWithParent=false"), auth=token)
    assert reply.status == 200
    assert await event_ids(me, me.session) == ["loose", "in-b", "in-a"]


async def test_period_errors_name_events_of_subfolders_of_a_granted_folder(api: Api) -> None:
    """A period recorded with no folder meets a period in a descendant of a granted folder:
    the error names it (the scope's tree knows the ancestors, even though the new event
    itself needs none)."""
    me = await owner(api)  # strict: periods may not overlap
    a = await me.folder("a")
    a1 = await me.folder("a1", parent=a)
    reply = await me.event(id="deep", folderId=a1, time=1000.0, duration=100.0)
    assert reply.status == 201, reply
    token = await me.token(
        [
            {
                "folderPermissions": [
                    {"folderId": a, "level": "read"},
                    {"folderId": None, "level": "contribute"},
                ]
            }
        ]
    )
    reply = await me.event(auth=token, time=1050.0, duration=10.0)
    assert await status(reply) == (400, "PERIODS_OVERLAP"), reply
    assert reply.body["data"]["overlappedIds"] == ["deep"]
