"""folders.get / create / update / move / delete (API.md §5), over real HTTP and PostgreSQL."""

from __future__ import annotations

import time

import asyncpg

from pryvrt.notify.messages import EVENTS_CHANGED, FOLDERS_CHANGED
from tests.activity import Owner, names, owner, record_changes
from tests.conftest import Api


async def test_create_answers_201_with_the_id_and_get_shows_the_folder(api: Api) -> None:
    me = await owner(api)
    reply = await api.post(me.path("/folders"), {"name": "Work"}, auth=me.session)
    assert reply.status == 201
    folder_id = reply.body["id"]
    [folder] = (await me.folders()).body
    assert folder == {
        "id": folder_id,
        "channelId": me.channel,
        "name": "Work",
        "parentId": None,
        "hidden": False,
        "clientData": {},
        "trashed": False,
        "created": folder["modified"],
        "createdBy": folder["createdBy"],
        "modified": folder["modified"],
        "modifiedBy": folder["createdBy"],
        "children": [],
    }
    assert abs(folder["modified"] - time.time()) < 60
    assert folder["createdBy"] not in ("system", me.session)  # the session's accessId


async def test_tree_is_sorted_by_name_at_every_level(api: Api) -> None:
    me = await owner(api)
    b = await me.folder("b")
    await me.folder("a")
    # Parent from the path, and from the body.
    reply = await api.post(me.path(f"/folders/{b}"), {"name": "z"}, auth=me.session)
    assert reply.status == 201
    await me.folder("m", parent=b)
    await me.folder("A-first", parent=b)  # a child sorting before its parent
    assert names((await me.folders()).body) == ["a", ("b", ["A-first", "m", "z"])]


async def test_get_with_a_parent_answers_the_tree_below_it(api: Api) -> None:
    me = await owner(api)
    top = await me.folder("top")
    mid = await me.folder("mid", parent=top)
    await me.folder("leaf", parent=mid)
    await me.folder("other")
    reply = await api.get(me.path(f"/folders/{top}"), auth=me.session)
    assert reply.status == 200
    assert names(reply.body) == [("mid", ["leaf"])]
    assert reply.body[0]["parentId"] == top


async def test_get_with_an_unknown_folder_in_the_url_answers_404(api: Api) -> None:
    me = await owner(api)
    reply = await api.get(me.path("/folders/nope"), auth=me.session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_FOLDER"


async def test_unknown_channel_answers_404(api: Api) -> None:
    me = await owner(api)
    reply = await api.get(me.path("/folders", channel="nope"), auth=me.session)
    assert reply.status == 404
    assert reply.body["id"] == "UNKNOWN_CHANNEL"


async def test_create_under_an_unknown_parent_answers_400_unknown_folder(api: Api) -> None:
    me = await owner(api)
    for path, body in (("/folders", {"name": "x", "parentId": "ghost"}), ("/folders/ghost", {})):
        reply = await api.post(me.path(path), {"name": "x", **body}, auth=me.session)
        assert reply.status == 400
        assert reply.body["id"] == "UNKNOWN_FOLDER"
        assert reply.body["data"]["unknownIds"] == ["ghost"]


async def test_sibling_names_are_unique_but_cousins_may_share_a_name(api: Api) -> None:
    me = await owner(api)
    a = await me.folder("a")
    b = await me.folder("b")
    await me.folder("same", parent=a)
    await me.folder("same", parent=b)
    await me.folder("same")
    for parent in (a, None):
        body = {"name": "same", "parentId": parent}
        reply = await api.post(me.path("/folders"), body, auth=me.session)
        assert reply.status == 400
        assert reply.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


async def test_client_chosen_ids_follow_the_id_rules(api: Api) -> None:
    me = await owner(api)
    reply = await api.post(me.path("/folders"), {"id": "my.folder-1", "name": "a"}, auth=me.session)
    assert reply.status == 201
    assert reply.body["id"] == "my.folder-1"
    reply = await api.post(me.path("/folders"), {"id": "my.folder-1", "name": "b"}, auth=me.session)
    assert reply.body["id"] == "ITEM_ID_ALREADY_EXISTS"
    for bad in ("events", "*", "null", "sp ace", "x" * 101):
        reply = await api.post(me.path("/folders"), {"id": bad, "name": "c"}, auth=me.session)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_ITEM_ID"), bad


async def test_missing_or_blank_name_is_a_format_error(api: Api) -> None:
    me = await owner(api)
    for body in ({}, {"name": "  "}, {"name": "a", "colour": "red"}):
        reply = await api.post(me.path("/folders"), body, auth=me.session)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), body


