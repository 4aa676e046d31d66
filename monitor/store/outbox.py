"""The webhook outbox: due deliveries claimed atomically, attempts recorded, replays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.events.model import Event
from monitor.store.db import is_postgres
from monitor.store.tables import (
    DeliveryAttemptRow,
    DeliveryRow,
    EventRow,
    SubscriptionRow,
)


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: DeliveryRow
    event: EventRow
    subscription: SubscriptionRow


def claim_due(session: Session, now: datetime, worker: str, *,
              lease: timedelta, limit: int = 50) -> list[ClaimedDelivery]:
    """Claim due deliveries atomically so no two workers send the same attempt (run it
    in a transaction of its own: the claims must commit before anything is sent).

    PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED. SQLite: one conditional UPDATE of the
    candidates, RETURNING the ones it took (SQLite serialises writers, so the
    condition decides the winner).
    """
    enabled = select(SubscriptionRow.id).where(col(SubscriptionRow.enabled).is_(True))
    due = (select(DeliveryRow)
           .where(col(DeliveryRow.status) == "pending")
           # A disabled subscription's queue waits: re-enabling it resumes delivery.
           .where(col(DeliveryRow.subscription_id).in_(enabled))
           .where(col(DeliveryRow.next_attempt_at) <= now)
           .where(_unclaimed(now))
           .order_by(col(DeliveryRow.next_attempt_at), col(DeliveryRow.id))
           .limit(limit))
    claimed: list[DeliveryRow] = []
    if is_postgres(session):
        for row in session.exec(due.with_for_update(skip_locked=True)).all():
            row.claimed_until, row.claimed_by = now + lease, worker
            session.add(row)
            claimed.append(row)
    else:
        candidates = {row.id: row for row in session.exec(due).all()}
        if candidates:
            taken = set(session.connection().execute(
                sa.update(DeliveryRow)
                .where(col(DeliveryRow.id).in_(candidates))
                .where(col(DeliveryRow.status) == "pending")
                .where(_unclaimed(now))
                .values(claimed_until=now + lease, claimed_by=worker)
                .returning(col(DeliveryRow.id))).scalars())
            claimed = [row for key, row in candidates.items() if key in taken]
    if not claimed:
        return []
    # Two queries for the whole batch, not two per delivery.
    events = {e.id: e for e in session.exec(select(EventRow).where(
        col(EventRow.id).in_({row.event_id for row in claimed}))).all()}
    subscriptions = {s.id: s for s in session.exec(select(SubscriptionRow).where(
        col(SubscriptionRow.id).in_({row.subscription_id for row in claimed}))).all()}
    return [ClaimedDelivery(row, events[row.event_id], subscriptions[row.subscription_id])
            for row in claimed
            if row.event_id in events and row.subscription_id in subscriptions]


def _unclaimed(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(col(DeliveryRow.claimed_until).is_(None), col(DeliveryRow.claimed_until) < now)


@dataclass(frozen=True)
class Attempt:
    """One attempt's record (a `delivery_attempt` row): a plain dataclass, since building
    an ORM object per delivery cost more than inserting it."""

    delivery_id: str
    attempt: int
    at: datetime
    status: int | None
    latency_ms: float
    outcome: str
    response: str | None
    worker: str | None


def finish_attempt(session: Session, delivery_id: str, attempt: Attempt,
                   *, status: str, next_attempt_at: datetime | None,
                   error: str | None, worker: str) -> bool:
    """Record one attempt and the delivery's new state; release the claim (caller's
    transaction).

    False, recording nothing, when this worker no longer holds the claim (its lease
    ran out and another worker took the delivery over). One conditional UPDATE
    decides it (and locks the row on PostgreSQL), then one INSERT: Core statements
    built once, since this runs for every delivery.
    """
    values: dict[str, object] = {
        "attempts": attempt.attempt, "status": status, "last_status": attempt.status,
        "last_error": error, "claimed_until": None, "claimed_by": None}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if status == "delivered":
        values["delivered_at"] = attempt.at
    connection = session.connection()
    if connection.execute(_FINISH, {"key_id": delivery_id, "key_worker": worker,
                                    **values}).rowcount != 1:
        return False
    connection.execute(_ATTEMPTS.insert(), asdict(attempt))
    return True


_DELIVERIES: sa.Table = DeliveryRow.__table__  # type: ignore[attr-defined]
_ATTEMPTS: sa.Table = DeliveryAttemptRow.__table__  # type: ignore[attr-defined]
_FINISH = (_DELIVERIES.update()
           .where(_DELIVERIES.c.id == sa.bindparam("key_id"))
           .where(_DELIVERIES.c.claimed_by == sa.bindparam("key_worker")))


async def renew_claims(session: AsyncSession, delivery_ids: Sequence[str], worker: str,
                       until: datetime) -> int:
    """Extend `worker`'s claims on these deliveries (those it still holds). Commits."""
    result = await session.exec(sa.update(DeliveryRow)
                                .where(col(DeliveryRow.id).in_(delivery_ids))
                                .where(col(DeliveryRow.claimed_by) == worker)
                                .values(claimed_until=until))
    await session.commit()
    return int(result.rowcount)


