"""The service's probe job: a probe that cannot even start is a recorded failure that alerts."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from monitor import store
from monitor.config import Config, ProviderConfig
from monitor.service.context import AppContext
from monitor.service.probing import probe_and_record
from monitor.store.db import migrate
from monitor.store.tables import RunRow


async def test_a_probe_that_cannot_start_is_recorded_and_raises_probe_failed(
        tmp_path: Path) -> None:
    provider = ProviderConfig.model_validate(
        {"name": "broken", "host": "127.0.0.1", "port": 9, "thresholds": {"failure": 1}})
    # Loaded some other way than the validating loader: the client refuses this EHLO name.
    provider = provider.model_copy(update={"helo": "bad name\r\n"})
    ctx = AppContext.create(Config(providers=(provider,)),
                            f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    try:
        await migrate(ctx.engine)
        result = await probe_and_record(ctx, provider)
        assert not result.ok and result.failure is not None
        assert result.failure.text.startswith("the probe could not start")
        async with ctx.sessions() as session:
            runs = (await session.exec(sa.select(RunRow))).scalars().all()
            events = await store.events.list_events(session, provider="broken")
        assert [r.provider for r in runs] == ["broken"]
        assert [e.type for e in events] == ["probe.failed"]
        assert events[0].data["class"] == "protocol"
    finally:
        await ctx.close()


async def test_a_slot_whose_claimant_died_is_run_by_another_replica(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.service.probing import slot_for, slot_lease, take_over_slots
    from monitor.store.tables import SlotClaimRow
    from tests.unit.scripted_smtp import ScriptedServer

    async with ScriptedServer() as server:
        config = Config.model_validate({"providers": [
            {"name": "p", "host": "127.0.0.1", "port": server.port, "helo": "t.test",
             "interval": "60s", "timeout": "5s"}]})
        url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
        dead, alive = AppContext.create(config, url), AppContext.create(config, url)
        provider = config.providers[0]
        start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        now = start
        for ctx in (dead, alive):
            ctx.clock = lambda: now
        try:
            await migrate(dead.engine)
            slot = slot_for(provider, now)
            lease = slot_lease(provider)
            assert await dead.writer.run(  # claims, then dies before probing
                lambda s: store.runs.claim_slot(s, "p", slot, dead.replica, now, lease))
            assert await take_over_slots(alive) == 0  # within the lease: presumed alive
            now += slot_lease(provider) + timedelta(seconds=1)
            assert slot_for(provider, now) == slot  # still within the slot's interval
            assert await take_over_slots(alive) == 1
            assert await take_over_slots(alive) == 0  # recorded: done
            async with alive.sessions() as session:
                [run] = (await session.exec(sa.select(RunRow))).scalars().all()
                claim = await session.get(SlotClaimRow, ("p", slot))
            assert (run.slot, run.provider) == (slot, "p")
            assert claim is not None and claim.claimed_by == alive.replica and claim.done
            # The dead replica's late result, if it ever came, is not recorded twice.
            late = await probe_and_record(dead, provider, slot)
            assert late.ok
            async with alive.sessions() as session:
                assert len((await session.exec(sa.select(RunRow))).scalars().all()) == 1

            # A claim left open until its slot is over is not run: the next slot is due.
            now = start + provider.interval
            current = slot_for(provider, now)
            assert current == slot + 1
            assert await dead.writer.run(
                lambda s: store.runs.claim_slot(s, "p", current, dead.replica, now, lease))
            now += provider.interval  # the lease and the slot are both over
            assert await take_over_slots(alive) == 0
        finally:
            await dead.close()
            await alive.close()


async def test_a_result_held_through_an_outage_does_not_undo_a_newer_run(
        tmp_path: Path) -> None:
    from tests.unit.test_detect import run

    config = Config.model_validate({"providers": [
        {"name": "p", "host": "127.0.0.1", "thresholds": {"failure": 1, "recovery": 1}}]})
    provider = config.providers[0]
    url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    a, b = AppContext.create(config, url), AppContext.create(config, url)
    try:
        await migrate(a.engine)
        from monitor.service.probing import record

        failed = run(network=True).model_copy(update={"provider": "p", "run_id": "0001-a"})
        held = run(network=True).model_copy(update={"provider": "p", "run_id": "0002-a"})
        newer = run().model_copy(update={"provider": "p", "run_id": "0003-b"})
        assert [e.type for e in await record(a, provider, failed)] == ["probe.failed"]
        assert [e.type for e in await record(b, provider, newer)][-1] == "probe.recovered"
        # A's result from during the outage arrives last: history, not the state.
        assert await record(a, provider, held) == []
        state = await a.writer.run(lambda s: store.runs.load_state(s, "p", a.clock()))
        async with a.sessions() as session:
            runs = (await session.exec(sa.select(RunRow))).scalars().all()
        assert state.health.value == "up" and state.last_run_id == "0003-b"
        assert {r.id for r in runs} == {"0001-a", "0002-a", "0003-b"}
    finally:
        await a.close()
        await b.close()