async def test_hidden_folders_and_their_subtree_appear_only_with_include_hidden(api: Api) -> None:
    me = await owner(api)
    hidden = await me.folder("hidden", hidden=True)
    await me.folder("inside", parent=hidden)
    await me.folder("shown")
    assert names((await me.folders()).body) == ["shown"]
    assert names((await me.folders("?includeHidden=true")).body) == [
        ("hidden", ["inside"]),
        "shown",
    ]


async def test_a_trashed_folder_hides_its_subtree_in_the_default_view(api: Api) -> None:
    me = await owner(api)
    old = await me.folder("old")
    await me.folder("kid", parent=old)
    await me.folder("kept")
    assert (await api.delete(me.path(f"/folders/{old}"), auth=me.session)).status == 200
    assert names((await me.folders()).body) == ["kept"]
    trashed = (await me.folders("?state=trashed")).body
    assert names(trashed) == [("old", ["kid"])]
    assert trashed[0]["trashed"] is True
    assert names((await me.folders("?state=all")).body) == ["kept", ("old", ["kid"])]


async def test_update_restores_a_trashed_folder(api: Api) -> None:
    me = await owner(api)
    old = await me.folder("old")
    await api.delete(me.path(f"/folders/{old}"), auth=me.session)
    reply = await api.put(me.path(f"/folders/{old}"), {"trashed": False}, auth=me.session)
    assert reply.status == 200
    assert names((await me.folders()).body) == ["old"]


