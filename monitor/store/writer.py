"""Write transactions as plain functions over a Session, committed in groups.

aiosqlite hands every DBAPI call (cursor, execute, fetch, close, commit) to its
thread and back: recording one probe run took about 60 such round trips, 15 ms of
CPU, most of it in the hand-overs (issue 12's profile). The writer runs a whole
transaction — a function over a synchronous Session — in one dedicated thread on
the sqlite3 driver: one hop per transaction. SQLite admits one writer at a time,
so one thread costs no parallelism, and our own writes queue here instead of
busy-waiting on the file lock. On PostgreSQL (asyncpg has no thread) the same
function runs in an AsyncSession through run_sync.

Group commit: the works queued within `window` of each other (and while a group
is being written) run in one transaction, one after the other, and commit
together — one thread hop, one BEGIN and one COMMIT (one pool checkout on
PostgreSQL) for the group. Each caller still gets its own result only once its
work is committed. When a work raises, the group is rolled back and each of its
works runs again in a transaction of its own, so one bad work fails alone: a work
may therefore run more than once, and only its last run counts. An error that
`shared` says is the database's (a lost connection) fails the whole group
without that second round.

Batched works (`run_batched`): the items queued for the same function within a
group are handed to it together, as one call with their list, so a statement per
item becomes one per group (the outbox records its attempts so). Alone — when the
group is run again work by work — an item's function gets a list of one.

Never call it from inside an open SQLite write transaction of an AsyncSession: the
writer would wait for that transaction's lock while it waits for the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.db import sqlite_writer_engine

T = TypeVar("T")

# Seconds a lone work waits for others to share its commit. At serve's 84 sessions a
# second (claims and records) about two works share one; 20 ms made it 3.7 for only
# 0.3 ms less CPU a session, not worth 20 ms more before every probe and alert.
WINDOW = 0.004


# A batched work: all of a group's items at once, a result for each, in their order.
Batch = Callable[[Session, list[Any]], list[T]]


@dataclass
class _Queued(Generic[T]):
    work: Callable[[Session], T] | None
    done: asyncio.Future[T]
    batch: Batch[T] | None = None
    item: Any = None


@dataclass(frozen=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None


def _never(exc: BaseException) -> bool:
    return False


class Writer:
    """Runs `work(session)` in a transaction that commits when it (and its group) returns."""

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], *,
                 window: float = WINDOW,
                 shared: Callable[[BaseException], bool] = _never) -> None:
        self._sessions = sessions
        self._window = window
        self._shared = shared
        self._engine: sa.Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            self._engine = sqlite_writer_engine(engine)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="monitor-writer")
        self._queue: list[_Queued[Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.groups = 0  # transactions committed or tried: the works per group, for benches

    async def run(self, work: Callable[[Session], T]) -> T:
        return await self._queued(work, None, None)

    async def run_batched(self, batch: Batch[T], item: Any) -> T:
        """`batch(session, [item, …])`'s result for `item`, with the group's other items
        for the same `batch` in the same call."""
        return await self._queued(None, batch, item)

    async def _queued(self, work: Callable[[Session], T] | None, batch: Batch[T] | None,
                      item: Any) -> T:
        if self._closed:
            raise RuntimeError("the database writer is closed (the service is stopping)")
        loop = asyncio.get_running_loop()
        queued: _Queued[T] = _Queued(work, loop.create_future(), batch, item)
        self._queue.append(queued)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # A caller cancelled before its group starts is left out of it; once the group
        # has started, its work commits or rolls back whole, as it would have in the
        # database.
        return await queued.done

    async def _flush(self) -> None:
        await asyncio.sleep(self._window)
        while self._queue:
            group = [q for q in self._queue if not q.done.done()]
            self._queue = []
            if not group:
                continue
            self.groups += 1
            outcomes = await self._write(group)
            for queued, outcome in zip(group, outcomes, strict=True):
                if queued.done.done():
                    continue  # its caller was cancelled meanwhile
                if outcome.error is not None:
                    queued.done.set_exception(outcome.error)
                else:
                    queued.done.set_result(outcome.value)

    async def _write(self, group: list[_Queued[Any]]) -> list[_Outcome]:
        try:
            return [_Outcome(value) for value in await self._transact(_merged(group))]
        except Exception as exc:
            if len(group) == 1 or self._shared(exc):
                return [_Outcome(error=exc)] * len(group)
        outcomes = []
        for queued in group:  # one of them failed the group: each alone, so it fails alone
            try:
                outcomes.append(_Outcome((await self._transact(_merged([queued])))[0]))
            except Exception as exc:
                outcomes.append(_Outcome(error=exc))
        return outcomes

    async def _transact(self, work: Callable[[Session], T]) -> T:
        if self._thread is None:
            async with self._sessions() as session, session.begin():
                return await within(session, work)
        # Once in the thread, the transaction finishes there whatever the callers do.
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._in_thread,
                                                                 work)

    def _in_thread(self, work: Callable[[Session], T]) -> T:
        assert self._engine is not None
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    async def close(self) -> None:
        """Write the groups already queued, then close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        if self._engine is not None and self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
            self._thread.shutdown(wait=False)


def _merged(group: list[_Queued[Any]]) -> Callable[[Session], list[Any]]:
    """One work for the group: the plain works in turn, each batch once (where its first
    item was queued) with all its items; a result for each queued work, in order."""
    items: dict[Batch[Any], list[Any]] = {}
    for queued in group:
        if queued.batch is not None:
            items.setdefault(queued.batch, []).append(queued.item)

    def work(session: Session) -> list[Any]:
        results: dict[Batch[Any], Iterator[Any]] = {}
        out = []
        for queued in group:
            if queued.batch is None:
                assert queued.work is not None
                out.append(queued.work(session))
                continue
            if queued.batch not in results:
                batched = items[queued.batch]
                values = queued.batch(session, batched)
                if len(values) != len(batched):
                    raise ValueError(f"{queued.batch.__name__} returned {len(values)} "
                                     f"results for {len(batched)} items")
                results[queued.batch] = iter(values)
            out.append(next(results[queued.batch]))
        return out

    return work


async def within(session: AsyncSession, work: Callable[[Session], T]) -> T:
    """Run `work` in `session` (and its transaction, if one is open).

    sqlmodel's AsyncSession hands run_sync its own Session class, though the
    signature it inherits names SQLAlchemy's.
    """
    return await session.run_sync(cast(Callable[[sqlalchemy.orm.Session], T], work))
