"""Providers shared out over the live replicas: one owner each, a dead one's share moves."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from monitor.config import Config
from monitor.service.context import AppContext
from monitor.service.partition import ALIVE_FOR, heartbeat, mine, owner
from monitor.service.probing import run_slot
from monitor.store.db import migrate
from monitor.store.tables import SlotClaimRow
from tests.metrics import counter_total
from tests.unit.scripted_smtp import ScriptedServer


def test_rendezvous_owner_is_balanced_and_moves_only_the_leavers_share() -> None:
    replicas = ["a-1", "b-2", "c-3"]
    providers = [f"p{i}" for i in range(3000)]
    before = {p: owner(p, replicas) for p in providers}
    shares = Counter(before.values())
    assert set(shares) == set(replicas)
    assert all(800 <= n <= 1200 for n in shares.values()), shares
    after = {p: owner(p, ["a-1", "c-3"]) for p in providers}
    moved = {p for p in providers if before[p] != after[p]}
    assert moved == {p for p in providers if before[p] == "b-2"}  # only b's share moves
    assert owner("p1", []) is None


async def test_each_slot_is_claimed_by_its_owner_alone_and_a_dead_ones_share_moves(
        tmp_path: Path) -> None:
    async with ScriptedServer() as server:
        config = Config.model_validate({"providers": [
            {"name": f"p{i}", "host": "127.0.0.1", "port": server.port, "helo": "t.test",
             "interval": "1s", "timeout": "5s"} for i in range(12)]})  # 0.1 s jitter
        url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
        replicas = [AppContext.create(config, url) for _ in range(3)]
        now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        for ctx in replicas:
            ctx.clock = lambda: now
        try:
            await migrate(replicas[0].engine)
            for ctx in replicas:
                await heartbeat(ctx)
            for ctx in replicas:  # the last one read everybody; the first ones read again
                await heartbeat(ctx)
            names = {ctx.replica for ctx in replicas}
            assert all(set(ctx.live) == names for ctx in replicas)
            for provider in config.providers:
                assert sum(mine(ctx, provider.name) for ctx in replicas) == 1
            for ctx in replicas:  # every replica's scheduler fires every provider's job
                for provider in config.providers:
                    await run_slot(ctx, provider)
            async with replicas[0].sessions() as session:
                claims = (await session.exec(sa.select(SlotClaimRow))).scalars().all()
            assert len(claims) == len(config.providers)  # one attempt per slot, no race
            assert sum(counter_total(ctx, "claims_lost") for ctx in replicas) == 0
            for claim in claims:
                assert claim.claimed_by == owner(claim.provider, sorted(names))

            # The third replica dies; once its heartbeat is old, its share moves.
            dead, survivors = replicas[2], replicas[:2]
            now += ALIVE_FOR + timedelta(seconds=1)
            for ctx in survivors:
                await heartbeat(ctx)
            for ctx in survivors:
                assert dead.replica not in ctx.live
            now += timedelta(seconds=1)  # the next slot
            for ctx in survivors:
                for provider in config.providers:
                    await run_slot(ctx, provider)
            async with replicas[0].sessions() as session:
                later = [c for c in (await session.exec(sa.select(SlotClaimRow))).scalars()
                         if c.claimed_at == now]
            assert sorted(c.provider for c in later) == sorted(p.name for p in config.providers)
            assert {c.claimed_by for c in later} <= {ctx.replica for ctx in survivors}
        finally:
            for ctx in replicas:
                await ctx.close()
