"""Gauges that describe the database rather than this process (the outbox by state, dead
letters per subscription), refreshed on a period so every replica reports the same."""

from __future__ import annotations

from monitor import store
from monitor.service.context import AppContext


async def refresh_gauges(ctx: AppContext) -> None:
    async with ctx.sessions() as session:
        by_state = await store.outbox.counts_by_status(session)
        dead = await store.outbox.counts_by_subscription(session, ("dead",))
        subscriptions = await store.subscriptions.summaries(session)
    ctx.metrics.set_outbox(by_state, {name: dead.get(sub_id, {}).get("dead", 0)
                                      for sub_id, name, *_ in subscriptions})
