"""readTokens (API.md §6.4) and the accessIds they are bound to (API.md §12).

A readToken is ``{accessId}-{signature}`` for the credential that read the event; it works
without a credential only while that credential exists and still reads the event, and
while the event is out of the trash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pryvrt.app import SERVICES_KEY
from pryvrt.storage.database import apply_schema
from tests.conftest import Api
from tests.test_attachments import multipart

Refused = (401, "INVALID_TOKEN")


@dataclass
class Shared:
    """A user, a channel with one event carrying one file, and a read token on the channel."""

    api: Api
    username: str
    session: str
    channel: str
    event: str
    reader: str  # a shared token with read on the channel

    @property
    def file_path(self) -> str:
        return f"/{self.username}/{self.channel}/events/{self.event}/note.txt"

    async def read_token(self, credential: str) -> str:
        """The file's readToken as ``credential`` is shown it in events.get."""
        reply = await self.api.get(
            f"/{self.username}/{self.channel}/events?state=all", auth=credential
        )
        assert reply.status == 200, reply
        [event] = [e for e in reply.body if e["id"] == self.event]
        return str(event["attachments"][0]["readToken"])

    async def download(self, read_token: str) -> tuple[int, Any]:
        reply = await self.api.get(f"{self.file_path}?readToken={read_token}")
        if reply.status == 200:
            return 200, reply.body
        return reply.status, reply.body["id"]

    async def tokens(self) -> list[dict[str, Any]]:
        reply = await self.api.get(f"/{self.username}/tokens", auth=self.session)
        assert reply.status == 200, reply
        return list(reply.body)


async def shared(api: Api, folder: bool = False) -> Shared:
    username, session = await api.user()
    channel = await api.channel(username, session)
    fields: dict[str, Any] = {}
    if folder:
        reply = await api.post(f"/{username}/{channel}/folders", {"name": "f"}, auth=session)
        fields["folderId"] = reply.body["id"]
    reply = await api.post(
        f"/{username}/{channel}/events",
        data=multipart(fields, [("note.txt", b"hello", "text/plain")]),
        auth=session,
    )
    assert reply.status == 201, reply
    reader = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
    return Shared(api, username, session, channel, reply.body["id"], reader)


async def test_a_read_token_is_the_access_id_of_its_reader_and_a_signature(api: Api) -> None:
    s = await shared(api)
    [token] = await s.tokens()
    access_id = token["accessId"]
    assert access_id and "-" not in access_id and access_id != token["id"]
    by_token = await s.read_token(s.reader)
    prefix, _, signature = by_token.partition("-")
    assert prefix == access_id and len(signature) >= 43
    assert by_token == await s.read_token(s.reader)  # stable for one reader
    by_session = await s.read_token(s.session)
    other_session = await api.login(s.username)
    by_other_session = await s.read_token(other_session)
    assert len({by_token, by_session, by_other_session}) == 3  # one per reader
    for read_token in (by_token, by_session, by_other_session):
        assert await s.download(read_token) == (200, b"hello")
    assert token["id"] not in by_token and s.session not in by_session


async def test_access_ids_are_public_stable_and_distinct(api: Api) -> None:
    s = await shared(api)
    await api.shared_token(s.username, s.session, [])
    await api.personal_token(s.username, s.session)
    first = await s.tokens()
    again = await s.tokens()
    assert [t["accessId"] for t in first] == [t["accessId"] for t in again]
    assert len({t["accessId"] for t in first}) == len(first) == 3
    updated = await api.put(f"/{s.username}/tokens/{s.reader}", {"name": "new"}, auth=s.session)
    assert updated.status == 200, updated
    [renamed] = [t for t in await s.tokens() if t["id"] == s.reader]
    assert renamed["accessId"] == next(t["accessId"] for t in first if t["id"] == s.reader)


async def test_a_read_token_stops_when_its_token_is_deleted(api: Api) -> None:
    s = await shared(api)
    read_token = await s.read_token(s.reader)
    assert await s.download(read_token) == (200, b"hello")
    assert (await api.delete(f"/{s.username}/tokens/{s.reader}", auth=s.session)).status == 200
    assert await s.download(read_token) == Refused
    # Other readers' links are untouched.
    assert await s.download(await s.read_token(s.session)) == (200, b"hello")


