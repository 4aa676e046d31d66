"""The receive poller job: resolve pending tokens of any earlier send.

Runs every few seconds on its own schedule, so a slow mailbox never blocks the
next probe. Pending tokens are leased to one replica at a time; each settled
result, the provider's delivery state and its events are one transaction.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from sqlmodel import Session

from monitor import store
from monitor.config import Config
from monitor.events.detect import DeliveryObservation, detect_delivery
from monitor.events.model import Event
from monitor.receive import (
    PendingToken,
    ReceiveOptions,
    ReceiveResult,
    ReceiveStatus,
    poll_pending,
    seed_mailboxes,
)
from monitor.receive.poller import MAX_PARALLEL_MAILBOXES
from monitor.service.context import AppContext
from monitor.store.tables import ReceiveResultRow

log = logging.getLogger("monitor.receiving")

LEASE = timedelta(minutes=2)
LEASE_MARGIN = timedelta(seconds=30)
MAX_RECORDED = 10_000  # per mailbox


def observation(result: ReceiveResult) -> DeliveryObservation:
    return DeliveryObservation(
        run_id=result.run_id, token=result.token, mailbox=result.mailbox,
        arrived=result.arrived, placement=result.placement.value if result.placement else None,
        ok=result.ok, latency_ms=result.latency_ms,
        failure_class=result.failure_class.value if result.failure_class else None,
        message=result.error or "")


async def poll_receive(ctx: AppContext, options: ReceiveOptions | None = None) -> int:
    """One pass over the pending tokens; returns how many were settled.

    Results are stored before their messages are deleted: the scan deletes only
    what an earlier pass recorded (`ctx.recorded_arrivals`), so a crash or a
    database error between finding and storing leaves the message to be found
    again by the next pass, never reported missing.
    """
    ctx.track_current()  # shutdown waits for a pass in flight
    options = options or ReceiveOptions()
    now = ctx.clock()
    async with ctx.sessions() as session:
        rows = await store.tokens.claim_pending(session, now, lease_for(ctx.config, options))
    if not rows:
        return 0
    pending = [PendingToken(token=r.token, run_id=r.run_id, provider=r.provider,
                            mailbox=r.mailbox, accepted_at=r.accepted_at, deadline=r.deadline)
               for r in rows]
    recorded = {name: frozenset(tokens) for name, tokens in ctx.recorded_arrivals.items()}
    results = await poll_pending(ctx.config, pending, now, options=options, recorded=recorded)
    for name in {r.mailbox for r in results if r.status is not ReceiveStatus.ERROR}:
        ctx.recorded_arrivals.get(name, set()).difference_update(recorded.get(name, ()))
    unreleased = list(rows)
    settled = 0
    try:
        for row, result in zip(rows, results, strict=True):
            if result.settled:
                await settle(ctx, result)
                settled += 1
                unreleased.remove(row)
                if result.arrived:
                    _remember(ctx, result)
    finally:
        # Unsettled tokens, and on a database error the ones not stored yet, go back
        # at once; if that fails too their lease runs out, and nothing was deleted.
        async with ctx.sessions() as session, session.begin():
            await store.tokens.release_pending(session, unreleased)
    return settled


def lease_for(config: Config, options: ReceiveOptions) -> timedelta:
    """Long enough for one pass: every mailbox's scan may run to scan_timeout, four
    (MAX_PARALLEL_MAILBOXES) at a time."""
    rounds = math.ceil(max(len(config.mailboxes), 1) / MAX_PARALLEL_MAILBOXES)
    return max(LEASE, timedelta(seconds=rounds * options.scan_timeout) + LEASE_MARGIN)


def _remember(ctx: AppContext, result: ReceiveResult) -> None:
    tokens = ctx.recorded_arrivals.setdefault(result.mailbox, set())
    if len(tokens) < MAX_RECORDED:  # beyond that the day-old sweep removes them
        tokens.add(result.token)


async def settle(ctx: AppContext, result: ReceiveResult) -> None:
    now = ctx.clock()
    configured = [m.name for m in seed_mailboxes(ctx.config, result.provider)]
    row = ReceiveResultRow(
        token=result.token, mailbox=result.mailbox, run_id=result.run_id,
        provider=result.provider, checked_at=result.checked_at, arrived=result.arrived,
        placement=result.placement.value if result.placement else None,
        latency_ms=result.latency_ms, result=result.model_dump(mode="json"))

    def write(session: Session) -> list[Event] | None:
        if not store.tokens.resolve_pending(session, row):
            return None  # settled meanwhile by another replica: its verdict stands
        previous = store.runs.load_state(session, result.provider, now)
        store.rollups.add_receive(session, result)
        state, events = detect_delivery(previous, result.provider, observation(result), now,
                                        configured)
        store.runs.save_state(session, result.provider, state, now)
        store.events.add_events(session, events, now)
        return events

    events = await ctx.writer.run(write)
    if events is None:
        return
    if events:
        ctx.outbox_wake.set()
    ctx.metrics.observe_receive(result)
    log.info("receive result", extra={
        "action": "receive", "provider": result.provider, "mailbox": result.mailbox,
        "run_id": result.run_id, "status": result.status.value,
        "placement": result.placement.value if result.placement else None,
        "latency_ms": result.latency_ms, "error": result.error,
        "events": [e.type.value for e in events]})
