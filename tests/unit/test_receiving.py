"""The service's receive job: pending tokens of earlier sends become results and events."""

from __future__ import annotations

import asyncio
import mailbox
import time
from pathlib import Path

import sqlalchemy as sa

from monitor.config import Config
from monitor.receive import ReceiveOptions
from monitor.sandbox import Sandbox
from monitor.service.context import AppContext
from monitor.service.probing import probe_and_record
from monitor.service.receiving import check_receive
from monitor.store import queries
from monitor.store.db import migrate
from monitor.store.tables import PendingTokenRow, ReceiveResultRow


def _ctx(sandbox: Sandbox, maildir: Path, tmp_path: Path) -> AppContext:
    assert sandbox.certificates is not None
    config = Config.model_validate({
        "providers": [{"name": "sandbox", "host": sandbox.host, "port": sandbox.port,
                       "mode": "send", "ca_file": str(sandbox.certificates.ca_file),
                       "helo": "t.test",
                       "auth": {"username": sandbox.username, "password": sandbox.password},
                       "from": "probe@t.test", "to": ["seed"]}],
        "mailboxes": [{"name": "seed", "address": "seed@t.test", "kind": "maildir",
                       "path": str(maildir), "deliver_within": "1s"}]})
    return AppContext.create(config, f"sqlite+aiosqlite:///{tmp_path / 'db'}")


async def settle_all(ctx: AppContext, options: ReceiveOptions, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while True:
        await check_receive(ctx, options)
        async with ctx.sessions() as session:
            left = (await session.exec(sa.select(PendingTokenRow))).scalars().all()
        if not left:
            return
        assert time.monotonic() < deadline, "pending tokens never settled"
        await asyncio.sleep(0.2)


async def test_arrival_is_recorded_and_a_missing_message_fails_delivery(tmp_path: Path) -> None:
    sandbox = await Sandbox(tmp_path / "sandbox").start()
    options = ReceiveOptions(data_dir=tmp_path / "data")
    ctx = _ctx(sandbox, sandbox.maildir, tmp_path)
    try:
        await migrate(ctx.engine)
        ok = await probe_and_record(ctx, ctx.config.providers[0])
        assert ok.ok and ok.token
        await settle_all(ctx, options)
        async with ctx.sessions() as session:
            row = await session.get(ReceiveResultRow, (ok.token, "seed"))
        assert row is not None and row.arrived and row.placement == "inbox"
        assert len(mailbox.Maildir(sandbox.maildir)) == 0  # found, so deleted

        # The next message goes to a Maildir the checker never sees: missing at the deadline.
        elsewhere = tmp_path / "elsewhere"
        mailbox.Maildir(elsewhere, create=True)
        ctx.config = ctx.config.model_copy(update={"mailboxes": (
            ctx.config.mailboxes[0].model_copy(update={"path": elsewhere}),)})
        missing = await probe_and_record(ctx, ctx.config.providers[0])
        await settle_all(ctx, options)
        async with ctx.sessions() as session:
            row = await session.get(ReceiveResultRow, (missing.token, "seed"))
            events = await queries.list_events(session, types=["delivery.failed"])
        assert row is not None and not row.arrived
        assert [e.data["mailbox"] for e in events] == ["seed"]
        assert events[0].data["class"] == "delivery"
    finally:
        await ctx.engine.dispose()
        await sandbox.stop()
