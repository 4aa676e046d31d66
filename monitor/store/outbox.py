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

    One UPDATE of the oldest due ones, RETURNING the rows it took, then one query for
    their events and one for their subscriptions: three statements for the whole
    batch. On PostgreSQL the candidates are locked FOR UPDATE SKIP LOCKED, so
    concurrent workers take different rows; SQLite serialises writers, so the
    UPDATE's condition decides the winner.
    """
    params = {"now": now, "until": now + lease, "worker": worker, "limit": limit}
    if is_postgres(session):
        # The planner's estimate of pending rows comes from the last ANALYZE, taken
        # when the queue was (nearly) empty: for a burst it then prefers a bitmap scan
        # and sorts every due row on every claim (15 ms for a claim of five, 6,000
        # pending; 0.1 ms reading the index in order). Without sorting, only the
        # index order is left. SET LOCAL, and reset: the writer's group commit may run
        # other works in this transaction.
        session.execute(_SORT_OFF)
        rows = list(session.scalars(_CLAIM_LOCKED, params))
        session.execute(_SORT_DEFAULT)
    else:
        rows = list(session.scalars(_CLAIM, params))
    if not rows:
        return []
    rows.sort(key=lambda row: (row.next_attempt_at, row.id))  # RETURNING has no order
    events = {e.id: e for e in session.scalars(_EVENTS, {"ids": [r.event_id for r in rows]})}
    subscriptions = {s.id: s for s in session.scalars(
        _SUBSCRIPTIONS, {"ids": list({r.subscription_id for r in rows})})}
    return [ClaimedDelivery(row, events[row.event_id], subscriptions[row.subscription_id])
            for row in rows
            if row.event_id in events and row.subscription_id in subscriptions]


def _unclaimed(now: sa.ColumnElement[datetime]) -> sa.ColumnElement[bool]:
    return sa.or_(col(DeliveryRow.claimed_until).is_(None), col(DeliveryRow.claimed_until) < now)


def _claim_statement(*, lock: bool) -> sa.Update:
    """Built once (with bound parameters now, until, worker, limit): compiling the
    statement anew cost more than running it."""
    now: sa.BindParameter[datetime] = sa.bindparam("now")
    enabled = select(SubscriptionRow.id).where(col(SubscriptionRow.enabled).is_(True))
    due = (select(DeliveryRow.id)
           .where(col(DeliveryRow.status) == "pending")
           # A disabled subscription's queue waits: re-enabling it resumes delivery.
           .where(col(DeliveryRow.subscription_id).in_(enabled))
           .where(col(DeliveryRow.next_attempt_at) <= now)
           .where(_unclaimed(now))
           # ix_delivery_due is (status, next_attempt_at, id): read in order, no sort.
           .order_by(col(DeliveryRow.next_attempt_at), col(DeliveryRow.id))
           .limit(sa.bindparam("limit", type_=sa.Integer)))
    if lock:
        due = due.with_for_update(skip_locked=True)
    # A CTE, evaluated once. As `id IN (subquery)` PostgreSQL may run the locking
    # subquery again per row it updates, each time taking more: a claim of 2 took 7.
    taken = due.cte("due").prefix_with("MATERIALIZED")
    return (sa.update(DeliveryRow)
            .where(col(DeliveryRow.id).in_(select(taken.c.id)))
            .where(col(DeliveryRow.status) == "pending")
            .where(_unclaimed(now))
            .values(claimed_until=sa.bindparam("until"), claimed_by=sa.bindparam("worker"))
            .returning(DeliveryRow)
            # Fresh rows, whatever this session saw of them before.
            .execution_options(synchronize_session=False, populate_existing=True))


_CLAIM = _claim_statement(lock=False)
_CLAIM_LOCKED = _claim_statement(lock=True)
_SORT_OFF = sa.text("SET LOCAL enable_sort = off")
_SORT_DEFAULT = sa.text("SET LOCAL enable_sort TO DEFAULT")
_EVENTS = select(EventRow).where(col(EventRow.id).in_(sa.bindparam("ids", expanding=True)))
_SUBSCRIPTIONS = select(SubscriptionRow).where(
    col(SubscriptionRow.id).in_(sa.bindparam("ids", expanding=True)))


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


@dataclass(frozen=True)
class Finish:
    """An attempt to record, and the delivery's new state."""

    attempt: Attempt
    status: str  # pending (to retry at next_attempt_at), delivered, dead, disabled
    next_attempt_at: datetime | None
    error: str | None
    worker: str  # who claimed the delivery


def finish_attempts(session: Session, finishes: list[Finish]) -> list[bool]:
    """Record each attempt and its delivery's new state; release the claims (caller's
    transaction). For each: False, recording nothing, when its worker no longer holds
    the claim (the lease ran out and another worker took the delivery over).

    A batch (`Writer.run_batched`): three statements for the lot, not two per
    attempt — the holders read (and locked, on PostgreSQL, so no claim can change
    hands before the update), then one UPDATE and one INSERT executed many times.
    """
    connection = session.connection()
    holders = dict(connection.execute(
        _HOLDERS, {"ids": [f.attempt.delivery_id for f in finishes]}).all())
    held = [holders.get(f.attempt.delivery_id) == f.worker for f in finishes]
    recorded = [f for f, ok in zip(finishes, held, strict=True) if ok]
    if recorded:
        connection.execute(_FINISH, [{
            "key_id": f.attempt.delivery_id, "attempts": f.attempt.attempt,
            "status": f.status, "last_status": f.attempt.status, "last_error": f.error,
            "next_at": f.next_attempt_at,
            "done_at": f.attempt.at if f.status == "delivered" else None}
            for f in recorded])
        connection.execute(_ATTEMPTS.insert(), [asdict(f.attempt) for f in recorded])
    return held


_DELIVERIES: sa.Table = DeliveryRow.__table__  # type: ignore[attr-defined]
_ATTEMPTS: sa.Table = DeliveryAttemptRow.__table__  # type: ignore[attr-defined]
_HOLDERS = (sa.select(_DELIVERIES.c.id, _DELIVERIES.c.claimed_by)
            .where(_DELIVERIES.c.id.in_(sa.bindparam("ids", expanding=True)))
            .with_for_update())  # SQLite has no FOR UPDATE: its one writer is the lock
_FINISH = (_DELIVERIES.update()
           .where(_DELIVERIES.c.id == sa.bindparam("key_id"))
           .values(claimed_until=None, claimed_by=None,
                   # One statement for every outcome: unchanged where it has no value.
                   next_attempt_at=sa.func.coalesce(
                       sa.bindparam("next_at", type_=_DELIVERIES.c.next_attempt_at.type),
                       _DELIVERIES.c.next_attempt_at),
                   delivered_at=sa.func.coalesce(
                       sa.bindparam("done_at", type_=_DELIVERIES.c.delivered_at.type),
                       _DELIVERIES.c.delivered_at)))


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