async def test_a_read_token_stops_when_its_session_ends(api: Api) -> None:
    s = await shared(api)
    session = await api.login(s.username)
    read_token = await s.read_token(session)
    assert await s.download(read_token) == (200, b"hello")
    assert (await api.post(f"/{s.username}/logout", auth=session)).status == 200
    assert await s.download(read_token) == Refused


async def test_a_read_token_stops_when_its_session_expires(api: Api) -> None:
    s = await shared(api)
    session = await api.login(s.username)
    read_token = await s.read_token(session)
    pool = api.client.app[SERVICES_KEY].storage.pool
    await pool.execute("UPDATE sessions SET expires = 1 WHERE id = $1", session)
    assert await s.download(read_token) == Refused


async def test_a_read_token_stops_when_the_event_is_trashed_or_deleted(api: Api) -> None:
    s = await shared(api)
    read_token = await s.read_token(s.reader)
    event_path = f"/{s.username}/{s.channel}/events/{s.event}"
    assert (await api.delete(event_path, auth=s.session)).status == 200  # trashed
    assert await s.download(read_token) == Refused
    # The credential itself still reads the trashed event's file.
    assert (await api.get(s.file_path, auth=s.reader)).status == 200
    restored = await api.put(event_path, {"trashed": False}, auth=s.session)
    assert restored.status == 200, restored
    assert await s.download(read_token) == (200, b"hello")
    await api.delete(event_path, auth=s.session)
    assert (await api.delete(event_path, auth=s.session)).status == 200  # deleted
    assert await s.download(read_token) == Refused


async def test_a_read_token_stops_when_the_channel_or_folder_is_trashed(api: Api) -> None:
    s = await shared(api, folder=True)
    read_token = await s.read_token(s.reader)
    reply = await api.get(f"/{s.username}/{s.channel}/folders", auth=s.session)
    [folder] = reply.body
    folder_path = f"/{s.username}/{s.channel}/folders/{folder['id']}"
    assert (await api.delete(folder_path, auth=s.session)).status == 200
    assert await s.download(read_token) == Refused
    assert (await api.put(folder_path, {"trashed": False}, auth=s.session)).status == 200
    assert await s.download(read_token) == (200, b"hello")
    channel_path = f"/{s.username}/channels/{s.channel}"
    assert (await api.delete(channel_path, auth=s.session)).status == 200
    assert await s.download(read_token) == Refused


async def test_a_read_token_stops_when_its_credential_can_no_longer_read_the_event(
    api: Api,
) -> None:
    s = await shared(api, folder=True)
    read_token = await s.read_token(s.reader)
    other = await api.channel(s.username, s.session)
    for permissions in (
        [{"channelId": other, "level": "read"}],  # the channel taken away
        [{"channelId": s.channel, "level": "read", "folderPermissions": []}],  # no folder
        [  # only the events with no folder: not this one's
            {
                "channelId": s.channel,
                "level": "read",
                "folderPermissions": [{"folderId": None, "level": "read"}],
            }
        ],
    ):
        reply = await api.put(
            f"/{s.username}/tokens/{s.reader}", {"permissions": permissions}, auth=s.session
        )
        assert reply.status == 200, reply
        assert await s.download(read_token) == Refused, permissions
    back = [{"channelId": "*", "level": "contribute"}]
    reply = await api.put(f"/{s.username}/tokens/{s.reader}", {"permissions": back}, auth=s.session)
    assert reply.status == 200, reply
    assert await s.download(read_token) == (200, b"hello")


async def test_a_read_token_opens_nothing_but_its_own_file(api: Api) -> None:
    s = await shared(api)
    read_token = await s.read_token(s.reader)
    access_id, _, signature = read_token.partition("-")
    [token] = await s.tokens()
    session_token = await s.read_token(s.session)
    forged = [
        session_token.partition("-")[0] + "-" + signature,  # another reader's accessId
        access_id + "-" + session_token.partition("-")[2],  # another reader's signature
        access_id + "-" + signature[:-1] + ("A" if signature[-1] != "A" else "B"),
        access_id,
        "-" + signature,
        access_id + "-",
        token["id"],  # the secret token itself is no readToken
        "",
    ]
    for bad in forged:
        assert await s.download(bad) == Refused, bad
    # Same name in another event, another file of the same event, another user.
    again = await api.post(
        f"/{s.username}/{s.channel}/events",
        data=multipart({}, [("note.txt", b"other", "text/plain")]),
        auth=s.session,
    )
    other_path = f"/{s.username}/{s.channel}/events/{again.body['id']}/note.txt"
    assert (await api.get(f"{other_path}?readToken={read_token}")).status == 401
    added = await api.post(
        f"/{s.username}/{s.channel}/events/{s.event}",
        data=multipart(None, [("second.txt", b"2", "text/plain")]),
        auth=s.session,
    )
    assert added.status == 200, added
    second = f"/{s.username}/{s.channel}/events/{s.event}/second.txt?readToken={read_token}"
    assert (await api.get(second)).status == 401


