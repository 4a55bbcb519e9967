"""Who did what (API.md §12): createdBy/modifiedBy name the accessId of the credential that
wrote, on every write path (HTTP, Socket.IO, a batch of calls, events.batch, an implicit
period stop, a folder merged away on delete, tokens), never a secret; rows from before
schema v6 say "system"."""

from __future__ import annotations

from typing import Any

from pryvrt.app import SERVICES_KEY
from pryvrt.storage.database import apply_schema
from tests.activity import owner
from tests.conftest import Api
from tests.sockets import connect


def url(api: Api) -> str:
    return str(api.client.make_url("/"))[:-1]


async def access_id_of(api: Api, username: str, session: str, token: str) -> str:
    reply = await api.get(f"/{username}/tokens", auth=session)
    assert reply.status == 200, reply
    return next(t["accessId"] for t in reply.body if t["id"] == token)


async def login_access_id(api: Api, username: str) -> tuple[str, str]:
    reply = await api.post(
        f"/{username}/login", {"userName": username, "password": api.passwords[username]}
    )
    assert reply.status == 200, reply
    return reply.body["sessionID"], reply.body["accessId"]


def by(item: dict[str, Any]) -> tuple[str, str]:
    return item["createdBy"], item["modifiedBy"]


async def test_a_session_and_a_token_are_named_by_their_access_ids_over_http(api: Api) -> None:
    me = await owner(api)
    session, session_id = await login_access_id(api, me.username)
    assert session_id not in (session, "system")
    token = await me.token([{"level": "manage"}])
    token_id = await access_id_of(api, me.username, session, token)
    # Channel: created by the session, updated by the token (manage on it).
    channel = await api.channel(me.username, session, id="attrib")
    reply = await api.put(f"/{me.username}/channels/{me.channel}", {"name": "N"}, auth=token)
    assert reply.status == 200, reply
    channels = {c["id"]: c for c in (await api.get(f"/{me.username}/channels", auth=session)).body}
    assert by(channels[channel]) == (session_id, session_id)
    assert channels[channel]["created"] == channels[channel]["modified"]
    assert channels[me.channel]["modifiedBy"] == token_id
    assert channels[me.channel]["createdBy"] != token_id
    # Folder: created by the token, renamed by the session.
    folder = await me.folder("f", auth=token)
    [node] = (await me.folders()).body
    assert by(node) == (token_id, token_id)
    reply = await api.put(me.path(f"/folders/{folder}"), {"name": "g"}, auth=session)
    assert reply.status == 200, reply
    [node] = (await me.folders()).body
    assert by(node) == (token_id, session_id)
    assert node["modified"] >= node["created"]
    # Event: created by the token, updated by the session, then trashed by the token.
    event = (await me.event(auth=token, folderId=folder)).body["id"]
    [stored] = await me.all_events()
    assert by(stored) == (token_id, token_id)
    reply = await api.put(me.path(f"/events/{event}"), {"tags": ["x"]}, auth=session)
    assert reply.status == 200, reply
    [stored] = await me.all_events()
    assert by(stored) == (token_id, session_id)
    reply = await api.delete(me.path(f"/events/{event}"), auth=token)
    assert reply.status == 200, reply
    [stored] = await me.all_events()
    assert stored["trashed"] and by(stored) == (token_id, token_id)


async def test_socket_calls_and_batches_of_calls_name_their_credential(api: Api) -> None:
    me = await owner(api)
    session, session_id = await login_access_id(api, me.username)
    token = await me.token([{"level": "contribute"}])
    token_id = await access_id_of(api, me.username, session, token)
    async with connect(url(api), me.username, token) as sock:
        error, _ = await sock.call("events.create", {"channelId": me.channel, "id": "by-socket"})
        assert error is None, error
    reply = await api.post(
        f"/{me.username}/",
        [
            {"method": "events.create", "params": {"channelId": me.channel, "id": "by-batch"}},
            {"method": "events.update", "params": {"channelId": me.channel, "id": "by-socket"}},
        ],
        auth=session,
    )
    assert reply.status == 200 and all("result" in r for r in reply.body), reply
    events = {e["id"]: e for e in await me.all_events()}
    assert by(events["by-socket"]) == (token_id, session_id)
    assert by(events["by-batch"]) == (session_id, session_id)


