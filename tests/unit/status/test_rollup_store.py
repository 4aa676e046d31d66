"""Rollups as the service writes them: in the transaction that records each run or
receive result, summed by the database per window, kept 400 days."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from monitor import store
from monitor.receive.result import Placement, ReceiveStatus
from monitor.service.context import AppContext
from monitor.service.scheduler import prune
from monitor.status import histogram
from monitor.status.rollup import WINDOWS, hour_of
from monitor.store.db import migrate
from monitor.store.tables import HourlyRollupRow, RunRow
from tests.databases import throwaway_database
from tests.unit.status.seed import NOW, arrival, config, probe, record_arrival, record_probe


@pytest.fixture(params=["sqlite", "postgresql"])
async def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AppContext]:
    async with throwaway_database(request.param, tmp_path) as url:
        context = AppContext.create(config("a", "b", retention="30d"), url)
        context.clock = lambda: NOW
        await migrate(context.engine)
        try:
            yield context
        finally:
            await context.close()


async def test_runs_and_arrivals_land_in_their_hour(ctx: AppContext) -> None:
    hour = hour_of(NOW)
    for at, ok, ms in ((hour, True, 100), (hour + timedelta(minutes=59, seconds=59), False, 300),
                       (hour + timedelta(hours=1), True, 200)):  # the next hour's first second
        await record_probe(ctx, probe("a", at, ok=ok, duration_ms=ms))
    await record_arrival(ctx, arrival("a", hour + timedelta(minutes=5), latency_ms=3000))
    await record_arrival(ctx, arrival("a", hour + timedelta(minutes=6),
                                      placement=Placement.JUNK))
    await record_arrival(ctx, arrival("a", hour + timedelta(minutes=7),
                                      status=ReceiveStatus.MISSING))
    async with ctx.sessions() as session:
        rows = await store.rollups.hours(session, "a", hour)
    assert list(rows) == [hour, hour + timedelta(hours=1)]
    first = rows[hour]
    assert (first.runs, first.ok, first.failed, dict(first.failures)) == (2, 1, 1,
                                                                          {"permanent": 1})
    assert dict(first.delivery) == {"ok": 1, "junk": 1, "missing": 1}
    assert histogram.count(first.receive_ms) == 2
    assert histogram.quantile(first.probe_ms, 0.5) == pytest.approx(100, rel=0.1)
    assert histogram.quantile(first.probe_ms, 0.95) == pytest.approx(300, rel=0.1)
    assert rows[hour + timedelta(hours=1)].runs == 1


async def test_a_failed_recording_leaves_no_rollup(ctx: AppContext,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash after the rollup, before the commit")

    monkeypatch.setattr(store.events, "add_events", crash)
    with pytest.raises(RuntimeError):
        await record_probe(ctx, probe("a", NOW, ok=False))
    async with ctx.sessions() as session:
        assert (await session.exec(sa.select(HourlyRollupRow))).all() == []
        assert (await session.exec(sa.select(RunRow))).all() == []


async def test_uptime_per_window_is_summed_by_the_database(ctx: AppContext) -> None:
    # a: up for the last day, down the six days before; three hours of gap inside.
    # (Rows written directly, in one transaction: the recording path is tested above.)
    def write(session: Session) -> None:
        for h in range(24 * 7):
            if 5 <= h < 8:
                continue  # the service was down: no run, unknown
            store.rollups.add_run(session, probe("a", NOW - timedelta(hours=h), ok=h < 24))
        store.rollups.add_run(session, probe("b", NOW - timedelta(days=40)))

    await ctx.writer.run(write)
    async with ctx.sessions() as session:
        up = await store.rollups.uptimes(session, WINDOWS, NOW)
        only_b = await store.rollups.uptimes(session, WINDOWS, NOW, provider="b")
    day, week = up["a"]["24h"], up["a"]["7d"]
    assert (day.runs, day.ok, day.observed_hours) == (21, 21, 21)
    assert day.percent() == "100%" and day.coverage == pytest.approx(21 / 24)
    assert (week.runs, week.ok, week.observed_hours) == (165, 21, 165)
    assert [up["b"][w].runs for w in ("24h", "7d", "30d", "90d", "1y")] == [0, 0, 0, 1, 1]
    assert list(only_b) == ["b"]


async def test_retention_keeps_rollups_400_days_and_runs_their_own(ctx: AppContext) -> None:
    for days in (399, 401):
        await record_probe(ctx, probe("a", NOW - timedelta(days=days)))
    await record_probe(ctx, probe("a", NOW - timedelta(days=2)))
    await prune(ctx)  # at NOW (the injected clock): runs go after 30 days, rollups after 400
    async with ctx.sessions() as session:
        rollups = await store.rollups.hours(session, "a", NOW - timedelta(days=1000))
        runs = (await session.exec(sa.select(RunRow))).scalars().all()
    assert sorted((NOW - at).days for at in rollups) == [2, 399]
    assert [(NOW - r.started_at).days for r in runs] == [2]
    ctx.clock = lambda: NOW + timedelta(days=2)
    await prune(ctx)
    async with ctx.sessions() as session:
        rollups = await store.rollups.hours(session, "a", NOW - timedelta(days=1000))
    assert sorted((NOW - at).days for at in rollups) == [2]


async def test_concurrent_writers_of_one_hour_lose_no_run(ctx: AppContext) -> None:
    async def one(ms: float) -> None:
        await ctx.writer.run(lambda s: store.rollups.add_run(s, probe("a", NOW, duration_ms=ms)))

    await asyncio.gather(*(one(100 + i) for i in range(8)))
    async with ctx.sessions() as session:
        [hour] = (await store.rollups.hours(session, "a", NOW)).values()
    assert hour.runs == 8 and histogram.count(hour.probe_ms) == 8


async def test_the_front_pages_cache_adds_the_current_hour_to_closed_ones(
        ctx: AppContext) -> None:
    from monitor.status.cache import UptimeCache

    cache = UptimeCache({"24h": WINDOWS["24h"]}, ttl=timedelta(minutes=5))
    hour = hour_of(NOW)

    async def day(now: datetime) -> tuple[int, int, int]:
        async with ctx.sessions() as session:
            u = (await cache.uptimes(session, now))["a"]["24h"]
        return u.runs, u.ok, u.observed_hours

    async def run(at: datetime, ok: bool = True) -> None:
        await ctx.writer.run(lambda s: store.rollups.add_run(s, probe("a", at, ok=ok)))

    await run(hour - timedelta(hours=2))
    await run(hour)
    assert await day(NOW) == (2, 2, 2)
    await run(hour + timedelta(minutes=1), ok=False)  # the current hour: seen at once
    await run(hour - timedelta(hours=1), ok=False)  # a closed hour, written late
    assert await day(NOW + timedelta(minutes=2)) == (3, 2, 2)
    assert await day(NOW + timedelta(minutes=5)) == (4, 2, 3)  # the ttl ran out
    # At the next hour every window moves on: recomputed whatever the ttl.
    await run(hour + timedelta(hours=1))
    assert await day(hour + timedelta(hours=1, seconds=1)) == (5, 3, 4)
