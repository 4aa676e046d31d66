"""A committed event wakes the outbox at once: in process, and on PostgreSQL across replicas
(NOTIFY at commit, LISTEN per replica). The poll is set to a minute here, so a delivery
within a second can only come from the wake-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from monitor.config import Config, ProviderConfig
from monitor.ids import new_id
from monitor.service import outbox
from monitor.service.context import AppContext
from monitor.service.outbox import Outbox
from monitor.service.probing import record
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store.db import migrate
from tests.databases import postgres_database
from tests.receivers import Receiver, running
from tests.unit.test_detect import run
from tests.waiting import until

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _config(receiver: Receiver) -> Config:
    return Config.model_validate({
        "providers": [{"name": "p", "host": "127.0.0.1", "port": 25, "helo": "t.test",
                       "thresholds": {"failure": 1}}],
        "subscriptions": [{"name": "ops", "kind": "generic", "url": f"{receiver.url}/hook",
                           "secret": SECRET, "events": ["probe.*"]}],
        "settings": {"allow_private_destinations": True, "allow_http_destinations": True}})


@asynccontextmanager
async def _worker(ctx: AppContext) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(Outbox(ctx).run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def _fail(ctx: AppContext, provider: ProviderConfig) -> float:
    """Record a failing run (its probe.failed commits with it); when it committed."""
    result = run(rcpt=(550, "5.1.1")).model_copy(update={"provider": provider.name,
                                                         "run_id": new_id("r")})
    events = await record(ctx, provider, result)
    assert [e.type.value for e in events] == ["probe.failed"]
    return time.monotonic()


@pytest.fixture(autouse=True)
def slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "POLL_INTERVAL", 60.0)


async def test_a_commit_in_this_process_wakes_its_outbox(tmp_path: Path) -> None:
    async with running(Receiver()) as receiver:
        ctx = AppContext.create(_config(receiver), f"sqlite+aiosqlite:///{tmp_path / 'db'}")
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        provider = ctx.config.providers[0]
        try:
            async with _worker(ctx):
                await asyncio.sleep(0)  # the worker's first (empty) pass starts its wait
                await until(lambda: not ctx.outbox_wake.is_set(), "the outbox asleep")
                committed = await _fail(ctx, provider)
                [received] = await receiver.wait_for(1, within=5)
        finally:
            await ctx.close()
    assert received.at - committed < 1.0


async def test_a_commit_on_one_replica_wakes_the_others_outbox() -> None:
    async with running(Receiver()) as receiver, postgres_database() as url:
        config = _config(receiver)
        recorder, sender = AppContext.create(config, url), AppContext.create(config, url)
        await migrate(recorder.engine)
        await sync_config_subscriptions(recorder)
        try:
            async with _worker(sender):
                await until(lambda: sender.metrics.outbox_listening._value.get() == 1,
                            "the outbox listening")
                latencies = []
                for _ in range(3):  # failed, recovered... each one NOTIFYed
                    seen = len(receiver.received)
                    committed = await _fail(recorder, config.providers[0])
                    await receiver.wait_for(seen + 1, within=5)
                    latencies.append(receiver.received[-1].at - committed)
                    await _recover(recorder, config.providers[0])
                    await receiver.wait_for(seen + 2, within=5)
        finally:
            for ctx in (recorder, sender):
                await ctx.close()
    assert max(latencies) < 1.0, latencies
    assert sender.metrics.outbox_listening._value.get() == 0  # it let go at the stop


async def _recover(ctx: AppContext, provider: ProviderConfig) -> None:
    result = run().model_copy(update={"provider": provider.name,
                                                         "run_id": new_id("r")})
    events = await record(ctx, provider, result)
    assert [e.type.value for e in events] == ["probe.recovered"]
