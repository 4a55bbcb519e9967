"""Group commit: concurrent writes of one kind share one statement and one commit.

A durable commit waits for PostgreSQL's WAL flush, and every statement costs a round trip
and a backend wake-up. Under load, many requests record a mark at the same moment: while
one group is being written, the next requests queue, and the next group takes them all
(at most ``max_group``). Each request still gets its own answer, only after the commit
that holds its row. A lone request waits for nobody: it is a group of one.

If a group's statement breaks a constraint (a duplicate id, say), its items are written
again one by one, so one request's error never becomes its neighbours'; any other failure
(the database is down) is at once the answer of every item of the group and of the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import asyncpg

from pryvrt.storage.pool import UNAVAILABLE

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Batches ``submit(item)`` calls into ``write_many(items)`` (see the module docstring)."""

    def __init__(
        self,
        write_many: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        write_one: Callable[[T], Awaitable[R]],
        *,
        max_group: int = 256,
    ) -> None:
        self._write_many = write_many
        self._write_one = write_one
        self._max_group = max_group
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        # For tests and operators: how much grouping happened.
        self.groups = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")
        return await future

    async def _run(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self._max_group]
                del self._pending[: self._max_group]
                await self._write(group)
        finally:
            self._task = None
            if self._pending:  # cancelled with work left (shutdown): fail it, don't hang
                for _, future in self._pending:
                    if not future.done():
                        future.set_exception(ConnectionError("group commit stopped"))
                self._pending.clear()

    async def _write(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.groups += 1
        self.items += len(group)
        if len(group) > 1:
            try:
                results = await self._write_many([item for item, _ in group])
            except asyncpg.IntegrityConstraintViolationError:
                pass  # one row's fault (a taken id): one statement each, below
            except Exception as exc:
                self._fail_all(group, exc)
                return
            else:
                for (_, future), result in zip(group, results, strict=True):
                    _settle(future, result)
                return
        for index, (item, future) in enumerate(group):
            try:
                _settle(future, await self._write_one(item))
            except UNAVAILABLE as exc:
                self._fail_all(group[index:], exc)
                return
            except Exception as exc:
                _settle(future, exc=exc)

    def _fail_all(self, group: list[tuple[T, asyncio.Future[R]]], exc: Exception) -> None:
        """The database's fault (down, frozen): the same answer for the group and for the
        queued items, now, rather than one timeout after another."""
        waiting, self._pending = self._pending, []
        for _, future in group + waiting:
            _settle(future, exc=exc)


def _settle(
    future: asyncio.Future[R], result: R | None = None, exc: Exception | None = None
) -> None:
    if future.done():  # the request was cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
