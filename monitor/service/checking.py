"""Pre-campaign checks in the service: run one, keep its lease, and finish abandoned ones.

A check runs in the background on the replica that accepted it and saves its
report as it goes (the token of every accepted seed is on record before its
wait). The replica renews the check's lease while it runs; if it dies, the
lease runs out and another replica's `resume_abandoned` takes the check over
and finishes it from that report: seeds already sent are waited for, not sent
again. The final report and its `check.completed` event are one transaction,
written once whoever finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from pydantic import ValidationError

from monitor import store
from monitor.checks import CheckReport, CheckRequest, CheckStatus, completed_event, run_check
from monitor.receive import ReceiveOptions
from monitor.service.context import AppContext
from monitor.service.outage import unreachable
from monitor.store.writer import within

log = logging.getLogger("monitor.checks")

LEASE = timedelta(seconds=60)
RENEW_EVERY = LEASE / 3


def start(ctx: AppContext, options: ReceiveOptions, request: CheckRequest, check_id: str,
          pending: CheckReport) -> None:
    """Run an accepted check (its row written with this replica's lease) in the background."""
    ctx.track(asyncio.create_task(_run(ctx, options, request, check_id, pending)))


async def resume_abandoned(ctx: AppContext, options: ReceiveOptions) -> int:
    """Take over the checks whose replica stopped renewing them; how many were taken."""
    now = ctx.clock()
    async with ctx.sessions() as session:
        rows = await store.checks.abandoned(session, now)
    taken = 0
    for row in rows:
        try:
            request = CheckRequest.model_validate(row.request)
            saved = CheckReport.model_validate(row.report)
        except ValidationError:  # written by another version: GET says it is unreadable
            continue
        async with ctx.sessions() as session:
            if not await store.checks.take_over(session, row, ctx.replica, now, LEASE):
                continue
        log.info("check taken over", extra={"action": "check_taken_over", "check_id": row.id,
                                            "from": row.claimed_by})
        ctx.track(asyncio.create_task(_run(ctx, options, request, row.id, saved, resume=True)))
        taken += 1
    return taken


async def _run(ctx: AppContext, options: ReceiveOptions, request: CheckRequest,
               check_id: str, pending: CheckReport, *, resume: bool = False) -> None:
    keeper = asyncio.create_task(_keep_lease(ctx, check_id))
    try:
        try:
            report = await run_check(ctx.config, request, check_id=check_id,
                                     dns_nameserver=ctx.config.settings.dns_nameserver(),
                                     receive_options=options,
                                     on_progress=lambda r: _save(ctx, r),
                                     resume=pending if resume else None)
        except Exception as exc:  # nothing may leave a check "pending" for ever
            log.exception("check crashed", extra={"action": "check", "check_id": check_id})
            report = pending.model_copy(update={
                "status": CheckStatus.ERROR, "finished_at": ctx.clock(),
                "error": f"the check failed: {type(exc).__name__}"})
            await _save(ctx, report)
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    log.info("check finished", extra={"action": "check", "check_id": check_id,
                                       "verdict": report.verdict, "status": report.status})


async def _save(ctx: AppContext, report: CheckReport) -> None:
    """The report so far; the final one with its check.completed event, exactly once."""
    async with ctx.sessions() as session, session.begin():
        saved = await store.checks.save_report(
            session, report.id, status=report.status.value,
            report=report.model_dump(mode="json", by_alias=True),
            finished_at=report.finished_at, replica=ctx.replica)
        completed = saved and report.finished_at is not None
        if completed:
            now, events = ctx.clock(), [completed_event(report)]
            await within(session, lambda s: store.events.add_events(s, events, now))
    if completed:
        ctx.outbox_wake.set()


async def _keep_lease(ctx: AppContext, check_id: str) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY.total_seconds())
        try:
            async with ctx.sessions() as session:
                await store.checks.renew(session, check_id, ctx.replica, ctx.clock() + LEASE)
        except Exception as exc:  # the lease then runs out and another replica resumes
            if not unreachable(exc):
                raise
            ctx.outage.failed("check lease", exc)
