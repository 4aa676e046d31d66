"""The database stops under a running service: quiet, visible, and nothing recorded lost.

The cluster is the test's own (tests/pgcluster.py), stopped with `-m immediate`
while the scheduler runs and while a probe is in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import sqlalchemy as sa

from monitor.config import Config
from monitor.service.app import create_app
from monitor.service.context import AppContext
from monitor.service.scheduler import build_scheduler
from monitor.service.slots import run_slots
from monitor.store.db import migrate
from monitor.store.tables import RunRow
from tests.metrics import counter_total
from tests.pgcluster import Cluster
from tests.unit.scripted_smtp import Drip, ScriptedServer
from tests.waiting import until


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def actions(self, prefix: str) -> list[str]:
        return [str(getattr(r, "action", "")) for r in self.records
                if str(getattr(r, "action", "")).startswith(prefix)]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("monitor", "apscheduler")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    own = Cluster().init()
    own.start()
    yield own
    own.remove()


async def runs(ctx: AppContext) -> list[RunRow]:
    async with ctx.sessions() as session:
        return list((await session.exec(sa.select(RunRow))).scalars().all())


async def test_an_outage_is_three_log_lines_and_loses_no_recorded_result(
        cluster: Cluster, records: Records) -> None:
    # Each probe spends ~0.4 s in NOOP: long enough to stop the database mid-probe.
    async with ScriptedServer(replies={"NOOP": Drip("250 2.0.0 OK", every=0.03)}) as server:
        config = Config.model_validate({"providers": [
            {"name": "p", "host": "127.0.0.1", "port": server.port, "helo": "t.test",
             "interval": "1s", "timeout": "5s"}]})
        ctx = AppContext.create(config, cluster.url)
        await migrate(ctx.engine)
        app = create_app(ctx, routes=[], jobs={}, workers=[])
        scheduler = build_scheduler(ctx)
        ctx.scheduler_running = True
        scheduler.start()
        stopping = asyncio.Event()
        clock = asyncio.create_task(run_slots(ctx, stopping))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            try:
                await until(lambda: len(server.commands) > 0, "a first probe")
                before = len(await runs(ctx))
                # Mid-probe: the slot is claimed, the result not yet recorded.
                seen = len([c for c in server.commands if c.startswith("NOOP")])
                await until(lambda: len([c for c in server.commands
                                         if c.startswith("NOOP")]) > seen, "a probe in flight")
                cluster.stop()
                assert (await client.get("/readyz")).status_code == 503
                await until(lambda: len(ctx.held) >= 1, "a held result")
                held = [h.result.run_id for h in ctx.held]
                await until(lambda: counter_total(ctx, "slots_skipped") >= 3,
                            "slots skipped while the database is away")
                cluster.start()
                await until(lambda: not ctx.held and not ctx.outage.down, "recovery")
                assert (await client.get("/readyz")).status_code == 200
                recorded = {r.id for r in await runs(ctx)}
                assert set(held) <= recorded  # held during the outage, recorded after
                assert len(recorded) > before
            finally:  # as the service stops: pause, let claimed slots finish, shut down
                scheduler.pause()
                stopping.set()
                await clock
                pending = list(ctx.inflight)
                if pending:
                    await asyncio.wait(pending, timeout=10)
                scheduler.shutdown(wait=False)
                await ctx.close()

    assert records.actions("database_") == ["database_down", "database_back"]
    back = next(r for r in records.records if getattr(r, "action", "") == "database_back")
    assert back.failed["slot"] >= 3 and back.failed["record"] >= 1  # type: ignore[attr-defined]
    noisy = [r for r in records.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]
