"""Two real workers (Redis between them) and 100 concurrent clients racing events.start,
events.stop and events.update on one strict channel (API.md §6.3 rule 6): at every moment
and at the end, at most one period runs and no two periods overlap (checked in SQL)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.processes import Http, Worker, running, worker_env

pytestmark = pytest.mark.slow

CLIENTS = 100
CALLS_PER_CLIENT = 4
SEED = 7

# Refusals the period rules may give in a race; anything else (5xx above all) is a defect.
RULE_REFUSALS = {"PERIODS_OVERLAP", "INVALID_OPERATION", "INVALID_TIME"}

# Over every non-trashed period of the channel: running ones, and overlapping pairs
# (each starts before the other ends; touching ends do not overlap).
INVARIANTS = """
SELECT
  (SELECT count(*) FROM events
    WHERE user_id = $1 AND channel_id = $2 AND is_period AND NOT trashed
      AND duration IS NULL) AS running,
  (SELECT count(*) FROM events a JOIN events b
      ON a.user_id = b.user_id AND a.channel_id = b.channel_id AND a.id < b.id
    WHERE a.user_id = $1 AND a.channel_id = $2
      AND a.is_period AND NOT a.trashed AND b.is_period AND NOT b.trashed
      AND a.time < b.end_time AND b.time < a.end_time) AS overlaps,
  (SELECT count(*) FROM events
    WHERE user_id = $1 AND channel_id = $2 AND is_period) AS periods
"""


@pytest.fixture(scope="module")
def pair(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, Worker]]:
    logs = Path(tmp_path_factory.mktemp("logs"))
    env = worker_env(database_url, redis_url, Path(tmp_path_factory.mktemp("workers")))
    with running(Worker(env, logs), Worker(env, logs)) as (first, second):
        yield first, second


class Race:
    """Shared state of the racing clients: the period ids created so far and the outcomes."""

    def __init__(self, base_time: float) -> None:
        self.base_time = base_time
        self.ids: list[str] = []
        self.outcomes: Counter[str] = Counter()

    def a_time(self, rng: random.Random) -> float:
        return self.base_time + rng.uniform(0, 600)


def next_call(race: Race, rng: random.Random, folder: str) -> tuple[str, str, Any]:
    """One racing call: (verb, path relative to the channel, body)."""
    roll = rng.random()
    if roll < 0.35 or not race.ids:
        body: dict[str, Any] = {"folderId": folder}
        if rng.random() < 0.5:
            body["time"] = race.a_time(rng)  # in the past: may land between periods
        return "POST", "/events/start", body
    if roll < 0.55:
        body = {} if rng.random() < 0.5 else {"time": race.a_time(rng) + 300}
        return "POST", "/events/stop", body
    target = rng.choice(race.ids)
    change = rng.random()
    if change < 0.4:
        body = {"duration": rng.uniform(0, 120)}
    elif change < 0.7:
        body = {"time": race.a_time(rng), "duration": rng.uniform(0, 60)}
    elif change < 0.85:
        body = {"duration": None}  # running again: refused while later periods exist
    else:
        body = {"trashed": rng.random() < 0.5}  # trash or restore
    return "PUT", f"/events/{target}", body


async def client(
    race: Race,
    session: aiohttp.ClientSession,
    base: str,
    auth: str,
    folder: str,
    seed: int,
    start: asyncio.Event,
) -> None:
    rng = random.Random(seed)
    await start.wait()  # everyone at once
    for _ in range(CALLS_PER_CLIENT):
        verb, path, body = next_call(race, rng, folder)
        async with (
            asyncio.timeout(30),
            session.request(verb, base + path, json=body, headers={"Authorization": auth}) as reply,
        ):
            answer = await reply.json(content_type=None)
        method = path.split("/")[2] if verb == "POST" else "update"
        if reply.status in (200, 201):
            race.outcomes[f"{method} ok"] += 1
            if method == "start":
                race.ids.append(answer["id"])
        else:
            assert reply.status == 400 and answer["id"] in RULE_REFUSALS, (
                verb,
                path,
                body,
                reply.status,
                answer,
            )
            race.outcomes[f"{method} {answer['id']}"] += 1


async def test_racing_starts_stops_and_updates_on_two_workers_never_break_the_period_rules(
    pair: tuple[Worker, Worker], database_url: str
) -> None:
    first, second = pair
    async with aiohttp.ClientSession() as setup:
        http = Http(setup, first.url)
        username, auth = await http.user()
        channel = await http.channel(username, auth)  # strict: the default
        status, body = await http.call(
            "POST", f"/{username}/{channel}/folders", {"name": "work"}, auth
        )
        assert status == 201, body
        folder = body["id"]
    db = await asyncpg.connect(database_url)
    try:
        user_id = await db.fetchval("SELECT user_id FROM users WHERE username = $1", username)
        race = Race(base_time=time.time() - 3600)
        start = asyncio.Event()
        samples: list[tuple[int, int]] = []
        done = asyncio.Event()

        async def sample() -> None:
            """The invariants hold at every moment, not only at the end."""
            while not done.is_set():
                row = await db.fetchrow(INVARIANTS, user_id, channel)
                samples.append((row["running"], row["overlaps"]))
                await asyncio.sleep(0.05)

        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [
                asyncio.create_task(
                    client(
                        race,
                        session,
                        f"{(first, second)[n % 2].url}/{username}/{channel}",
                        auth,
                        folder,
                        SEED * 1000 + n,
                        start,
                    )
                )
                for n in range(CLIENTS)
            ]
            sampler = asyncio.create_task(sample())
            started = time.monotonic()
            start.set()
            try:
                async with asyncio.timeout(60):
                    await asyncio.gather(*tasks)
            finally:
                done.set()
                await sampler
            seconds = time.monotonic() - started
        final = await db.fetchrow(INVARIANTS, user_id, channel)
    finally:
        await db.close()
    calls = sum(race.outcomes.values())
    assert calls == CLIENTS * CALLS_PER_CLIENT
    assert final["running"] <= 1, dict(final)
    assert final["overlaps"] == 0, dict(final)
    bad = [s for s in samples if s[0] > 1 or s[1] > 0]
    assert not bad, bad[:5]
    # A real race: many periods were started and many writes succeeded on both sides.
    assert race.outcomes["start ok"] >= 30, race.outcomes
    assert race.outcomes["update ok"] >= 10, race.outcomes
    print(
        f"\nConcurrency: {CLIENTS} clients x {CALLS_PER_CLIENT} calls on 2 workers in "
        f"{seconds:.1f} s, {final['periods']} periods raced; outcomes {dict(race.outcomes)}; "
        f"{len(samples)} samples + the end state: running <= 1, overlaps 0"
    )
