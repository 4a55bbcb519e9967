"""Events: marks and periods in a channel, their API JSON, inserts and queries (API.md §6).

This module alone knows an event's JSON and how it is written. Each row keeps its API form
(``json``): rendered here (``Event.to_api``) at insert, and by PostgreSQL's
``events_render_json`` trigger (schema.sql) at every update, so reads join stored text
(tests/test_event_json.py holds the two renderings equal). How a row is inserted is this
module's choice: inside the caller's transaction, alone in a grouped autocommitted
statement (``group_commit``), or many at once by COPY; callers see ``insert``,
``insert_many`` and the typed errors ``Conflict`` and ``ChannelUnavailable``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from pryvrt.storage.base import Conflict, Executor, StorageError, Store, conflict_field
from pryvrt.storage.group_commit import GroupCommit
from pryvrt.storage.pool import Pool


class ChannelUnavailable(StorageError):
    """An insert found its channel deleted (``trashed`` False) or in the trash: nothing was
    written."""

    def __init__(self, trashed: bool) -> None:
        super().__init__("trashed" if trashed else "deleted")
        self.trashed = trashed


@dataclass(frozen=True, slots=True)
class Event:
    """One event. ``content`` is stored in the ``value`` column (see ``to_api``)."""

    id: str
    channel_id: str
    time: float
    is_period: bool
    duration: float | None
    folder_id: str | None
    type: str | None
    content: Any
    tags: list[str]
    description: str | None
    client_data: dict[str, Any]
    attachments: list[dict[str, Any]]
    trashed: bool
    modified: float
    # Who did what (API.md §12): the accessIds of the credentials that wrote, and when.
    created: float
    created_by: str
    modified_by: str

    @property
    def running(self) -> bool:
        return self.is_period and self.duration is None

    @property
    def end(self) -> float:
        """When it ends: ``time`` for a mark, +inf while running."""
        if not self.is_period:
            return self.time
        return math.inf if self.duration is None else self.time + self.duration

    def to_api(self) -> dict[str, Any]:
        """API shape: ``duration`` absent for a mark (null while running); ``type`` and
        ``value: {type, value}`` present when the event is typed (``value.value`` = content)."""
        out: dict[str, Any] = {"id": self.id, "channelId": self.channel_id}
        out["time"] = seconds(self.time)
        if self.is_period:
            out["duration"] = seconds(self.duration)
        out["folderId"] = self.folder_id
        if self.type is not None:
            out["type"] = self.type
            out["value"] = {"type": self.type, "value": self.content}
        out["tags"] = self.tags
        if self.description is not None:
            out["description"] = self.description
        out["attachments"] = self.attachments
        out["clientData"] = self.client_data
        out["trashed"] = self.trashed
        out["created"] = seconds(self.created)
        out["createdBy"] = self.created_by
        out["modified"] = seconds(self.modified)
        out["modifiedBy"] = self.modified_by
        return out


def seconds(value: float | None) -> float | int | None:
    """A time or duration as the API writes it: a whole number without a fraction (``1500``,
    not ``1500.0``), as PostgreSQL renders it in ``events_render_json``: an event reads the
    same whichever path wrote it."""
    if value is not None and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def json_with(rendered: bytes, fields: dict[str, Any]) -> orjson.Fragment:
    """An event's stored JSON (as ``insert_many`` returns it) with more fields, without
    decoding it: for answers that name each event (``clientId``)."""
    extra = orjson.dumps(fields)
    return orjson.Fragment(rendered[:-1] + b"," + extra[1:] if len(extra) > 2 else rendered)


def event_from_row(row: asyncpg.Record) -> Event:
    return Event(
        row["id"],
        row["channel_id"],
        row["time"],
        row["is_period"],
        row["duration"],
        row["folder_id"],
        row["type"],
        row["value"],
        list(row["tags"]),
        row["description"],
        row["client_data"],
        row["attachments"],
        row["trashed"],
        row["modified"],
        row["created"],
        row["created_by"],
        row["modified_by"],
    )


@dataclass(frozen=True, slots=True)
class Reach:
    """Events a credential reads through one kind of grant (API.md §7, §14): those of
    ``folder_ids`` (``None``: any folder, and no folder), plus the events with no folder
    when ``no_folder``, narrowed to the events having one tag of each of ``tag_sets`` and
    overlapping ``[from_time, to_time]`` (``None``: unbounded)."""

    folder_ids: tuple[str, ...] | None = None
    no_folder: bool = True
    tag_sets: tuple[tuple[str, ...], ...] = ()
    from_time: float | None = None
    to_time: float | None = None


@dataclass(frozen=True, slots=True)
class Visible:
    """What a query may return: every event of the channel (``reaches`` None), or those of
    at least one ``Reach`` (an empty tuple: none). Every events query takes one, built from
    the credential (``methods.visibility``): no read can leave it out."""

    reaches: tuple[Reach, ...] | None = None

    @property
    def nothing(self) -> bool:
        return self.reaches == ()

    def bounds(self) -> tuple[float | None, float | None]:
        """The time frame that holds every visible event (``None``: unbounded)."""
        if not self.reaches:
            return None, None
        froms = [r.from_time for r in self.reaches]
        tos = [r.to_time for r in self.reaches]
        low = None if None in froms else min(f for f in froms if f is not None)
        high = None if None in tos else max(t for t in tos if t is not None)
        return low, high


EVERYTHING = Visible()


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of events.get. ``visible``: what the credential reads (required).
    ``folder_ids`` None = any folder; else only those, plus the events with no folder
    when ``no_folder``. A window (both bounds or none) keeps the events overlapping
    ``[from_time, to_time]``."""

    visible: Visible
    from_time: float | None = None
    to_time: float | None = None
    folder_ids: Sequence[str] | None = None
    no_folder: bool = True
    tags: Sequence[str] | None = None
    state: str = "default"
    modified_since: float | None = None
    running_only: bool = False
    ascending: bool = False
    skip: int = 0
    limit: int | None = None


