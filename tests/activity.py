"""Helpers shared by the folders and events tests: an owner with a channel, and shortcuts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pryvrt.app import SERVICES_KEY
from pryvrt.notify import Change
from tests.conftest import Api, Reply


@dataclass
class Owner:
    """A user, a session of theirs and one channel, with shortcuts to its API."""

    api: Api
    username: str
    session: str
    channel: str

    def path(self, tail: str = "", channel: str | None = None) -> str:
        return f"/{self.username}/{channel or self.channel}{tail}"

    async def folder(
        self, name: str, parent: str | None = None, auth: str | None = None, **fields: Any
    ) -> str:
        body = {"name": name, **fields}
        if parent is not None:
            body["parentId"] = parent
        reply = await self.api.post(self.path("/folders"), body, auth=auth or self.session)
        assert reply.status == 201, reply
        return str(reply.body["id"])

    async def event(self, auth: str | None = None, **fields: Any) -> Reply:
        return await self.api.post(self.path("/events"), fields, auth=auth or self.session)

    async def start(self, auth: str | None = None, **fields: Any) -> Reply:
        return await self.api.post(self.path("/events/start"), fields, auth=auth or self.session)

    async def stop(self, auth: str | None = None, **fields: Any) -> Reply:
        return await self.api.post(self.path("/events/stop"), fields, auth=auth or self.session)

    async def events(self, query: str = "", auth: str | None = None) -> Reply:
        return await self.api.get(self.path("/events" + query), auth=auth or self.session)

    async def all_events(self) -> list[dict[str, Any]]:
        """Every event of the channel in any state, oldest first."""
        reply = await self.events("?state=all&fromTime=0&toTime=1e12&sortAscending=true")
        assert reply.status == 200, reply
        return list(reply.body)

    async def folders(self, query: str = "", auth: str | None = None) -> Reply:
        return await self.api.get(self.path("/folders" + query), auth=auth or self.session)

    async def token(self, permissions: Sequence[dict[str, Any]]) -> str:
        perms = [{"channelId": self.channel, **p} for p in permissions]
        return await self.api.shared_token(self.username, self.session, perms)


async def owner(api: Api, **channel_fields: Any) -> Owner:
    username, session = await api.user()
    channel = await api.channel(username, session, **channel_fields)
    return Owner(api, username, session, channel)


@dataclass
class Recorder:
    """Records the changes the server publishes for one user (a real bus subscriber)."""

    changes: list[Change] = field(default_factory=list)

    async def __call__(self, user_id: str, changes: Sequence[Change]) -> None:
        self.changes.extend(changes)

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(c.kind, c.subject) for c in self.changes]


async def record_changes(who: Owner) -> Recorder:
    services = who.api.client.app[SERVICES_KEY]
    user = await services.storage.users.by_username(who.username)
    assert user is not None
    recorder = Recorder()
    services.bus.set_listener(recorder)
    await services.bus.subscribe(user.id)
    return recorder


def names(tree: list[dict[str, Any]]) -> list[Any]:
    """A folder tree as nested names: ``["a", ["b", "c"]]``-like pairs (name, children)."""
    return [(f["name"], names(f["children"])) if f["children"] else f["name"] for f in tree]
