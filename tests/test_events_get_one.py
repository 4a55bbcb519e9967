"""events.getOne (API.md §6): one event by id, over HTTP, Socket.IO and in a batch."""

from __future__ import annotations

import aiohttp
import orjson

from tests.activity import owner
from tests.conftest import Api
from tests.sockets import connect


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


async def test_get_one_answers_the_event_as_events_get_lists_it(api: Api) -> None:
    me = await owner(api)
    created = await me.event(id="note-1", value={"type": "note/txt", "value": "hi"}, tags=["a"])
    assert created.status == 201, created

    reply = await api.get(me.path("/events/note-1"), auth=me.session)

    assert reply.status == 200, reply
    [listed] = (await me.events()).body
    assert reply.body == listed
    assert reply.body["value"] == {"type": "note/txt", "value": "hi"}


async def test_get_one_of_an_unknown_event_is_404_unknown_event(api: Api) -> None:
    me = await owner(api)
    reply = await api.get(me.path("/events/nothing-here"), auth=me.session)
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_EVENT")


async def test_get_one_shows_a_trashed_event_as_trashed(api: Api) -> None:
    me = await owner(api)
    await me.event(id="gone")
    assert (await api.delete(me.path("/events/gone"), auth=me.session)).status == 200
    reply = await api.get(me.path("/events/gone"), auth=me.session)
    assert reply.status == 200, reply
    assert reply.body["trashed"] is True


async def test_get_one_signs_attachments_for_the_reader(api: Api) -> None:
    me = await owner(api)
    form = aiohttp.FormData()
    form.add_field("event", orjson.dumps({"id": "pic"}).decode(), content_type="application/json")
    form.add_field("file", b"bytes", filename="a.txt", content_type="text/plain")
    created = await api.post(me.path("/events"), data=form, auth=me.session)
    assert created.status == 201, created
    reader = await me.token([{"level": "read"}])

    reply = await api.get(me.path("/events/pic"), auth=reader)

    assert reply.status == 200, reply
    [attachment] = reply.body["attachments"]
    download = await api.get(me.path(f"/events/pic/a.txt?readToken={attachment['readToken']}"))
    assert (download.status, download.body) == (200, b"bytes")


async def test_get_one_refuses_an_event_outside_a_folder_token(api: Api) -> None:
    me = await owner(api)
    mine = await me.folder("Mine")
    other = await me.folder("Other")
    await me.event(id="in-mine", folderId=mine)
    await me.event(id="in-other", folderId=other)
    token = await me.token(
        [{"level": "read", "folderPermissions": [{"folderId": mine, "level": "read"}]}]
    )

    allowed = await api.get(me.path("/events/in-mine"), auth=token)
    refused = await api.get(me.path("/events/in-other"), auth=token)
    unknown = await api.get(me.path("/events/in-mine"), auth="not-a-token")

    assert allowed.status == 200, allowed
    assert (refused.status, refused.body["id"]) == (403, "FORBIDDEN")
    assert (unknown.status, unknown.body["id"]) == (401, "INVALID_TOKEN")


async def test_get_one_answers_the_same_over_socketio_and_in_a_batch(api: Api) -> None:
    me = await owner(api)
    await me.event(id="same", tags=["x"])
    over_http = (await api.get(me.path("/events/same"), auth=me.session)).body
    params = {"channelId": me.channel, "id": "same"}

    async with connect(url(api), me.username, me.session) as sock:
        error, over_socket = await sock.call("events.getOne", params)
        missing, _ = await sock.call("events.getOne", {**params, "id": "nope"})
    batch = await api.post(
        f"/{me.username}/", [{"method": "events.getOne", "params": params}], auth=me.session
    )

    assert error is None and over_socket == over_http
    assert missing["id"] == "UNKNOWN_EVENT"
    assert batch.body == [{"result": over_http}]
