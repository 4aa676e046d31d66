"""Two schedulers sharing one PostgreSQL database: every (provider, slot) runs once."""

from __future__ import annotations

import asyncio
from collections import Counter

import sqlalchemy as sa

from monitor.config import Config
from monitor.service.context import AppContext
from monitor.service.scheduler import build_scheduler
from monitor.store.db import migrate
from monitor.store.tables import RunRow, SlotClaimRow
from tests.databases import postgres_database
from tests.unit.scripted_smtp import ScriptedServer

RUN_FOR = 20.0
INTERVAL = 1.0


async def test_two_schedulers_run_each_slot_once() -> None:
    async with ScriptedServer() as server, postgres_database() as url:
        config = Config.model_validate({"providers": [
            {"name": f"p{i}", "host": "127.0.0.1", "port": server.port, "helo": "t.test",
             "interval": f"{INTERVAL}s", "timeout": "5s"} for i in range(3)]})
        replicas = [AppContext.create(config, url) for _ in range(2)]
        await migrate(replicas[0].engine)
        schedulers = [build_scheduler(ctx) for ctx in replicas]
        for scheduler in schedulers:
            scheduler.start()
        await asyncio.sleep(RUN_FOR)  # the measured window itself, not a wait for a condition
        # As the service stops: pause, let claimed slots finish, then shut down.
        for scheduler in schedulers:
            scheduler.pause()
        pending = [t for ctx in replicas for t in ctx.inflight]
        if pending:
            await asyncio.wait(pending, timeout=10)
        for scheduler in schedulers:
            scheduler.shutdown(wait=False)

        async with replicas[0].sessions() as session:
            claims = (await session.exec(sa.select(SlotClaimRow))).scalars().all()
            runs = (await session.exec(sa.select(RunRow))).scalars().all()
        for ctx in replicas:
            await ctx.engine.dispose()

    by_provider = Counter(c.provider for c in claims)
    expected = RUN_FOR / INTERVAL
    for name in ("p0", "p1", "p2"):
        assert by_provider[name] >= 0.75 * expected, by_provider
    # One run per claimed slot, and no slot ran twice.
    assert len(runs) == len(claims)
    run_slots = Counter((r.provider, r.slot) for r in runs)
    assert set(run_slots) == {(c.provider, c.slot) for c in claims}
    assert max(run_slots.values()) == 1, [k for k, v in run_slots.items() if v > 1]
    # Both replicas took part (they race for every slot).
    assert {c.claimed_by for c in claims} == {ctx.replica for ctx in replicas}