async def test_a_file_added_again_under_its_name_has_new_read_tokens(api: Api) -> None:
    s = await shared(api)
    read_token = await s.read_token(s.reader)
    event_path = f"/{s.username}/{s.channel}/events/{s.event}"
    assert (await api.delete(f"{event_path}/note.txt", auth=s.session)).status == 200
    added = await api.post(
        event_path, data=multipart(None, [("note.txt", b"new", "text/plain")]), auth=s.session
    )
    assert added.status == 200, added
    assert await s.download(read_token) == Refused
    assert await s.download(await s.read_token(s.reader)) == (200, b"new")


async def test_every_answer_with_an_event_carries_the_callers_read_tokens(api: Api) -> None:
    s = await shared(api)
    expected = await s.read_token(s.reader)
    added = await api.post(
        f"/{s.username}/{s.channel}/events/{s.event}",
        data=multipart(None, [("more.txt", b"m", "text/plain")]),
        auth=s.session,
    )
    by_name = {a["fileName"]: a["readToken"] for a in added.body["attachments"]}
    assert by_name["note.txt"] == await s.read_token(s.session)
    assert await s.download(expected) == (200, b"hello")
    calls = [{"method": "events.get", "params": {"channelId": s.channel}}]
    batch = await api.post(f"/{s.username}/", calls, auth=s.reader)
    [item] = batch.body
    [event] = [e for e in item["result"] if e["id"] == s.event]
    assert event["attachments"][0]["readToken"] == expected


async def test_running_periods_carry_read_tokens(api: Api) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    folder = await api.post(f"/{username}/{channel}/folders", {"name": "f"}, auth=session)
    started = await api.post(
        f"/{username}/{channel}/events/start", {"folderId": folder.body["id"]}, auth=session
    )
    event_path = f"/{username}/{channel}/events/{started.body['id']}"
    added = await api.post(
        event_path, data=multipart(None, [("a.txt", b"a", "text/plain")]), auth=session
    )
    assert added.status == 200, added
    running = await api.get(f"/{username}/{channel}/events/running", auth=session)
    [event] = running.body
    read_token = event["attachments"][0]["readToken"]
    assert (await api.get(f"{event_path}/a.txt?readToken={read_token}")).status == 200


async def test_schema_v4_gives_existing_credentials_access_ids_and_drops_stored_read_tokens(
    api: Api,
) -> None:
    """Applying the schema to a version-3 database: every token and session gets its own
    accessId, and the readTokens v3 stored in events are removed."""
    s = await shared(api)
    await api.shared_token(s.username, s.session, [])
    pool = api.client.app[SERVICES_KEY].storage.pool
    old = [{"id": "a1", "fileName": "x.txt", "type": "text/plain", "size": 1,
            "integrity": "sha256-x", "readToken": "stored-secret"}]  # fmt: skip
    async with pool.acquire() as conn:
        await conn.execute("UPDATE events SET attachments = $1 WHERE id = $2", old, s.event)
        for table in ("tokens", "sessions"):
            await conn.execute(f"DROP INDEX {table}_access_id")
            await conn.execute(f"ALTER TABLE {table} DROP COLUMN access_id")
        await conn.execute("UPDATE schema_version SET version = 3")
    await apply_schema(pool)
    for table in ("tokens", "sessions"):
        ids = await pool.fetch(f"SELECT access_id FROM {table}")
        assert len(ids) >= 2 and len({r["access_id"] for r in ids}) == len(ids), table
        assert all(len(r["access_id"]) == 32 for r in ids)
    stored = await pool.fetchrow("SELECT attachments, json FROM events WHERE id = $1", s.event)
    assert [set(a) for a in stored["attachments"]] == [
        {"id", "fileName", "type", "size", "integrity"}
    ]
    assert "stored-secret" not in stored["json"]
    assert orjson.loads(stored["json"])["attachments"] == stored["attachments"]
    assert await pool.fetchval("SELECT version FROM schema_version") >= 4
