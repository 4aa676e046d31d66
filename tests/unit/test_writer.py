"""The writer: a write transaction as one function, whole or not at all, on both databases."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from monitor import store
from monitor.config import Config
from monitor.service.context import AppContext
from monitor.store.db import migrate
from monitor.store.tables import RunRow
from tests.databases import throwaway_database
from tests.unit.test_detect import run


@pytest.fixture(params=["sqlite", "postgresql"])
async def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AppContext]:
    async with throwaway_database(request.param, tmp_path) as url:
        context = AppContext.create(Config(), url)
        await migrate(context.engine)
        try:
            yield context
        finally:
            await context.close()


async def run_ids(ctx: AppContext) -> list[str]:
    async with ctx.sessions() as session:
        return sorted((await session.exec(sa.select(RunRow.id))).scalars().all())


async def test_a_transaction_commits_when_its_function_returns(ctx: AppContext) -> None:
    threads: list[int] = []

    def write(session: Session) -> str:
        threads.append(threading.get_ident())
        store.runs.add_run(session, run().model_copy(update={"run_id": "r1"}))
        return "written"

    assert await ctx.writer.run(write) == "written"
    assert await run_ids(ctx) == ["r1"]  # visible to the service's other sessions
    # SQLite: in the writer's own thread (one hop); PostgreSQL: on the event loop's.
    on_loop = threads == [threading.get_ident()]
    assert on_loop is (ctx.engine.dialect.name == "postgresql")


async def test_a_function_that_raises_leaves_nothing(ctx: AppContext) -> None:
    def write(session: Session) -> None:
        store.runs.add_run(session, run().model_copy(update={"run_id": "r1"}))
        raise RuntimeError("after the first statement")

    with pytest.raises(RuntimeError, match="after the first statement"):
        await ctx.writer.run(write)
    assert await run_ids(ctx) == []


async def test_a_cancelled_caller_does_not_cut_a_transaction_in_half(tmp_path: Path) -> None:
    ctx = AppContext.create(Config(), f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    await migrate(ctx.engine)
    started, release = threading.Event(), threading.Event()

    def write(session: Session) -> None:
        store.runs.add_run(session, run().model_copy(update={"run_id": "r1"}))
        started.set()
        release.wait(10)
        store.runs.add_run(session, run().model_copy(update={"run_id": "r2"}))

    try:
        caller = asyncio.create_task(ctx.writer.run(write))
        assert await asyncio.to_thread(started.wait, 10)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        await ctx.writer.run(lambda session: None)  # queued behind it: runs once it is done
        assert await run_ids(ctx) == ["r1", "r2"]
    finally:
        release.set()
        await ctx.close()


async def test_a_closed_writer_refuses_work_with_a_clear_error(ctx: AppContext) -> None:
    await ctx.writer.close()
    await ctx.writer.close()  # twice: the service's shutdown and a caller's cleanup
    with pytest.raises(RuntimeError, match="writer is closed"):
        await ctx.writer.run(lambda session: None)


def adding(run_id: str, sessions: list[Session] | None = None) -> Callable[[Session], str]:
    def write(session: Session) -> str:
        if sessions is not None:
            sessions.append(session)
        store.runs.add_run(session, run().model_copy(update={"run_id": run_id}))
        return run_id
    return write


async def test_works_queued_together_commit_in_one_transaction(ctx: AppContext) -> None:
    seen: list[Session] = []
    results = await asyncio.gather(*(ctx.writer.run(adding(f"r{n}", seen)) for n in range(5)))
    assert results == [f"r{n}" for n in range(5)]  # each caller gets its own result
    assert ctx.writer.groups == 1
    assert len({id(session) for session in seen}) == 1  # one session, one transaction
    assert await run_ids(ctx) == [f"r{n}" for n in range(5)]


async def test_a_work_that_raises_fails_alone_and_its_group_commits(ctx: AppContext) -> None:
    def bad(session: Session) -> None:
        store.runs.add_run(session, run().model_copy(update={"run_id": "bad"}))
        raise ValueError("this one only")

    outcomes = await asyncio.gather(ctx.writer.run(adding("r1")), ctx.writer.run(bad),
                                    ctx.writer.run(adding("r2")), return_exceptions=True)
    assert outcomes[0] == "r1" and outcomes[2] == "r2"
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "this one only"
    assert await run_ids(ctx) == ["r1", "r2"]  # nothing of the bad one, all of the others


async def test_a_lost_database_fails_the_whole_group_at_once(ctx: AppContext) -> None:
    calls: list[str] = []

    def failing(name: str) -> Callable[[Session], None]:
        def write(session: Session) -> None:
            calls.append(name)
            store.runs.add_run(session, run().model_copy(update={"run_id": name}))
            if name == "b":
                raise sa.exc.OperationalError("SELECT 1", {}, ConnectionError("gone"))
        return write

    outcomes = await asyncio.gather(*(ctx.writer.run(failing(n)) for n in "abc"),
                                    return_exceptions=True)
    assert all(isinstance(o, sa.exc.OperationalError) for o in outcomes)
    assert calls == ["a", "b"]  # no second round of each alone against a database away
    assert await run_ids(ctx) == []


async def test_a_caller_cancelled_before_its_group_starts_is_left_out(ctx: AppContext) -> None:
    caller = asyncio.create_task(ctx.writer.run(adding("cancelled")))
    await asyncio.sleep(0)  # queued, its group not started (the writer waits its window)
    caller.cancel()
    assert await ctx.writer.run(adding("r1")) == "r1"
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await run_ids(ctx) == ["r1"]


def add_all(calls: list[list[str]]) -> Callable[[Session, list[str]], list[str]]:
    def batch(session: Session, run_ids: list[str]) -> list[str]:
        calls.append(list(run_ids))
        if "bad" in run_ids:
            raise ValueError("a bad item")
        for run_id in run_ids:
            store.runs.add_run(session, run().model_copy(update={"run_id": run_id}))
        return [f"added {run_id}" for run_id in run_ids]
    return batch


async def test_batched_items_queued_together_go_to_one_call(ctx: AppContext) -> None:
    calls: list[list[str]] = []
    batch = add_all(calls)
    results = await asyncio.gather(ctx.writer.run_batched(batch, "b1"),
                                   ctx.writer.run(adding("w1")),
                                   ctx.writer.run_batched(batch, "b2"),
                                   ctx.writer.run_batched(batch, "b3"))
    assert results == ["added b1", "w1", "added b2", "added b3"]  # each caller its own
    assert calls == [["b1", "b2", "b3"]] and ctx.writer.groups == 1
    assert await run_ids(ctx) == ["b1", "b2", "b3", "w1"]


async def test_a_batch_that_raises_is_run_again_item_by_item(ctx: AppContext) -> None:
    calls: list[list[str]] = []
    batch = add_all(calls)
    outcomes = await asyncio.gather(*(ctx.writer.run_batched(batch, item)
                                      for item in ("b1", "bad", "b2")),
                                    ctx.writer.run(adding("w1")), return_exceptions=True)
    assert outcomes[0] == "added b1" and outcomes[2] == "added b2" and outcomes[3] == "w1"
    assert isinstance(outcomes[1], ValueError)
    assert calls == [["b1", "bad", "b2"], ["b1"], ["bad"], ["b2"]]
    assert await run_ids(ctx) == ["b1", "b2", "w1"]


async def test_a_batch_with_a_result_short_fails_with_a_clear_error(ctx: AppContext) -> None:
    def short(session: Session, items: list[str]) -> list[str]:
        return items[:1]

    outcomes = await asyncio.gather(*(ctx.writer.run_batched(short, i) for i in "ab"),
                                    return_exceptions=True)
    # Together, the count is wrong; alone, each item gets its one result.
    assert outcomes == ["a", "b"]
    with pytest.raises(ValueError, match="returned 0 results for 1 items"):
        await ctx.writer.run_batched(lambda session, items: [], "c")
