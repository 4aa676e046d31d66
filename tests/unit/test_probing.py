"""The service's probe job: a probe that cannot even start is a recorded failure that alerts."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from monitor.config import Config, ProviderConfig
from monitor.service.context import AppContext
from monitor.service.probing import probe_and_record
from monitor.store import queries
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
            events = await queries.list_events(session, provider="broken")
        assert [r.provider for r in runs] == ["broken"]
        assert [e.type for e in events] == ["probe.failed"]
        assert events[0].data["class"] == "protocol"
    finally:
        await ctx.engine.dispose()