async def outbox_depth(session: AsyncSession) -> int:
    result = await session.exec(select(sa.func.count()).select_from(DeliveryRow)
                                .where(col(DeliveryRow.status) == "pending"))
    return int(result.one())


async def counts_by_subscription(session: AsyncSession,
                                 statuses: Sequence[str] = ("pending", "dead"),
                                 ) -> dict[str, dict[str, int]]:
    """Deliveries per subscription and status (pending = queued, dead = dead letters)."""
    rows = (await session.exec(select(DeliveryRow.subscription_id, DeliveryRow.status,
                                      sa.func.count())
                               .where(col(DeliveryRow.status).in_(list(statuses)))
                               .group_by(col(DeliveryRow.subscription_id),
                                         col(DeliveryRow.status)))).all()
    out: dict[str, dict[str, int]] = {}
    for subscription_id, status, count in rows:
        out.setdefault(subscription_id, {})[status] = int(count)
    return out


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    """Deliveries per status (pending, delivered, dead, disabled): the metrics' gauges."""
    rows = (await session.exec(select(DeliveryRow.status, sa.func.count())
                               .group_by(col(DeliveryRow.status)))).all()
    return {status: int(count) for status, count in rows}


async def replay_delivery(session: AsyncSession, delivery_id: str, now: datetime) -> bool:
    """Queue a delivery again, whatever its state (delivered, dead, disabled). Commits.

    The event, and so the `webhook-id`, stay the same: receivers deduplicate. The
    retry schedule starts over; the attempts made so far stay on record.
    """
    row = await session.get(DeliveryRow, delivery_id)
    if row is None:
        return False
    row.status, row.next_attempt_at = "pending", now
    row.schedule_start = row.attempts
    row.claimed_until, row.claimed_by = None, None
    session.add(row)
    await session.commit()
    return True


async def disable_subscription(session: AsyncSession, subscription_id: str,
                               reason: str) -> None:
    """The receiver said stop: disable it and cancel what is still queued for it. Commits."""
    sub = await session.get(SubscriptionRow, subscription_id)
    if sub is not None:
        sub.enabled, sub.disabled_reason = False, reason
        session.add(sub)
    await session.exec(sa.update(DeliveryRow)
                       .where(col(DeliveryRow.subscription_id) == subscription_id)
                       .where(col(DeliveryRow.status) == "pending")
                       .values(status="disabled", last_error=reason))
    await session.commit()


async def enqueue_test(session: AsyncSession, event: Event, subscription_id: str,
                       delivery_id: str, now: datetime) -> None:
    """A webhook.test event and its one delivery (caller's transaction)."""
    session.add(EventRow(id=event.id, type=event.type.value, provider=event.provider,
                         timestamp=event.timestamp, data=event.data))
    await session.flush()
    session.add(DeliveryRow(id=delivery_id, event_id=event.id,
                            subscription_id=subscription_id, next_attempt_at=now,
                            created_at=now))


@dataclass(frozen=True)
class DeliveryLog:
    delivery: DeliveryRow
    event_type: str | None
    attempts: list[DeliveryAttemptRow]


async def delivery_log(session: AsyncSession, subscription_id: str, *, limit: int,
                       before: str | None = None) -> list[DeliveryLog]:
    """A subscription's deliveries, newest first, each with its event type and attempts:
    three queries for the page, not two per delivery."""
    query = select(DeliveryRow).where(col(DeliveryRow.subscription_id) == subscription_id)
    if before is not None:
        query = query.where(col(DeliveryRow.id) < before)
    rows = list((await session.exec(query.order_by(col(DeliveryRow.id).desc())
                                    .limit(limit))).all())
    if not rows:
        return []
    types = dict((await session.exec(select(EventRow.id, EventRow.type).where(
        col(EventRow.id).in_({r.event_id for r in rows})))).all())
    attempts: dict[str, list[DeliveryAttemptRow]] = {r.id: [] for r in rows}
    for attempt in (await session.exec(select(DeliveryAttemptRow)
                                       .where(col(DeliveryAttemptRow.delivery_id)
                                              .in_(attempts))
                                       .order_by(col(DeliveryAttemptRow.attempt)))).all():
        attempts[attempt.delivery_id].append(attempt)
    return [DeliveryLog(r, types.get(r.event_id), attempts[r.id]) for r in rows]

