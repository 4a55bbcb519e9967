"""Which events a credential reaches, and at which level (API.md §7, §14).

The one place that turns a credential's grants (``Access.grants``) and a channel's folder
tree into answers about events: one event's level (single reads, writes, period answers,
readTokens), the SQL condition of every events query (``Visible``), and the ``Spot`` a
notification carries so that routing can answer the same question without the tree.
Folder grants reach their folder's descendants; a narrowed grant (tags, time frame) reaches
only the events its filter passes. An event out of reach is refused exactly like an event
out of the credential's folders (same error, same message).
"""

from __future__ import annotations

from pryvrt import errors
from pryvrt.auth.permissions import Access, EventFilter, Level
from pryvrt.methods.folder_tree import FolderTree
from pryvrt.notify.messages import Spot
from pryvrt.storage.events import EVERYTHING, Event, Reach, Visible


def path_of(tree: FolderTree, folder_id: str | None) -> tuple[str | None, ...]:
    """The folder and its ancestors (``(None,)``: the events with no folder)."""
    if folder_id is None:
        return (None,)
    return (folder_id, *tree.ancestors(folder_id))


def event_level(access: Access, channel_id: str, tree: FolderTree, event: Event) -> Level | None:
    """The credential's level on one event (``None``: out of its reach)."""
    if access.is_full:
        return Level.MANAGE
    path = path_of(tree, event.folder_id)
    return access.event_level(channel_id, path, event.time, event.end, event.tags)


def sees(access: Access, channel_id: str, tree: FolderTree, event: Event) -> bool:
    return event_level(access, channel_id, tree, event) is not None


def require_event_level(
    access: Access, channel_id: str, tree: FolderTree, event: Event, level: Level
) -> None:
    """403 FORBIDDEN unless the credential holds ``level`` on the event. One message for
    every cause (its folder, a filter): the answer never tells why."""
    held = event_level(access, channel_id, tree, event)
    if held is None or held < level:
        raise errors.Forbidden(f"this credential has no {level.api_name} permission on this event")


def admit(access: Access, channel_id: str, tree: FolderTree, event: Event) -> None:
    """A write's result (created, updated, moved, started or stopped) must lie within what
    the credential may write: else 403 and nothing is written (call it before the write)."""
    held = event_level(access, channel_id, tree, event)
    if held is None or held < Level.CONTRIBUTE:
        raise errors.Forbidden(
            "this credential cannot write this event: it would lie outside its permissions"
        )


def visible(access: Access, channel_id: str, tree: FolderTree) -> Visible:
    """What the credential reads in the channel, for the SQL of every events query.

    Grants with the same filter are merged into one ``Reach`` (their folders' subtrees
    together); an unfiltered channel-wide grant reaches everything."""
    if access.is_full:
        return EVERYTHING
    grouped: dict[EventFilter | None, tuple[bool, set[str], bool]] = {}
    for grant in access.grants(channel_id):
        key = grant.filter
        whole, folders, no_folder = grouped.get(key, (False, set(), False))
        if grant.whole:
            whole = True
        elif grant.folder_id is None:
            no_folder = True
        elif grant.folder_id in tree.by_id:
            folders |= set(tree.subtree(grant.folder_id))
        grouped[key] = (whole, folders, no_folder)
    reaches = []
    for flt, (whole, folders, no_folder) in grouped.items():
        if not whole and not folders and not no_folder:
            continue
        if whole and flt is None:
            return EVERYTHING
        reaches.append(
            Reach(
                folder_ids=None if whole else tuple(sorted(folders)),
                no_folder=whole or no_folder,
                tag_sets=() if flt is None else tuple(tuple(sorted(t)) for t in flt.tag_sets),
                from_time=None if flt is None else flt.from_time,
                to_time=None if flt is None else flt.to_time,
            )
        )
    return Visible(tuple(reaches))


def spot(tree: FolderTree, event: Event) -> Spot:
    """What a notification says about one changed event (its state before or after)."""
    return Spot(path_of(tree, event.folder_id), event.time, event.end, tuple(event.tags))
