"""Attachments (API.md §6): multipart create, add, download, readToken, delete, limits."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from urllib.parse import quote

import aiohttp
import asyncpg
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

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


def raw_multipart(name: str, data: bytes, ctype: str) -> tuple[bytes, str]:
    """A multipart body as a hostile client writes it: the file name as RFC 5987
    ``filename*`` (percent-encoded UTF-8: any character gets through, controls included)."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="event"\r\n'
        f"Content-Type: application/json\r\n\r\n{{}}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
        f" filename*=UTF-8''{quote(name, safe='')}\r\nContent-Type: {ctype}\r\n\r\n"
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def upload(api: Api, username: str, auth: str, ch: str, name: str, data: bytes, ctype: str):
    """Create an event with one file; (event id, its attachment as the API lists it)."""
    body, content_type = raw_multipart(name, data, ctype)
    reply = await api.post(
        f"/{username}/{ch}/events",
        data=body,
        headers={"Content-Type": content_type},
        auth=auth,
    )
    assert reply.status == 201, reply
    event = await get_event(api, username, auth, ch, reply.body["id"])
    [attachment] = event["attachments"]
    return event["id"], attachment


DOCUMENT_TYPES = [
    ("page.html", "text/html"),
    ("page.html", "text/html; charset=utf-8"),
    ("picture.svg", "image/svg+xml"),
    ("page.xhtml", "application/xhtml+xml"),
    ("data.xml", "application/xml"),
    ("data.xml", "text/xml"),
    ("report.pdf", "application/pdf"),
    ("script.js", "text/javascript"),
    ("style.css", "text/css"),
    ("thing.bin", "application/x-made-up"),
    ("anything", "not a media type"),
    ("page.html", "TEXT/HTML"),
]


async def test_documents_and_unknown_types_are_served_as_sandboxed_downloads(api: Api) -> None:
    """§6.4: nothing a browser would render as a document is served inline."""
    username, session, ch = await setup(api)
    body = b"<html><script>document.title='pwned'</script></html>"
    for name, ctype in DOCUMENT_TYPES:
        event_id, attachment = await upload(api, username, session, ch, name, body, ctype)
        base = f"/{username}/{ch}/events/{event_id}/{name}"
        for reply in (
            await api.get(base, auth=session),
            await api.get(f"{base}?readToken={attachment['readToken']}"),
        ):
            assert reply.status == 200, (ctype, reply)
            assert reply.body == body
            headers = reply.headers
            assert headers["Content-Disposition"].startswith("attachment;"), (ctype, headers)
            assert headers["X-Content-Type-Options"] == "nosniff"
            policy = [p.strip() for p in headers["Content-Security-Policy"].split(";")]
            assert "sandbox" in policy, policy
            assert "default-src 'none'" in policy, policy


async def test_images_media_and_plain_text_may_be_inline(api: Api) -> None:
    username, session, ch = await setup(api)
    for name, ctype in (
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.mp3", "audio/mpeg"),
        ("a.mp4", "video/mp4"),
        ("a.txt", "text/plain"),
        ("b.txt", "text/plain; charset=UTF-8"),
    ):
        event_id, _ = await upload(api, username, session, ch, name, b"bytes", ctype)
        reply = await api.get(f"/{username}/{ch}/events/{event_id}/{name}", auth=session)
        assert reply.headers["Content-Disposition"].startswith("inline;"), ctype
        assert reply.headers["Content-Type"] == ctype.lower()
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in reply.headers["Content-Security-Policy"]


async def test_a_malformed_content_type_is_stored_as_octet_stream(api: Api) -> None:
    username, session, ch = await setup(api)
    for ctype in ("text/html, image/png", "image/png\ttext/html", "<b>/x", "image/"):
        _, attachment = await upload(api, username, session, ch, "f", b"x", ctype)
        assert attachment["type"] == "application/octet-stream", ctype


async def test_file_names_are_cleaned_at_upload(api: Api) -> None:
    username, session, ch = await setup(api)
    long_stem = "é" * 300
    cases = [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("a\u2066b\u2069c\u200fd.txt", "abcd.txt"),
        ("bell\x07tab\tnl\nname.txt", "belltabnlname.txt"),
        ("zero\u200bwidth\ufeff.txt", "zerowidth.txt"),
        ("  spaced  .  ", "spaced"),
        ("..", "file"),
        ("/", "file"),
        ("cafe\u0301.txt", "café.txt"),  # NFC
    ]
    for raw, cleaned in cases:
        _, attachment = await upload(api, username, session, ch, raw, b"x", "text/plain")
        assert attachment["fileName"] == cleaned, raw
    _, attachment = await upload(
        api, username, session, ch, long_stem + ".jpeg", b"x", "image/jpeg"
    )
    name = attachment["fileName"]
    assert len(name.encode()) <= 255 and name.endswith(".jpeg") and name.startswith("éé"), name


async def test_content_disposition_carries_any_name_safely(api: Api) -> None:
    """RFC 6266: an ASCII fallback in filename="..." and the exact name in filename*."""
    username, session, ch = await setup(api)
    name = 'résumé "final"; x=1 %41 ✓.txt'
    event_id, _ = await upload(api, username, session, ch, name, b"x", "text/plain")
    reply = await api.get(f"/{username}/{ch}/events/{event_id}/{quote(name)}", auth=session)
    assert reply.status == 200, reply
    header = reply.headers["Content-Disposition"]
    assert header == (
        "inline; filename=\"r_sum_ _final_; x=1 _41 _.txt\"; filename*=UTF-8''"
        + quote(name, safe="")
    ), header
    kind, params = parse_content_disposition(header)
    assert (kind, content_disposition_filename(params, "filename")) == ("inline", name)


async def test_a_download_is_revalidated_not_cached(api: Api) -> None:
    username, session, ch = await setup(api)
    event_id, attachment = await upload(api, username, session, ch, "a.png", b"png", "image/png")
    url = f"/{username}/{ch}/events/{event_id}/a.png?readToken={attachment['readToken']}"
    first = await api.get(url)
    assert first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    again = await api.get(url, headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"]
