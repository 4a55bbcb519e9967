"""events.get costs its limit, not its window (issue 14): the plans PostgreSQL runs (generic,
``plan_cache_mode``) scan the time index in order and stop at the limit, before any ANALYZE
(right after a bulk import) and after; and the pages they give are the exact ones."""

from __future__ import annotations

import itertools
import math
import re

import asyncpg
import orjson

from pryvrt.app import SERVICES_KEY
from pryvrt.storage.events import EVERYTHING, Event, EventQuery, Reach, Visible
from tests.activity import owner
from tests.conftest import Api
from tests.test_events import explain_query

COUNT = 6000


def visibles(folder: str) -> list[Visible]:
    """What credentials read: everything, and narrowed grants (API.md §14): tags (half the
    events), a time frame, both, and a folder grant narrowed by tags."""
    return [
        EVERYTHING,
        Visible((Reach(tag_sets=(("t",),)),)),
        Visible((Reach(from_time=3000.0, to_time=5000.0),)),
        Visible((Reach(tag_sets=(("t", "u"),), from_time=1500.0, to_time=6200.0),)),
        Visible((Reach(folder_ids=(folder,), no_folder=False, tag_sets=(("t",),)),)),
    ]


def window_queries(folder: str) -> list[EventQuery]:
    out = []
    for visible, window in itertools.product(
        visibles(folder), ((None, None), (4000.0, 4100.0), (2000.0, 6500.0), (0.0, 1e10))
    ):
        for ascending in (False, True):
            for filters in (
                {},
                {"folder_ids": [folder], "no_folder": False},
                {"folder_ids": [folder]},
                {"tags": ["t"]},
            ):
                for limit, skip in ((20, 0), (20, 30)):
                    out.append(
                        EventQuery(
                            visible=visible,
                            from_time=window[0],
                            to_time=window[1],
                            ascending=ascending,
                            limit=limit,
                            skip=skip,
                            **filters,  # type: ignore[arg-type]
                        )
                    )
    return out


ROWS = re.compile(r"actual time=[\d.]+\.\.[\d.]+ rows=(\d+)")
REMOVED = re.compile(r"Rows Removed by Filter: (\d+)")


def check_ordered_and_limited(plan: str, q: EventQuery) -> None:
    """The plan reads about ``limit + skip`` rows: no sort of the window, no bitmap."""
    page = (q.limit or 0) + q.skip
    assert plan.startswith("Limit"), plan
    assert "Bitmap" not in plan and "Seq Scan" not in plan, plan
    assert not re.search(r"->  Sort ", plan), plan  # only the small running-periods branch sorts
    assert "Index Scan" in plan and "events_time_id" in plan, plan
    if q.from_time is not None or q.visible.bounds() != (None, None):
        assert "Merge Append" in plan, plan
    for rows in ROWS.findall(plan):
        assert int(rows) <= page, plan
    # Filters skip the rows they refuse: at most a few per row kept (half are tagged, two
    # thirds in the folder), never the window.
    for removed in REMOVED.findall(plan):
        assert int(removed) <= 3 * page + 10, plan


async def test_windowed_reads_stop_at_the_limit_before_and_after_analyze(
    api: Api, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # No statistics for the whole test until the explicit ANALYZE: the state right
        # after a bulk import (autovacuum would analyze within a minute).
        await conn.execute("ALTER TABLE events SET (autovacuum_enabled = off)")
        me = await owner(api)
        folder = await me.folder("f")
        for offset in range(0, COUNT, 3000):
            events = [
                {
                    "clientId": str(i),
                    "time": 1000.0 + i,
                    **({"folderId": folder} if i % 3 else {}),
                    **({"tags": ["t"]} if i % 2 else {}),
                }
                for i in range(offset, offset + 3000)
            ]
            reply = await me.api.post(me.path("/events/batch"), {"events": events}, auth=me.session)
            assert reply.status == 200, reply
        store = api.client.app[SERVICES_KEY].storage
        user = await store.users.by_username(me.username)
        assert user is not None
        analyzed = "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relname = 'events'"
        assert tuple(await conn.fetchrow(analyzed)) == (None, None)
        for state in ("no statistics", "after ANALYZE"):
            for q in window_queries(folder):
                plan = await explain_query(store.pool, user.id, me.channel, q, analyze=True)
                assert "$1" in plan, plan  # the generic plan, the one that runs
                try:
                    check_ordered_and_limited(plan, q)
                except AssertionError:
                    raise AssertionError(f"{state}, {q}:\n{plan}") from None
            await conn.execute("ANALYZE events")
    finally:
        await conn.close()


def _event(channel: str, id_: str, t: float, duration: float | None, period: bool) -> Event:
    return Event(
        id_, channel, t, period, duration, None, None, None, [], None, {}, [], False, t, t, "", ""
    )


async def test_windowed_pages_are_exact_across_marks_finished_and_running_periods(
    api: Api,
) -> None:
    """Each branch keeps limit + skip rows: pages straddling marks, periods that overlap
    the window's start and running periods (their own branch) are the exact slices."""
    me = await owner(api, enforceNoEventsOverlap=False)
    store = api.client.app[SERVICES_KEY].storage
    user = await store.users.by_username(me.username)
    assert user is not None
    events = []
    for i in range(60):
        t = 100.0 + i * 5
        kind = i % 4
        if kind == 0:
            events.append(_event(me.channel, f"m{i:02}", t, None, False))
        elif kind == 1:
            events.append(_event(me.channel, f"p{i:02}", t, 40.0, True))
        elif kind == 2:
            events.append(_event(me.channel, f"r{i:02}", t, None, True))
        else:  # two events at the same time: the id orders them
            events.append(_event(me.channel, f"a{i:02}", t - 5, None, False))
    async with store.transaction() as conn:
        for e in events:
            await store.events.insert(user.id, e, conn)
    for from_time, to_time in ((150.0, 300.0), (0.0, 1000.0), (260.0, 270.0), (120.0, 121.0)):
        overlapping = [e for e in events if e.time <= to_time and e.end >= from_time]
        for ascending in (False, True):
            expected = sorted(overlapping, key=lambda e: (e.time, e.id), reverse=not ascending)
            for limit, skip in ((5, 0), (5, 3), (7, 11), (1000, 0), (3, 40)):
                q = EventQuery(
                    visible=EVERYTHING,
                    from_time=from_time,
                    to_time=to_time,
                    ascending=ascending,
                    limit=limit,
                    skip=skip,
                )
                got = [
                    e["id"]
                    for e in orjson.loads(await store.events.query_json(user.id, me.channel, q))
                ]
                assert got == [e.id for e in expected[skip : skip + limit]], (q, got)
    assert any(math.isinf(e.end) for e in events)
