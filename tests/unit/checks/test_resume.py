"""A check whose replica dies is finished by another replica: no seed is sent twice."""

from __future__ import annotations

import mailbox
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import store
from monitor.checks import CheckReport, CheckRequest, CheckStatus, new_check_id, pending_report
from monitor.checks.model import Verdict
from monitor.receive import ReceiveOptions
from monitor.sandbox import Sandbox
from monitor.service import checking
from monitor.service.context import AppContext
from monitor.store.db import migrate
from tests.unit.checks.conftest import SENDER, check_config
from tests.unit.checks.dnsserver import DnsServer
from tests.waiting import eventually, until


async def _report(ctx: AppContext, check_id: str) -> CheckReport:
    async with ctx.sessions() as session:
        row = await store.checks.get_check(session, check_id)
    assert row is not None
    return CheckReport.model_validate(row.report)


async def test_a_check_whose_replica_died_is_finished_elsewhere_without_resending(
        sandbox: Sandbox, dns_server: DnsServer, tmp_path: Path) -> None:
    seed_dir = tmp_path / "seed"  # empty until the takeover: the message "arrives late"
    mailbox.Maildir(seed_dir, create=True)
    config = check_config(sandbox, "seed-1", deliver_within="30s")
    host, port = dns_server.address
    config = config.model_copy(update={
        "mailboxes": (config.mailboxes[0].model_copy(update={"path": seed_dir}),),
        "settings": config.settings.model_copy(update={"dns_server": f"{host}:{port}"})})
    url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    dying, taker = AppContext.create(config, url), AppContext.create(config, url)
    options = ReceiveOptions(data_dir=tmp_path / "data")
    request = CheckRequest.model_validate({"provider": "sandbox", "from": SENDER,
                                           "seeds": ["seed-1"]})
    check_id = new_check_id()
    pending = pending_report(check_id, request, config)
    try:
        await migrate(dying.engine)
        async with dying.sessions() as session, session.begin():
            store.checks.add_check(session, check_id=check_id, status=pending.status.value,
                                   created_at=dying.clock(),
                                   request=request.model_dump(mode="json", by_alias=True),
                                   report=pending.model_dump(mode="json", by_alias=True),
                                   claimed_by=dying.replica, lease=checking.LEASE)
        checking.start(dying, options, request, check_id, pending)
        sent: list[str] = []

        async def accepted() -> bool:
            report = await _report(dying, check_id)
            sent[:] = [s.token for s in report.seeds if s.accepted and s.token]
            return bool(sent)

        await eventually(accepted, "the seed's message accepted, its token saved")
        # The replica dies while it waits for the seed: nothing renews its lease.
        for task in list(dying.inflight):
            task.cancel()
        await until(lambda: all(t.done() for t in dying.inflight), "the dying replica to stop")
        assert await checking.resume_abandoned(taker, options) == 0  # the lease still holds

        # The message reaches the seed mailbox now; the lease has run out for the taker.
        for name in (sandbox.maildir / "new").iterdir():
            shutil.move(str(name), str(seed_dir / "new" / name.name))
        taker.clock = lambda: datetime.now(UTC) + checking.LEASE + timedelta(seconds=1)
        assert await checking.resume_abandoned(taker, options) == 1
        assert await checking.resume_abandoned(taker, options) == 0  # taken: not twice

        async def finished() -> bool:
            return (await _report(taker, check_id)).finished_at is not None

        await eventually(finished, "the taker to finish the check")
        report = await _report(taker, check_id)
        assert report.status is CheckStatus.DONE and report.verdict is Verdict.PASSED, report
        [seed] = report.seeds
        assert seed.arrived and seed.token == sent[0]
        assert sandbox.handler is not None and sandbox.handler.received == 1  # sent once
        async with taker.sessions() as session:
            events = await store.events.list_events(session, types=["check.completed"])
        assert len(events) == 1
    finally:
        for task in list(dying.inflight) + list(taker.inflight):
            task.cancel()
        await dying.close()
        await taker.close()
