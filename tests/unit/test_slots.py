"""The slot clock: only this replica's share is scheduled, each on its own boundaries."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from monitor.config import Config
from monitor.service.context import AppContext
from monitor.service.partition import owner
from monitor.service.probing import slot_boundary as boundary
from monitor.service.probing import slot_for
from monitor.service.slots import SlotTable, owned_names, run_slots
from monitor.store.db import migrate
from monitor.store.tables import RunRow
from tests.unit.scripted_smtp import ScriptedServer
from tests.waiting import eventually

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _config(count: int, interval: str = "10s", port: int = 25) -> Config:
    return Config.model_validate({"providers": [
        {"name": f"p{i}", "host": "127.0.0.1", "port": port, "helo": "t.test",
         "interval": interval, "timeout": "5s"} for i in range(count)]})


def _tick(table: SlotTable, start: datetime, seconds: float, step: float = 0.25
          ) -> list[tuple[str, int, float]]:
    """Wake the table every `step` seconds; (provider, slot, lateness) of each fire."""
    fired = []
    now = start
    while now < start + timedelta(seconds=seconds):
        fires, missed = table.due(now)
        assert missed == 0
        fired += [(f.provider.name, f.slot, (now - f.boundary).total_seconds())
                  for f in fires]
        now += timedelta(seconds=step)
    return fired


def test_each_owned_provider_fires_once_per_slot_on_its_boundary() -> None:
    config = _config(20)
    table = SlotTable(config.providers)
    table.own([p.name for p in config.providers[:8]], START)
    fired = _tick(table, START, 60)
    assert {name for name, _, _ in fired} == {f"p{i}" for i in range(8)}
    per_slot = Counter((name, slot) for name, slot, _ in fired)
    assert max(per_slot.values()) == 1
    assert Counter(name for name, _ in per_slot).most_common()[-1][1] >= 5  # 60 s / 10 s
    assert all(0 <= lateness < 0.25 for _, _, lateness in fired)
    for name, slot, _ in fired:  # the boundary is the one probing.slot_for agrees with
        provider = config.provider(name)
        assert provider is not None
        assert slot_for(provider, boundary(provider, slot) + timedelta(seconds=0.01)) == slot


def test_slots_slept_through_collapse_into_the_current_one_and_are_counted() -> None:
    config = _config(1)
    table = SlotTable(config.providers)
    table.own(["p0"], START)
    first = table.next_at()
    assert first is not None
    late = first + timedelta(seconds=35)  # three boundaries passed while blocked
    fires, missed = table.due(late)
    provider = config.providers[0]
    assert [f.slot for f in fires] == [slot_for(provider, late)]
    assert missed == 3
    assert table.next_at() == boundary(provider, slot_for(provider, late) + 1)


def test_a_change_of_share_keeps_the_due_slot_of_a_kept_provider_and_drops_the_others(
        ) -> None:
    config = _config(3)
    table = SlotTable(config.providers)
    table.own(["p0", "p1"], START)
    due_at = max(boundary(p, slot_for(p, START) + 1) for p in config.providers[:2])
    table.own(["p1", "p2"], due_at)  # the share changes at the very moment p1 is due
    fires, _ = table.due(due_at)
    assert "p1" in {f.provider.name for f in fires}
    assert "p0" not in {name for name, _, _ in _tick(table, due_at, 40)}


def test_three_replicas_schedule_disjoint_shares_that_cover_every_provider() -> None:
    config = _config(300)
    live = ("a-1", "b-2", "c-3")
    shares = []
    for replica in live:
        ctx = AppContext(config=config, engine=None, sessions=None,  # type: ignore[arg-type]
                         replica=replica)
        ctx.live = live
        shares.append(set(owned_names(ctx)))
        assert all(owner(name, live) == replica for name in shares[-1])
    assert sum(len(s) for s in shares) == 300
    assert set().union(*shares) == {p.name for p in config.providers}
    assert all(60 <= len(s) <= 140 for s in shares), [len(s) for s in shares]


async def test_the_clock_runs_only_this_replicas_share(tmp_path: Path) -> None:
    async with ScriptedServer() as server:
        config = _config(6, interval="1s", port=server.port)
        ctx = AppContext.create(config, f"sqlite+aiosqlite:///{tmp_path / 'db'}")
        await migrate(ctx.engine)
        # Another, live replica: it owns some providers, which this one never runs.
        ctx.live = tuple(sorted({ctx.replica, "other-replica-1"}))
        mine = set(owned_names(ctx))
        assert 0 < len(mine) < 6
        stopping = asyncio.Event()
        clock = asyncio.create_task(run_slots(ctx, stopping))

        async def runs() -> list[RunRow]:
            async with ctx.sessions() as session:
                return list((await session.exec(sa.select(RunRow))).scalars().all())

        async def each_ran_twice() -> bool:
            counts = Counter(r.provider for r in await runs())
            return all(counts[name] >= 2 for name in mine)

        try:
            await eventually(each_ran_twice, "two slots of each owned provider", within=20)
        finally:
            stopping.set()
            await asyncio.wait_for(clock, 5)
            if ctx.inflight:
                await asyncio.wait(list(ctx.inflight), timeout=10)
            recorded = await runs()
            await ctx.close()
    assert {r.provider for r in recorded} == mine
    assert max(Counter((r.provider, r.slot) for r in recorded).values()) == 1
    lateness = ctx.metrics.scheduler_lateness.collect()[0].samples
    count = next(s.value for s in lateness if s.name.endswith("_count"))
    assert count >= 2 * len(mine)
    assert ctx.metrics.providers_owned._value.get() == len(mine)


def test_a_provider_handed_over_mid_slot_tries_that_slot_at_once() -> None:
    config = _config(2)
    table = SlotTable(config.providers)
    table.own(["p0"], START)
    later = START + timedelta(seconds=3)
    table.due(later)  # p0's own boundary may have come meanwhile
    table.own(["p0", "p1"], later, catch_up=True)
    fires, missed = table.due(later)
    p1 = config.providers[1]
    assert [(f.provider.name, f.slot) for f in fires] == [("p1", slot_for(p1, later))]
    assert missed == 0
    fires, _ = table.due(later + timedelta(seconds=0.5))
    assert "p1" not in {f.provider.name for f in fires}  # its next slot waits its boundary