def visible_sql(visible: Visible, arg: Callable[[Any], str]) -> str:
    """`` AND (...)``: the condition that keeps the ``visible`` events ('' for all).

    Its rows are tested as an ordered scan reads them, so the plan keeps its order and its
    limit: the whole test is one ``CASE`` (the planner gives such an expression a fixed
    selectivity of 1/2 and no index), not clauses whose estimates multiply with those of
    events.get's own filters — two tag tests estimated a few rows, and the plan became a
    scan and a sort of the channel (tests/test_event_plans.py)."""
    if visible.reaches is None:
        return ""
    if not visible.reaches:
        return " AND false"
    alternatives = []
    for reach in visible.reaches:
        tests = []
        if reach.folder_ids is not None:
            folders = f"folder_id = ANY({arg(list(reach.folder_ids))}::text[])"
            tests.append(f"({folders} OR folder_id IS NULL)" if reach.no_folder else folders)
        elif not reach.no_folder:
            tests.append("folder_id IS NOT NULL")
        for tags in reach.tag_sets:
            tests.append(f"tags && {arg(list(tags))}::text[]")
        if reach.to_time is not None:
            tests.append(f"time <= {arg(reach.to_time)}")
        if reach.from_time is not None:
            tests.append(f"end_time >= {arg(reach.from_time)}")
        alternatives.append("(" + " AND ".join(tests) + ")" if tests else "true")
    return " AND CASE WHEN " + " OR ".join(alternatives) + " THEN true ELSE false END"


STATE_FILTERS = {"default": " AND NOT trashed", "trashed": " AND trashed", "all": ""}
# Every column but the generated end_time, in insert order. ``json`` is the event's API
# form (``Event.to_api``), stored so that reads join text; on UPDATE a trigger renders it
# again in SQL (schema.sql, ``events_render_json``).
COLUMNS = (
    "user_id",
    "channel_id",
    "id",
    "time",
    "is_period",
    "duration",
    "folder_id",
    "type",
    "value",
    "tags",
    "description",
    "client_data",
    "attachments",
    "trashed",
    "modified",
    "created",
    "created_by",
    "modified_by",
    "json",
)


