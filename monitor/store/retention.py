"""Retention: history older than the configured window goes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.tables import (
    CheckRow,
    DeliveryAttemptRow,
    DeliveryRow,
    EventRow,
    HourlyRollupRow,
    InboundMessageRow,
    PendingTokenRow,
    ReceiveResultRow,
    ReplicaRow,
    RunRow,
    SlotClaimRow,
)


async def prune(session: AsyncSession, before: datetime, *,
                rollups_before: datetime | None = None) -> dict[str, int]:
    """Delete history older than `before`, and hourly rollups older than `rollups_before`
    (they outlive the raw runs: the status page's 90-day and one-year uptime). Commits."""
    counts = {}
    # Finished deliveries (and their attempts) go with age; pending ones never do,
    # and an event stays while any delivery of it remains.
    old_deliveries = select(DeliveryRow.id).where(col(DeliveryRow.created_at) < before).where(
        col(DeliveryRow.status) != "pending")
    for name, statement in (
        ("runs", sa.delete(RunRow).where(col(RunRow.started_at) < before)),
        ("receive_results", sa.delete(ReceiveResultRow)
         .where(col(ReceiveResultRow.checked_at) < before)),
        ("slot_claims", sa.delete(SlotClaimRow).where(col(SlotClaimRow.claimed_at) < before)),
        ("delivery_attempts", sa.delete(DeliveryAttemptRow)
         .where(col(DeliveryAttemptRow.delivery_id).in_(old_deliveries))),
        ("deliveries", sa.delete(DeliveryRow).where(col(DeliveryRow.id).in_(old_deliveries))),
        ("events", sa.delete(EventRow).where(col(EventRow.timestamp) < before)
         .where(~col(EventRow.id).in_(select(DeliveryRow.event_id)))),
        ("checks", sa.delete(CheckRow).where(col(CheckRow.created_at) < before)),
        ("replicas", sa.delete(ReplicaRow).where(col(ReplicaRow.last_seen) < before)),
        # Posted mail nobody collected (a mailbox removed from config, a replica gone
        # before deleting what it recorded), unless its token is still awaited; the
        # receive scans sweep most of it after a day already.
        ("inbound_messages", sa.delete(InboundMessageRow)
         .where(col(InboundMessageRow.received_at) < before)
         .where(sa.or_(col(InboundMessageRow.token).is_(None),
                       col(InboundMessageRow.token).not_in(select(PendingTokenRow.token))))),
    ):
        result = await session.exec(statement)
        counts[name] = result.rowcount
    if rollups_before is not None:
        result = await session.exec(sa.delete(HourlyRollupRow)
                                    .where(col(HourlyRollupRow.hour) < rollups_before))
        counts["rollups"] = result.rowcount
    await session.commit()
    return counts