async def test_nothing_is_created_under_a_trashed_folder_or_in_a_trashed_channel(api: Api) -> None:
    me = await owner(api)
    old = await me.folder("old")
    kid = await me.folder("kid", parent=old)
    await api.delete(me.path(f"/folders/{old}"), auth=me.session)
    reply = await api.post(me.path(f"/folders/{kid}"), {"name": "x"}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert reply.body["data"]["trashed"] == "folder"
    await api.delete(f"/{me.username}/channels/{me.channel}", auth=me.session)
    reply = await api.post(me.path("/folders"), {"name": "y"}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert reply.body["data"]["trashed"] == "channel"


async def test_update_changes_only_the_given_fields_and_merges_client_data(api: Api) -> None:
    me = await owner(api)
    f = await me.folder("f", clientData={"color": "red", "icon": "star"})
    before = (await me.folders()).body[0]
    reply = await api.put(
        me.path(f"/folders/{f}"),
        {"name": "g", "clientData": {"color": "blue", "icon": None, "new": 1}},
        auth=me.session,
    )
    assert (reply.status, reply.body) == (200, {})
    [after] = (await me.folders()).body
    assert after["name"] == "g"
    assert after["clientData"] == {"color": "blue", "new": 1}
    assert after["hidden"] is False
    assert after["modified"] >= before["modified"]
    reply = await api.put(me.path(f"/folders/{f}"), {"hidden": True}, auth=me.session)
    assert reply.status == 200
    assert (await me.folders()).body == []


async def test_update_answers_404_for_an_unknown_folder_and_refuses_a_sibling_name(
    api: Api,
) -> None:
    me = await owner(api)
    a = await me.folder("a")
    await me.folder("b")
    reply = await api.put(me.path("/folders/nope"), {"name": "z"}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_FOLDER")
    reply = await api.put(me.path(f"/folders/{a}"), {"name": "b"}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "ITEM_NAME_ALREADY_EXISTS")


async def test_update_with_a_parent_id_moves_the_folder(api: Api) -> None:
    me = await owner(api)
    a = await me.folder("a")
    b = await me.folder("b")
    reply = await api.put(me.path(f"/folders/{b}"), {"parentId": a}, auth=me.session)
    assert reply.status == 200
    assert names((await me.folders()).body) == [("a", ["b"])]
    reply = await api.put(me.path(f"/folders/{b}"), {"parentId": None}, auth=me.session)
    assert names((await me.folders()).body) == ["a", "b"]


async def test_update_refuses_moves_under_a_descendant_or_an_unknown_parent(api: Api) -> None:
    me = await owner(api)
    a = await me.folder("a")
    b = await me.folder("b", parent=a)
    reply = await api.put(me.path(f"/folders/{a}"), {"parentId": b}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    reply = await api.put(me.path(f"/folders/{a}"), {"parentId": "ghost"}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "UNKNOWN_FOLDER")
    reply = await me.folders("?state=everything")
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")


async def test_move_relocates_a_folder_with_its_subtree(api: Api) -> None:
    me = await owner(api)
    a = await me.folder("a")
    b = await me.folder("b")
    c = await me.folder("c", parent=b)
    await me.folder("d", parent=c)
    reply = await api.post(me.path(f"/folders/{c}/move"), {"parentId": a}, auth=me.session)
    assert (reply.status, reply.body) == (200, {})
    assert names((await me.folders()).body) == [("a", [("c", ["d"])]), "b"]
    reply = await api.post(me.path(f"/folders/{c}/move"), {"parentId": None}, auth=me.session)
    assert reply.status == 200
    assert names((await me.folders()).body) == ["a", "b", ("c", ["d"])]


async def test_move_refuses_unknown_parents_cycles_and_name_clashes(api: Api) -> None:
    me = await owner(api)
    a = await me.folder("a")
    b = await me.folder("b", parent=a)
    await me.folder("b")

    async def move(folder: str, body: object) -> tuple[int, str]:
        reply = await api.post(me.path(f"/folders/{folder}/move"), body, auth=me.session)
        return reply.status, reply.body["id"]

    assert await move(a, {"parentId": "ghost"}) == (400, "UNKNOWN_FOLDER")
    assert await move(a, {"parentId": b}) == (400, "INVALID_OPERATION")
    assert await move(a, {"parentId": a}) == (400, "INVALID_OPERATION")
    assert await move(b, {"parentId": None}) == (400, "ITEM_NAME_ALREADY_EXISTS")
    assert await move(b, {}) == (400, "INVALID_PARAMETERS_FORMAT")
    assert await move("ghost", {"parentId": None}) == (404, "UNKNOWN_FOLDER")
    assert names((await me.folders()).body) == [("a", ["b"]), "b"]


async def test_delete_trashes_first_then_deletes_with_descendants(api: Api) -> None:
    me = await owner(api)
    a = await me.folder("a")
    await me.folder("kid", parent=a)
    assert (await api.delete(me.path(f"/folders/{a}"), auth=me.session)).body == {}
    assert names((await me.folders("?state=all")).body) == [("a", ["kid"])]
    assert (await api.delete(me.path(f"/folders/{a}"), auth=me.session)).status == 200
    assert (await me.folders("?state=all")).body == []
    reply = await api.delete(me.path(f"/folders/{a}"), auth=me.session)
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_FOLDER")


async def _trashed_pair_with_events(me: Owner) -> tuple[str, str, str]:
    """parent > doomed > kid, doomed trashed; one event in doomed, one in kid."""
    parent = await me.folder("parent")
    doomed = await me.folder("doomed", parent=parent)
    kid = await me.folder("kid", parent=doomed)
    assert (await me.event(folderId=doomed, time=100.0)).status == 201
    assert (await me.event(folderId=kid, time=200.0, duration=10.0)).status == 201
    await me.api.delete(me.path(f"/folders/{doomed}"), auth=me.session)
    return parent, doomed, kid


async def test_deleting_a_folder_with_events_needs_merge_events_with_parent(api: Api) -> None:
    me = await owner(api)
    _, doomed, _ = await _trashed_pair_with_events(me)
    reply = await api.delete(me.path(f"/folders/{doomed}"), auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "MISSING_PARAMETER")
    assert len((await me.folders("?state=all")).body[0]["children"]) == 1
    reply = await api.delete(
        me.path(f"/folders/{doomed}?mergeEventsWithParent=maybe"), auth=me.session
    )
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")


async def test_merge_true_moves_the_events_to_the_parent(api: Api) -> None:
    me = await owner(api)
    parent, doomed, _ = await _trashed_pair_with_events(me)
    changes = await record_changes(me)
    query = "?mergeEventsWithParent=true"
    assert (await api.delete(me.path(f"/folders/{doomed}{query}"), auth=me.session)).status == 200
    assert [e["folderId"] for e in await me.all_events()] == [parent, parent]
    assert names((await me.folders("?state=all")).body) == ["parent"]
    assert set(changes.kinds()) == {(FOLDERS_CHANGED, me.channel), (EVENTS_CHANGED, me.channel)}


async def test_merge_true_on_a_root_folder_leaves_the_events_with_no_folder(api: Api) -> None:
    me = await owner(api)
    root = await me.folder("root")
    await me.event(folderId=root)
    await api.delete(me.path(f"/folders/{root}"), auth=me.session)
    query = "?mergeEventsWithParent=true"
    assert (await api.delete(me.path(f"/folders/{root}{query}"), auth=me.session)).status == 200
    assert [e["folderId"] for e in await me.all_events()] == [None]


async def test_merge_false_deletes_the_events_and_their_files(api: Api, database_url: str) -> None:
    me = await owner(api)
    parent, doomed, _ = await _trashed_pair_with_events(me)
    kept = (await me.event(folderId=parent, time=50.0)).body["id"]
    ids = [e["id"] for e in await me.all_events() if e["id"] != kept]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO attachment_chunks SELECT user_id, channel_id, id, 'file', 0, 'x'::bytea"
            " FROM events WHERE id = ANY($1::text[])",
            ids,
        )
        query = "?mergeEventsWithParent=false"
        reply = await api.delete(me.path(f"/folders/{doomed}{query}"), auth=me.session)
        assert reply.status == 200
        chunks = await conn.fetchval(
            "SELECT count(*) FROM attachment_chunks WHERE event_id = ANY($1::text[])", ids
        )
    finally:
        await conn.close()
    assert chunks == 0
    assert [e["id"] for e in await me.all_events()] == [kept]


async def test_time_count_sums_periods_of_the_folder_and_its_descendants(api: Api) -> None:
    me = await owner(api)
    top = await me.folder("top")
    sub = await me.folder("sub", parent=top)
    other = await me.folder("other")
    await me.event(folderId=top, time=1000.0, duration=60.0)
    await me.event(folderId=sub, time=2000.0, duration=30.0)
    await me.event(folderId=sub, time=500.0, duration=999.0)  # before the base
    await me.event(folderId=sub, time=3000.0)  # a mark: no duration
    trashed = (await me.event(folderId=top, time=4000.0, duration=7.0)).body["id"]
    await api.delete(me.path(f"/events/{trashed}"), auth=me.session)
    started = time.time() - 100
    await me.start(folderId=other, time=started)
    tree = (await me.folders("?timeCountBase=900")).body
    counts = {f["name"]: f["timeCount"] for f in tree}
    assert counts["top"] == 90.0
    assert tree[1]["children"][0]["timeCount"] == 30.0
    assert 100 <= counts["other"] < 160
    assert "timeCount" not in (await me.folders()).body[0]


async def test_folder_writes_notify_folders_changed_with_the_channel_id(api: Api) -> None:
    me = await owner(api)
    changes = await record_changes(me)
    f = await me.folder("a")
    await api.put(me.path(f"/folders/{f}"), {"name": "b"}, auth=me.session)
    await api.delete(me.path(f"/folders/{f}"), auth=me.session)
    assert changes.kinds() == [(FOLDERS_CHANGED, me.channel)] * 3
