"""The service's receive job: pending tokens of earlier sends become results and events."""

from __future__ import annotations

import asyncio
import mailbox
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor import store
from monitor.config import Config
from monitor.receive import ReceiveOptions
from monitor.sandbox import Sandbox
from monitor.service import receiving
from monitor.service.context import AppContext
from monitor.service.probing import probe_and_record
from monitor.service.receiving import poll_receive
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
        await poll_receive(ctx, options)
        async with ctx.sessions() as session:
            left = (await session.exec(sa.select(PendingTokenRow))).scalars().all()
        if not left:
            return
        assert time.monotonic() < deadline, "pending tokens never settled"
        await asyncio.sleep(0.2)


def _tokens(path: Path) -> list[str]:
    return [str(m["X-Delivery-Monitor-Token"]) for m in mailbox.Maildir(path, create=False)]


async def test_a_database_error_before_storing_loses_no_arrival(tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    sandbox = await Sandbox(tmp_path / "sandbox").start()
    options = ReceiveOptions(data_dir=tmp_path / "data")
    ctx = _ctx(sandbox, sandbox.maildir, tmp_path)
    real_settle = receiving.settle
    failures = 0

    async def settle_fails_once(context: AppContext, result: Any) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))
        await real_settle(context, result)

    monkeypatch.setattr(receiving, "settle", settle_fails_once)
    try:
        await migrate(ctx.engine)
        sent = await probe_and_record(ctx, ctx.config.providers[0])
        await wait_for_file(sandbox.maildir)
        with pytest.raises(sa.exc.OperationalError):
            await poll_receive(ctx, options)
        # Nothing deleted, and the token is back for the next pass at once (no lease wait).
        assert _tokens(sandbox.maildir) == [sent.token]
        async with ctx.sessions() as session:
            [row] = (await session.exec(sa.select(PendingTokenRow))).scalars().all()
        assert row.claimed_until is None
        # Even past the deadline, the next pass finds it: arrived, not missing.
        ctx.clock = lambda: sent.accepted_at + timedelta(seconds=5)  # type: ignore[operator]
        assert await poll_receive(ctx, options) == 1
        async with ctx.sessions() as session:
            stored = await session.get(ReceiveResultRow, (sent.token, "seed"))
            failed = await store.events.list_events(session, types=["delivery.failed"])
        assert stored is not None and stored.arrived and failed == []
    finally:
        await ctx.close()
        await sandbox.stop()


async def wait_for_file(maildir: Path, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not _tokens(maildir):
        assert time.monotonic() < deadline, "the sandbox never delivered"
        await asyncio.sleep(0.05)


def test_the_lease_covers_a_pass_of_slow_mailboxes() -> None:
    config = Config.model_validate({"mailboxes": [
        {"name": f"m{i}", "address": f"m{i}@t.test", "kind": "maildir", "path": "/tmp/x"}
        for i in range(9)]})
    lease = receiving.lease_for(config, ReceiveOptions(scan_timeout=60))
    assert lease >= timedelta(seconds=3 * 60)  # 9 mailboxes, 4 at a time: 3 rounds of 60 s
    assert receiving.lease_for(Config(), ReceiveOptions()) == receiving.LEASE


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
        # Stored first; the message goes on the next pass of this mailbox.
        assert _tokens(sandbox.maildir) == [ok.token]
        again = await probe_and_record(ctx, ctx.config.providers[0])
        await settle_all(ctx, options)
        assert _tokens(sandbox.maildir) == [again.token]

        # The next message goes to a Maildir the poller never sees: missing at the deadline.
        elsewhere = tmp_path / "elsewhere"
        mailbox.Maildir(elsewhere, create=True)
        ctx.config = ctx.config.model_copy(update={"mailboxes": (
            ctx.config.mailboxes[0].model_copy(update={"path": elsewhere}),)})
        missing = await probe_and_record(ctx, ctx.config.providers[0])
        await settle_all(ctx, options)
        async with ctx.sessions() as session:
            row = await session.get(ReceiveResultRow, (missing.token, "seed"))
            events = await store.events.list_events(session, types=["delivery.failed"])
        assert row is not None and not row.arrived
        assert [e.data["mailbox"] for e in events] == ["seed"]
        assert events[0].data["class"] == "delivery"
    finally:
        await ctx.close()
        await sandbox.stop()
