"""Attachments (API.md §6): multipart create, add, download, readToken, delete, limits."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import aiohttp
import asyncpg

from tests.conftest import Api, AppFactory


def multipart(event: dict | None, files: list[tuple[str, bytes, str]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if event is not None:
        form.add_field(
            "event", json.dumps(event), content_type="application/json", filename="event.json"
        )
    for name, data, ctype in files:
        form.add_field("file", data, filename=name, content_type=ctype)
    return form


def integrity(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


async def stored_chunks(database_url: str, event_id: str) -> int:
    """Attachment chunks left in the database for an event id (read directly)."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM attachment_chunks WHERE event_id = $1", event_id
            )
        )
    finally:
        await conn.close()


async def setup(api: Api) -> tuple[str, str, str]:
    username, session = await api.user()
    return username, session, await api.channel(username, session)


async def get_event(api: Api, username: str, session: str, ch: str, event_id: str) -> dict:
    events = (await api.get(f"/{username}/{ch}/events?state=all", auth=session)).body
    [event] = [e for e in events if e["id"] == event_id]
    return event


async def test_create_with_files_then_download_byte_identical(api: Api) -> None:
    username, session, ch = await setup(api)
    photo = os.urandom(600_000)  # several storage chunks
    note = b"hello attachments"
    reply = await api.post(
        f"/{username}/{ch}/events",
        data=multipart(
            {"value": {"type": "picture:attached", "value": "x"}},
            [("photo.jpg", photo, "image/jpeg"), ("note.txt", note, "text/plain")],
        ),
        auth=session,
    )
    assert reply.status == 201, reply
    event = await get_event(api, username, session, ch, reply.body["id"])
    by_name = {a["fileName"]: a for a in event["attachments"]}
    assert by_name["photo.jpg"]["size"] == len(photo)
    assert by_name["photo.jpg"]["integrity"] == integrity(photo)
    assert by_name["photo.jpg"]["type"] == "image/jpeg"
    assert len(by_name["photo.jpg"]["readToken"]) >= 40

    download = await api.get(f"/{username}/{ch}/events/{event['id']}/photo.jpg", auth=session)
    assert download.status == 200
    assert download.body == photo
    assert download.headers["Content-Type"] == "image/jpeg"
    assert download.headers["Content-Length"] == str(len(photo))
    assert "photo.jpg" in download.headers["Content-Disposition"]


async def test_read_token_works_without_a_credential_and_only_for_its_file(api: Api) -> None:
    username, session, ch = await setup(api)
    reply = await api.post(
        f"/{username}/{ch}/events",
        data=multipart(
            {}, [("a.png", b"png-bytes", "image/png"), ("b.png", b"other", "image/png")]
        ),
        auth=session,
    )
    event = await get_event(api, username, session, ch, reply.body["id"])
    a, _b = sorted(event["attachments"], key=lambda x: x["fileName"])
    base = f"/{username}/{ch}/events/{event['id']}"
    ok = await api.get(f"{base}/a.png?readToken={a['readToken']}")
    assert ok.status == 200
    assert ok.body == b"png-bytes"
    wrong = await api.get(f"{base}/b.png?readToken={a['readToken']}")
    assert wrong.status == 401
    assert wrong.body["id"] == "INVALID_TOKEN"
    assert (await api.get(f"{base}/a.png")).status == 401


async def test_add_attachments_keeps_existing_files(api: Api) -> None:
    username, session, ch = await setup(api)
    created = await api.post(
        f"/{username}/{ch}/events",
        data=multipart({}, [("one.txt", b"1", "text/plain")]),
        auth=session,
    )
    event_id = created.body["id"]
    reply = await api.post(
        f"/{username}/{ch}/events/{event_id}",
        data=multipart(None, [("two.txt", b"22", "text/plain")]),
        auth=session,
    )
    assert reply.status == 200, reply
    assert sorted(a["fileName"] for a in reply.body["attachments"]) == ["one.txt", "two.txt"]
    again = await api.post(
        f"/{username}/{ch}/events/{event_id}",
        data=multipart(None, [("two.txt", b"x", "text/plain")]),
        auth=session,
    )
    assert again.status == 400
    assert again.body["id"] == "ITEM_NAME_ALREADY_EXISTS"


async def test_delete_attachment_removes_the_file(api: Api) -> None:
    username, session, ch = await setup(api)
    created = await api.post(
        f"/{username}/{ch}/events",
        data=multipart({}, [("f.txt", b"data", "text/plain")]),
        auth=session,
    )
    base = f"/{username}/{ch}/events/{created.body['id']}"
    assert (await api.delete(f"{base}/f.txt", auth=session)).status == 200
    missing = await api.get(f"{base}/f.txt", auth=session)
    assert missing.status == 404
    assert missing.body["id"] == "UNKNOWN_ATTACHMENT"
    event = await get_event(api, username, session, ch, created.body["id"])
    assert event["attachments"] == []
    gone = await api.delete(f"{base}/f.txt", auth=session)
    assert gone.body["id"] == "UNKNOWN_ATTACHMENT"


async def test_too_large_upload_is_refused_and_leaves_nothing(
    make_api: AppFactory, database_url: str
) -> None:
    api = await make_api(max_attachment_size=100_000)
    username, session, ch = await setup(api)
    reply = await api.post(
        f"/{username}/{ch}/events",
        data=multipart(
            {"id": "big-one"}, [("big.bin", os.urandom(300_000), "application/octet-stream")]
        ),
        auth=session,
    )
    assert reply.status == 413
    assert reply.body["id"] == "PAYLOAD_TOO_LARGE"
    events = (await api.get(f"/{username}/{ch}/events?state=all", auth=session)).body
    assert events == []
    assert await stored_chunks(database_url, "big-one") == 0


async def test_multipart_with_two_json_parts_is_refused(api: Api) -> None:
    username, session, ch = await setup(api)
    form = multipart({}, [])
    form.add_field("again", "{}", content_type="application/json", filename="e2.json")
    reply = await api.post(f"/{username}/{ch}/events", data=form, auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_REQUEST_STRUCTURE"


async def test_deleting_an_event_deletes_its_files(api: Api, database_url: str) -> None:
    username, session, ch = await setup(api)
    created = await api.post(
        f"/{username}/{ch}/events",
        data=multipart({"id": "doomed"}, [("f.txt", b"data", "text/plain")]),
        auth=session,
    )
    assert created.status == 201
    await api.delete(f"/{username}/{ch}/events/doomed", auth=session)  # trash
    await api.delete(f"/{username}/{ch}/events/doomed", auth=session)  # delete
    assert await stored_chunks(database_url, "doomed") == 0


async def test_attachment_permissions_follow_the_event_folder(api: Api) -> None:
    username, session, ch = await setup(api)
    created = await api.post(
        f"/{username}/{ch}/events",
        data=multipart({}, [("f.txt", b"data", "text/plain")]),
        auth=session,
    )
    base = f"/{username}/{ch}/events/{created.body['id']}"
    reader = await api.shared_token(username, session, [{"channelId": ch, "level": "read"}])
    assert (await api.get(f"{base}/f.txt", auth=reader)).status == 200
    denied = await api.delete(f"{base}/f.txt", auth=reader)
    assert denied.status == 403
    other = await api.channel(username, session, name="other")
    outsider = await api.shared_token(username, session, [{"channelId": other, "level": "read"}])
    assert (await api.get(f"{base}/f.txt", auth=outsider)).status == 403
    adder = await api.post(base, data=multipart(None, [("g.txt", b"x", "text/plain")]), auth=reader)
    assert adder.status == 403
