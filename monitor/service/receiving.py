"""The receive checker job: resolve pending tokens of any earlier send.

Runs every few seconds on its own schedule, so a slow mailbox never blocks the
next probe. Pending tokens are leased to one replica at a time; each settled
result, the provider's delivery state and its events are one transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from monitor.events.detect import DeliveryObservation, detect_delivery
from monitor.receive import PendingToken, ReceiveOptions, ReceiveResult, check_pending
from monitor.service.context import AppContext
from monitor.store import queries
from monitor.store.tables import PendingTokenRow, ReceiveResultRow

log = logging.getLogger("monitor.receiving")

LEASE = timedelta(minutes=2)


def observation(result: ReceiveResult) -> DeliveryObservation:
    return DeliveryObservation(
        run_id=result.run_id, token=result.token, mailbox=result.mailbox,
        arrived=result.arrived, placement=result.placement.value if result.placement else None,
        latency_ms=result.latency_ms,
        failure_class=result.failure_class.value if result.failure_class else None,
        message=result.error or "")


async def check_receive(ctx: AppContext, options: ReceiveOptions | None = None) -> int:
    """One pass over the pending tokens; returns how many were settled."""
    now = ctx.clock()
    async with ctx.sessions() as session:
        rows = await queries.claim_pending(session, now, LEASE)
    if not rows:
        return 0
    pending = [PendingToken(token=r.token, run_id=r.run_id, provider=r.provider,
                            mailbox=r.mailbox, accepted_at=r.accepted_at, deadline=r.deadline)
               for r in rows]
    results = await check_pending(ctx.config, pending, now, options=options)
    unsettled: list[PendingTokenRow] = []
    settled = 0
    for row, result in zip(rows, results, strict=True):
        if not result.settled:
            unsettled.append(row)
            continue
        await settle(ctx, result)
        settled += 1
    async with ctx.sessions() as session, session.begin():
        await queries.release_pending(session, unsettled)
    return settled


async def settle(ctx: AppContext, result: ReceiveResult) -> None:
    now = ctx.clock()
    async with ctx.sessions() as session, session.begin():
        if not await queries.resolve_pending(session, ReceiveResultRow(
                token=result.token, mailbox=result.mailbox, run_id=result.run_id,
                provider=result.provider, checked_at=result.checked_at, arrived=result.arrived,
                placement=result.placement.value if result.placement else None,
                latency_ms=result.latency_ms, result=result.model_dump(mode="json"))):
            return  # settled meanwhile by another replica: its verdict stands
        previous = await queries.load_state(session, result.provider, now)
        state, events = detect_delivery(previous, result.provider, observation(result), now)
        await queries.save_state(session, result.provider, state, now)
        await queries.add_events(session, events, now)
    ctx.metrics.receive.labels(result.provider, result.mailbox,
                               result.placement.value if result.placement else "missing").inc()
    log.info("receive result", extra={
        "action": "receive", "provider": result.provider, "mailbox": result.mailbox,
        "run_id": result.run_id, "status": result.status.value,
        "placement": result.placement.value if result.placement else None,
        "latency_ms": result.latency_ms, "error": result.error,
        "events": [e.type.value for e in events]})