async def test_events_batch_and_an_implicit_stop_name_the_caller(api: Api) -> None:
    me = await owner(api)
    session, session_id = await login_access_id(api, me.username)
    token = await me.token([{"level": "contribute"}])
    token_id = await access_id_of(api, me.username, session, token)
    folder = await me.folder("f")
    running = await me.start(folderId=folder, time=1000.0, auth=session)
    assert running.status == 201, running
    # The token's batch holds a period after the running one: it stops it.
    reply = await api.post(
        me.path("/events/batch"),
        {
            "events": [
                {"clientId": "a", "time": 2000.0, "duration": 10.0, "folderId": folder},
                {"clientId": "b", "time": 3000.0},
            ]
        },
        auth=token,
    )
    assert reply.status == 200, reply
    assert reply.body["stoppedId"] == running.body["id"]
    assert all(by(e) == (token_id, token_id) for e in reply.body["addedEvents"])
    events = {e["id"]: e for e in await me.all_events()}
    assert by(events[running.body["id"]]) == (session_id, token_id)
    # events.start stops the running one too (a period started by the session, then one by
    # the token through events.start).
    second = await me.start(folderId=folder, time=5000.0, auth=session)
    third = await me.start(folderId=folder, time=6000.0, auth=token)
    assert third.body.get("stoppedId") == second.body["id"]
    events = {e["id"]: e for e in await me.all_events()}
    assert by(events[second.body["id"]]) == (session_id, token_id)
    # events.stop by the session.
    assert (await me.stop(auth=session)).body["stoppedId"] == third.body["id"]
    events = {e["id"]: e for e in await me.all_events()}
    assert by(events[third.body["id"]]) == (token_id, session_id)


async def test_a_folder_merged_away_on_delete_names_who_deleted_it(api: Api) -> None:
    me = await owner(api)
    session, session_id = await login_access_id(api, me.username)
    token = await me.token([{"level": "manage"}])
    token_id = await access_id_of(api, me.username, session, token)
    folder = await me.folder("f")
    event = (await me.event(folderId=folder, auth=session)).body["id"]
    for _ in range(2):  # trash, then delete for good merging its events into the root
        reply = await api.delete(
            me.path(f"/folders/{folder}?mergeEventsWithParent=true"), auth=token
        )
        assert reply.status == 200, reply
    [stored] = await me.all_events()
    assert stored["id"] == event and stored["folderId"] is None
    assert by(stored) == (session_id, token_id)


async def test_tokens_show_who_created_and_changed_them(api: Api) -> None:
    me = await owner(api)
    session, session_id = await login_access_id(api, me.username)
    personal = await api.personal_token(me.username, session)
    personal_id = await access_id_of(api, me.username, session, personal)
    shared = await me.token([{"level": "read"}])  # created by owner()'s session
    reply = await api.post(
        f"/{me.username}/tokens",
        {"name": "by-personal", "permissions": [{"channelId": me.channel, "level": "read"}]},
        auth=personal,
    )
    assert reply.status == 201, reply
    made = reply.body["id"]
    reply = await api.put(f"/{me.username}/tokens/{shared}", {"name": "renamed"}, auth=session)
    assert reply.status == 200, reply
    tokens = {t["id"]: t for t in (await api.get(f"/{me.username}/tokens", auth=session)).body}
    assert by(tokens[personal]) == (session_id, session_id)
    assert by(tokens[made]) == (personal_id, personal_id)
    assert tokens[shared]["modifiedBy"] == session_id
    assert tokens[shared]["createdBy"] not in (session_id, me.session, "system")


async def test_rows_from_before_v6_get_created_equal_modified_and_system(api: Api) -> None:
    """The migration of schema v6 fills rows written before it (here: a database set back
    to v5 by dropping the columns)."""
    me = await owner(api)
    folder = await me.folder("f")
    await me.event(folderId=folder, tags=["old"])
    await me.token([{"level": "read"}])
    pool = api.client.app[SERVICES_KEY].storage.pool
    for table in ("channels", "folders", "events", "tokens"):
        created = ", DROP COLUMN created" if table != "tokens" else ""
        await pool.execute(
            f"ALTER TABLE {table} DROP COLUMN created_by, DROP COLUMN modified_by{created}"
        )
    # A v5 database also has v5's renderer, which knew nothing of these columns.
    await pool.execute(
        "CREATE OR REPLACE FUNCTION events_render_json() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN NEW.json := '{\"id\":' || to_json(NEW.id) || '}'; RETURN NEW; END $$"
    )
    await pool.execute("UPDATE schema_version SET version = 5")
    await apply_schema(pool)
    [channel] = (await api.get(f"/{me.username}/channels", auth=me.session)).body
    [node] = (await me.folders()).body
    [event] = await me.all_events()
    tokens = (await api.get(f"/{me.username}/tokens", auth=me.session)).body
    for item in (channel, node, event, *tokens):
        assert by(item) == ("system", "system"), item
        assert item["created"] == item["modified"] or item in tokens
    assert event["tags"] == ["old"]
    version = await pool.fetchval("SELECT version FROM schema_version")
    assert version >= 6
    # A writer that does not know the columns (the previous version during a rolling
    # upgrade) still writes: now, by "system".
    user_id = await pool.fetchval("SELECT user_id FROM users WHERE username = $1", me.username)
    await pool.execute(
        "INSERT INTO channels (user_id, id, name, modified) VALUES ($1, 'old-code', 'O', 1.0)",
        user_id,
    )
    channels = (await api.get(f"/{me.username}/channels", auth=me.session)).body
    [old] = [c for c in channels if c["id"] == "old-code"]
    assert by(old) == ("system", "system") and old["created"] > 1.0
