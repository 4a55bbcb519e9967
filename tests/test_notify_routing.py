"""Who hears what (pryvrt.notify.routing): pure functions of changes and listeners.

The end-to-end twins (real sockets, both buses) are in test_notification_permissions.py."""

from __future__ import annotations

from dataclasses import dataclass

from pryvrt.auth.permissions import Access, ChannelPermission, FolderPermission, Level
from pryvrt.notify.messages import (
    ACCESS_REVOKED,
    CHANNELS_CHANGED,
    EVENTS_CHANGED,
    FOLDERS_CHANGED,
    RESYNC,
    SERIES_CHANGED,
    Change,
)
from pryvrt.notify.routing import Send, past_expiry, refetch_all, route


@dataclass(eq=False)
class Sock:
    name: str
    access: Access

    def __repr__(self) -> str:
        return self.name


def token(secret: str, *perms: ChannelPermission) -> Access:
    return Access("shared", secret, secret, perms)


OWNER = Sock("owner", Access("personal", "p-secret", "app"))
READS_A = Sock("reads-a", token("t-a", ChannelPermission("a", Level.READ)))
FOLDER_OF_A = Sock(
    "folder-of-a",
    token("t-f", ChannelPermission("a", Level.READ, (FolderPermission("f", Level.READ),))),
)
NO_FOLDER_OF_A = Sock("nothing-of-a", token("t-0", ChannelPermission("a", Level.MANAGE, ())))
READS_B = Sock("reads-b", token("t-b", ChannelPermission("b", Level.READ)))
EVERYONE = [OWNER, READS_A, FOLDER_OF_A, NO_FOLDER_OF_A, READS_B]


def heard(sends: list[Send[Sock]]) -> list[tuple[str, object, list[str]]]:
    return [(s.event, s.data, [x.name for x in s.to]) for s in sends]


def test_channel_changes_reach_the_listeners_that_see_something_of_the_channel() -> None:
    plan = route([Change(EVENTS_CHANGED, "a"), Change(FOLDERS_CHANGED, "b")], EVERYONE)
    assert heard(plan.sends) == [
        (EVENTS_CHANGED, {"channelId": "a"}, ["owner", "reads-a", "folder-of-a"]),
        (FOLDERS_CHANGED, {"channelId": "b"}, ["owner", "reads-b"]),
    ]
    assert plan.revoked == [] and not plan.resync


def test_channels_changed_is_sent_once_without_payload_to_those_who_see_a_changed_channel() -> None:
    plan = route([Change(CHANNELS_CHANGED, "b"), Change(CHANNELS_CHANGED, "c")], EVERYONE)
    assert heard(plan.sends) == [(CHANNELS_CHANGED, None, ["owner", "reads-b"])]
    # No channel id: everyone refetches.
    plan = route([Change(CHANNELS_CHANGED)], EVERYONE)
    assert heard(plan.sends) == [(CHANNELS_CHANGED, None, [s.name for s in EVERYONE])]


def test_a_change_nobody_may_see_sends_nothing() -> None:
    tokens = [READS_A, FOLDER_OF_A, NO_FOLDER_OF_A, READS_B]
    assert route([Change(EVENTS_CHANGED, "z")], tokens).sends == []
    assert route([Change(EVENTS_CHANGED, "a")], []).sends == []


def test_revoked_listeners_are_named_once_and_hear_nothing_after_it() -> None:
    changes = [Change(ACCESS_REVOKED, "t-a"), Change(EVENTS_CHANGED, "a")]
    plan = route(changes, EVERYONE)
    assert plan.revoked == [READS_A]
    assert heard(plan.sends) == [(EVENTS_CHANGED, {"channelId": "a"}, ["owner", "folder-of-a"])]
    assert route([Change(ACCESS_REVOKED, "t-a-not")], EVERYONE).revoked == []
    assert route([Change(ACCESS_REVOKED, None)], EVERYONE).revoked == []


def test_resync_is_flagged_for_the_transport_to_recheck() -> None:
    plan = route([Change(RESYNC)], EVERYONE)
    assert plan.resync and plan.sends == [] and plan.revoked == []


def test_refetch_all_sends_channels_then_each_visible_channel_folders_and_events() -> None:
    sends = refetch_all([READS_A, READS_B], ["a", "b", "z"])
    assert heard(sends) == [
        (CHANNELS_CHANGED, None, ["reads-a", "reads-b"]),
        (FOLDERS_CHANGED, {"channelId": "a"}, ["reads-a"]),
        (EVENTS_CHANGED, {"channelId": "a"}, ["reads-a"]),
        (FOLDERS_CHANGED, {"channelId": "b"}, ["reads-b"]),
        (EVENTS_CHANGED, {"channelId": "b"}, ["reads-b"]),
    ]
    assert refetch_all([], ["a"]) == []


def test_past_expiry_names_sessions_whose_last_read_expiry_passed() -> None:
    expired = Sock("old", Access("session", "s1", "", (), expires=100.0))
    alive = Sock("new", Access("session", "s2", "", (), expires=300.0))
    assert past_expiry([expired, alive, OWNER], now=200.0) == [expired]


def test_series_changed_names_the_event_only_to_listeners_of_the_whole_channel() -> None:
    change = Change(SERIES_CHANGED, "a", "ev1")
    out = route([change], [OWNER, READS_A, FOLDER_OF_A, NO_FOLDER_OF_A])
    assert out.sends == [
        Send(SERIES_CHANGED, {"channelId": "a", "eventId": "ev1"}, (OWNER, READS_A)),
        Send(SERIES_CHANGED, {"channelId": "a"}, (FOLDER_OF_A,)),
    ]
    assert Change.from_wire(change.to_wire()) == change
    assert Change.from_wire(Change(EVENTS_CHANGED, "a").to_wire()) == Change(EVENTS_CHANGED, "a")