def _record(user_id: str, e: Event, json: str | None = None) -> tuple[Any, ...]:
    """The row of ``COLUMNS`` for ``e``; ``json``: its API JSON when already rendered."""
    return (
        user_id,
        e.channel_id,
        e.id,
        e.time,
        e.is_period,
        e.duration,
        e.folder_id,
        e.type,
        e.content,
        e.tags,
        e.description,
        e.client_data,
        e.attachments,
        e.trashed,
        e.modified,
        e.created,
        e.created_by,
        e.modified_by,
        orjson.dumps(e.to_api()).decode() if json is None else json,
    )


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def select_events(user_id: str, channel_id: str, q: EventQuery) -> list[Any]:
    """``[sql, *args]`` of an events query.

    Its cost follows ``limit`` + ``skip``, not the window nor the channel: every branch is
    a scan of ``events_time_id`` in the requested order that stops at the limit (a window's
    UNION ALL branches are each ordered and limited, then merged). The plan must not hang
    on statistics: the pool runs generic plans (``plan_cache_mode``), and right after a bulk
    import the table has none. So no condition here may offer the planner an index that
    loses the order: the tags test is written so that the GIN index ``events_tags`` cannot
    serve it (a bitmap of every event with the tag, in every channel, then a sort of the
    matches: 90 ms instead of 0.6 ms for a 30-day window of 1M events, BENCHMARKS.md).
    tests/test_event_plans.py checks the plans, with and without statistics."""
    args: list[Any] = [user_id, channel_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = "user_id = $1 AND channel_id = $2" + STATE_FILTERS[q.state]
    where += visible_sql(q.visible, arg)
    if q.folder_ids is not None:
        folders = f"folder_id = ANY({arg(list(q.folder_ids))}::text[])"
        where += f" AND ({folders} OR folder_id IS NULL)" if q.no_folder else f" AND {folders}"
    if q.tags:
        # IS TRUE (tags is NOT NULL, so the same test) keeps events_tags out of the plan.
        where += f" AND (tags && {arg(list(q.tags))}::text[]) IS TRUE"
    if q.modified_since is not None:
        where += f" AND modified >= {arg(q.modified_since)}"
    running = "is_period AND duration IS NULL"
    if q.running_only:
        where += f" AND {running}"
    order = "ASC" if q.ascending else "DESC"
    order_by = f" ORDER BY time {order}, id {order}"
    limit = f" LIMIT {arg(q.limit)}" if q.limit is not None else ""
    offset = f" OFFSET {arg(q.skip)}" if q.skip else ""
    from_time, to_time = q.from_time, q.to_time
    low, high = q.visible.bounds()
    if low is not None or high is not None:
        # Narrowed grants hold no event outside their frame: the scan starts there (the
        # rows are tested again by ``visible_sql``; the answer is the same, only sooner).
        from_time = low if from_time is None else from_time if low is None else max(from_time, low)
        to_time = high if to_time is None else to_time if high is None else min(to_time, high)
        from_time = -math.inf if from_time is None else from_time
        to_time = math.inf if to_time is None else to_time
    if from_time is None or to_time is None:
        # The whole time axis as a range (event times are finite): without statistics,
        # the planner takes a bare channel for a few rows, best read by a bitmap scan and a
        # sort of the whole channel (95 ms at 100 000 events); with a range on time, it
        # scans events_time_id in order, as it does for a window.
        return [
            f"SELECT * FROM events WHERE {where} AND time >= '-Infinity' AND time <= 'Infinity'"
            f"{order_by}{limit}{offset}",
            *args,
        ]
    # A period overlapping the window starts at most max(duration) before it: that lower
    # bound keeps the scan on the window's part of the time index. Running periods (no
    # bound) come from their own small index (events_running_time_id). Each branch keeps its first limit + skip
    # rows; the merge of the two keeps the page.
    to_time_arg, from_time_arg = arg(to_time), arg(from_time)
    longest = (
        "coalesce((SELECT duration FROM events WHERE user_id = $1 AND channel_id = $2"
        " AND is_period AND duration IS NOT NULL ORDER BY duration DESC LIMIT 1), 0)"
    )
    branch_limit = limit
    if limit and offset:
        branch_limit = f" LIMIT {args_ref(limit)}::bigint + {args_ref(offset)}::bigint"
    sql = (
        f"(SELECT * FROM events WHERE {where} AND time <= {to_time_arg}"
        f" AND time >= {from_time_arg} - {longest} - 1"
        f" AND end_time >= {from_time_arg} AND end_time < 'Infinity'{order_by}{branch_limit})"
        f" UNION ALL (SELECT * FROM events WHERE {where} AND {running}"
        f" AND time <= {to_time_arg}{order_by}{branch_limit})"
    )
    return [f"{sql}{order_by}{limit}{offset}", *args]


def args_ref(clause: str) -> str:
    """The ``$n`` of a `` LIMIT $n`` / `` OFFSET $n`` clause."""
    return clause.rsplit(" ", 1)[1]


# Columns sent as JSON text in array form (tags is a text[] column, rebuilt from JSON
# because PostgreSQL arrays cannot be ragged).
JSON_COLUMN_INDEXES = tuple(
    COLUMNS.index(name) for name in ("value", "tags", "client_data", "attachments")
)
LIVE_INSERT_MANY = (
    "WITH input AS (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[],"
    " $5::float8[], $6::bool[], $7::float8[], $8::text[], $9::text[], $10::text[],"
    " $11::text[], $12::text[], $13::text[], $14::text[], $15::bool[], $16::float8[],"
    " $17::float8[], $18::text[], $19::text[], $20::text[])"
    " AS t(ord, user_id, channel_id, id, time, is_period, duration, folder_id, type, value,"
    " tags, description, client_data, attachments, trashed, modified, created, created_by,"
    " modified_by, json)),"
    " channel AS (SELECT user_id, id, trashed FROM channels"
    " WHERE (user_id, id) IN (SELECT user_id, channel_id FROM input) FOR SHARE),"
    f" inserted AS (INSERT INTO events ({', '.join(COLUMNS)})"
    " SELECT i.user_id, i.channel_id, i.id, i.time, i.is_period, i.duration, i.folder_id,"
    " i.type, i.value::jsonb, ARRAY(SELECT jsonb_array_elements_text(i.tags::jsonb)),"
    " i.description, i.client_data::jsonb, i.attachments::jsonb, i.trashed, i.modified,"
    " i.created, i.created_by, i.modified_by, i.json FROM input i JOIN channel c ON c.user_id = i.user_id AND c.id = i.channel_id"
    " WHERE NOT c.trashed RETURNING user_id, channel_id, id)"
    " SELECT CASE WHEN n.id IS NOT NULL THEN 'inserted' WHEN c.id IS NOT NULL THEN 'trashed'"
    " ELSE 'unknown' END FROM input i"
    " LEFT JOIN inserted n ON n.user_id = i.user_id AND n.channel_id = i.channel_id"
    " AND n.id = i.id"
    " LEFT JOIN channel c ON c.user_id = i.user_id AND c.id = i.channel_id"
    " ORDER BY i.ord"
)


class EventsStore(Store):
    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)
        self._live_inserts: GroupCommit[tuple[str, Event], str] = GroupCommit(
            self._insert_many_live, self._insert_one_live
        )

    async def get(
        self,
        user_id: str,
        channel_id: str,
        event_id: str,
        conn: Executor = None,
        *,
        for_update: bool = False,
    ) -> Event | None:
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM events WHERE user_id = $1 AND channel_id = $2 AND id = $3"
            + (" FOR UPDATE" if for_update else ""),
            user_id,
            channel_id,
            event_id,
        )
        return event_from_row(row) if row else None

    async def query_json(self, user_id: str, channel_id: str, q: EventQuery) -> bytes:
        """``query``'s events as the API's JSON array, joined by PostgreSQL from each
        event's stored JSON (``json`` column, rendered at every write): a large reply costs
        one text value, no decoding nor re-encoding."""
        sql, *args = select_events(user_id, channel_id, q)
        order = "ASC" if q.ascending else "DESC"
        text = await self.pool.fetchval(
            "SELECT coalesce('[' || string_agg(e.json, ','"
            f" ORDER BY e.time {order}, e.id {order}) || ']', '[]') FROM ({sql}) AS e",
            *args,
        )
        return str(text).encode()

    async def insert(
        self, user_id: str, event: Event, conn: asyncpg.Connection | None = None
    ) -> None:
        """Insert a new event: inside ``conn``'s transaction (the caller holds the channel's
        lock and checked it), or, without ``conn``, in one autocommitted statement that
        takes a share lock of the channel row and checks it (``ChannelUnavailable``):
        one round trip instead of BEGIN, lock, INSERT, COMMIT, and concurrent ones share
        their statement and commit (``group_commit``). ``Conflict``: the id is taken."""
        if conn is None:
            state = await self._live_inserts.submit((user_id, event))
            if state != "inserted":
                raise ChannelUnavailable(trashed=state == "trashed")
            return
        try:
            await conn.execute(
                f"INSERT INTO events ({', '.join(COLUMNS)})"
                f" VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))})",
                *_record(user_id, event),
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None

    async def _insert_one_live(self, item: tuple[str, Event]) -> str:
        user_id, event = item
        placeholders = ", ".join(f"${i}" for i in range(3, len(COLUMNS) + 1))
        try:
            state = await self.pool.fetchval(
                "WITH channel AS (SELECT trashed FROM channels"
                " WHERE user_id = $1 AND id = $2 FOR SHARE),"
                f" inserted AS (INSERT INTO events ({', '.join(COLUMNS)})"
                f" SELECT $1, $2, {placeholders} FROM channel WHERE NOT channel.trashed"
                " RETURNING 1)"
                " SELECT CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN 'inserted'"
                " WHEN EXISTS (SELECT 1 FROM channel) THEN 'trashed' ELSE 'unknown' END",
                *_record(user_id, event),
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return str(state)

    async def _insert_many_live(self, items: Sequence[tuple[str, Event]]) -> list[str]:
        """``_insert_one_live`` for many events (of any users and channels) in one statement:
        the rows travel as arrays, one per column (JSON columns as text)."""
        rows = (_record(user_id, event) for user_id, event in items)
        columns = [list(column) for column in zip(*rows, strict=True)]
        for index in JSON_COLUMN_INDEXES:
            columns[index] = [_json_text(v) for v in columns[index]]
        states = await self.pool.fetch(LIVE_INSERT_MANY, list(range(len(items))), *columns)
        return [str(row[0]) for row in states]

    async def insert_many(
        self, conn: asyncpg.Connection, user_id: str, channel_id: str, events: Sequence[Event]
    ) -> list[bytes]:
        """Bulk insert inside ``conn``'s transaction: one binary COPY straight into
        ``events`` (the pool's connections encode jsonb in binary, storage/database.py).
        Returns each event's API JSON as stored, encoded once for the row and the answer
        (``json_with`` adds fields to it)."""
        rendered = [orjson.dumps(e.to_api()) for e in events]
        try:
            await conn.copy_records_to_table(
                "events",
                columns=COLUMNS,
                records=[
                    _record(user_id, e, json.decode())
                    for e, json in zip(events, rendered, strict=True)
                ],
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(conflict_field(exc)) from None
        return rendered

    async def existing_ids(
        self, conn: Executor, user_id: str, channel_id: str, ids: Sequence[str]
    ) -> list[str]:
        rows = await conn.fetch(
            "SELECT id FROM events WHERE user_id = $1 AND channel_id = $2 AND id = ANY($3::text[])",
            user_id,
            channel_id,
            list(ids),
        )
        return [r["id"] for r in rows]

    async def save(self, conn: Executor, user_id: str, event: Event) -> None:
        """Write every mutable field of an existing event."""
        await conn.execute(
            "UPDATE events SET time = $4, is_period = $5, duration = $6, folder_id = $7,"
            " type = $8, value = $9, tags = $10, description = $11, client_data = $12,"
            " trashed = $13, modified = $14, modified_by = $15"
            " WHERE user_id = $1 AND channel_id = $2 AND id = $3",
            user_id,
            event.channel_id,
            event.id,
            event.time,
            event.is_period,
            event.duration,
            event.folder_id,
            event.type,
            event.content,
            event.tags,
            event.description,
            event.client_data,
            event.trashed,
            event.modified,
            event.modified_by,
        )

    async def set_attachments(self, conn: Executor, user_id: str, event: Event) -> None:
        """Write the event's attachment list (the files themselves are in attachment_chunks)."""
        await conn.execute(
            "UPDATE events SET attachments = $4, modified = $5, modified_by = $6"
            " WHERE user_id = $1 AND channel_id = $2 AND id = $3",
            user_id,
            event.channel_id,
            event.id,
            event.attachments,
            event.modified,
            event.modified_by,
        )

    async def delete(self, conn: Executor, user_id: str, channel_id: str, event_id: str) -> None:
        """Delete for good; its attachment chunks go with it (foreign-key cascade)."""
        await conn.execute(
            "DELETE FROM events WHERE user_id = $1 AND channel_id = $2 AND id = $3",
            user_id,
            channel_id,
            event_id,
        )

    async def count_in_folders(
        self, conn: Executor, user_id: str, channel_id: str, folder_ids: Sequence[str]
    ) -> int:
        """Events (any state) linked to those folders."""
        count: int = await conn.fetchval(
            "SELECT count(*) FROM events WHERE user_id = $1 AND channel_id = $2"
            " AND folder_id = ANY($3::text[])",
            user_id,
            channel_id,
            list(folder_ids),
        )
        return count

    async def move_out_of_folders(
        self,
        conn: Executor,
        user_id: str,
        channel_id: str,
        folder_ids: Sequence[str],
        target: str | None,
        now: float,
        by: str,
    ) -> None:
        """Hand the events of those folders to ``target`` (a folder merge), written by ``by``."""
        await conn.execute(
            "UPDATE events SET folder_id = $4, modified = $5, modified_by = $6 WHERE user_id = $1"
            " AND channel_id = $2 AND folder_id = ANY($3::text[])",
            user_id,
            channel_id,
            list(folder_ids),
            target,
            now,
            by,
        )

    async def delete_in_folders(
        self, conn: Executor, user_id: str, channel_id: str, folder_ids: Sequence[str]
    ) -> None:
        """Delete for good the events of those folders, with their attachment chunks."""
        await conn.execute(
            "DELETE FROM events WHERE user_id = $1 AND channel_id = $2"
            " AND folder_id = ANY($3::text[])",
            user_id,
            channel_id,
            list(folder_ids),
        )
