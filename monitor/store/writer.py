"""Write transactions as plain functions over a Session, one thread hop each on SQLite.

aiosqlite hands every DBAPI call (cursor, execute, fetch, close, commit) to its
thread and back: recording one probe run took about 60 such round trips, 15 ms of
CPU, most of it in the hand-overs (issue 12's profile). The writer runs a whole
transaction — a function over a synchronous Session — in one dedicated thread on
the sqlite3 driver: one hop per transaction. SQLite admits one writer at a time,
so one thread costs no parallelism, and our own writes queue here instead of
busy-waiting on the file lock. On PostgreSQL (asyncpg has no thread) the same
function runs in an AsyncSession through run_sync.

Never call it from inside an open SQLite write transaction of an AsyncSession: the
writer would wait for that transaction's lock while it waits for the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.db import sqlite_writer_engine

T = TypeVar("T")


class Writer:
    """Runs `work(session)` in a transaction that commits when it returns."""

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine: sa.Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            self._engine = sqlite_writer_engine(engine)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="monitor-writer")
        self._closed = False

    async def run(self, work: Callable[[Session], T]) -> T:
        if self._closed:
            raise RuntimeError("the database writer is closed (the service is stopping)")
        if self._engine is None or self._thread is None:
            async with self._sessions() as session, session.begin():
                return await within(session, work)
        # A cancelled caller does not stop the transaction: it commits or rolls back
        # whole in the thread, as it would have in the database.
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._transact,
                                                                 work)

    def _transact(self, work: Callable[[Session], T]) -> T:
        assert self._engine is not None
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    async def close(self) -> None:
        """Finish the transactions already queued, then close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._engine is not None and self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
            self._thread.shutdown(wait=False)


async def within(session: AsyncSession, work: Callable[[Session], T]) -> T:
    """Run `work` in `session` (and its transaction, if one is open).

    sqlmodel's AsyncSession hands run_sync its own Session class, though the
    signature it inherits names SQLAlchemy's.
    """
    return await session.run_sync(cast(Callable[[sqlalchemy.orm.Session], T], work))
