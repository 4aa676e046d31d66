"""Every query the service runs, in one place.

Functions take an AsyncSession and leave transactions to the caller, except
where the docstring says otherwise: a probe's run, state, events and outbox
rows are written by one `record_run` call inside the caller's transaction.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

__all__ = ["AsyncSession"]

from monitor.events.model import Event
from monitor.events.state import ProviderState
from monitor.ids import new_id
from monitor.probe.result import ProbeResult
from monitor.store.crypto import cipher_for
from monitor.store.tables import (
    CheckRow,
    DeliveryAttemptRow,
    DeliveryRow,
    EventRow,
    PendingTokenRow,
    ProviderStateRow,
    ReceiveResultRow,
    RunRow,
    SlotClaimRow,
    SubscriptionRow,
)


def _pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# -- scheduling -------------------------------------------------------------------------


async def claim_slot(session: AsyncSession, provider: str, slot: int, replica: str,
                     now: datetime, lease: timedelta) -> bool:
    """Insert (provider, slot); exactly one replica succeeds. Commits on its own."""
    session.add(SlotClaimRow(provider=provider, slot=slot, claimed_by=replica, claimed_at=now,
                             lease_until=now + lease, done=False))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


async def open_claims(session: AsyncSession, now: datetime, *,
                      limit: int = 100) -> Sequence[SlotClaimRow]:
    """Claims whose lease ran out with their run not recorded: the claimant died."""
    return (await session.exec(select(SlotClaimRow)
                               .where(col(SlotClaimRow.done).is_(False))
                               .where(col(SlotClaimRow.lease_until) < now)
                               .order_by(col(SlotClaimRow.lease_until)).limit(limit))).all()


async def take_over_slot(session: AsyncSession, claim: SlotClaimRow, replica: str,
                         now: datetime, lease: timedelta) -> bool:
    """Move a dead claimant's expired claim to `replica`; one taker wins. Commits."""
    result = await session.exec(
        sa.update(SlotClaimRow)
        .where(col(SlotClaimRow.provider) == claim.provider)
        .where(col(SlotClaimRow.slot) == claim.slot)
        .where(col(SlotClaimRow.claimed_by) == claim.claimed_by)
        .where(col(SlotClaimRow.done).is_(False))
        .where(col(SlotClaimRow.lease_until) < now)
        .values(claimed_by=replica, lease_until=now + lease))
    await session.commit()
    return bool(result.rowcount == 1)


async def finish_slot(session: AsyncSession, provider: str, slot: int, replica: str) -> bool:
    """Mark the slot's run recorded (caller's transaction); False if it was taken over."""
    result = await session.exec(
        sa.update(SlotClaimRow)
        .where(col(SlotClaimRow.provider) == provider)
        .where(col(SlotClaimRow.slot) == slot)
        .where(col(SlotClaimRow.claimed_by) == replica)
        .values(done=True))
    return bool(result.rowcount == 1)


# -- provider state and runs ------------------------------------------------------------


async def load_state(session: AsyncSession, provider: str, now: datetime) -> ProviderState:
    """The stored state, locked for this transaction.

    The row is created first if missing (insert … on conflict do nothing), so two
    writers of a provider's first run serialise on it instead of both inserting.
    On SQLite the insert takes the database write lock for the transaction.
    """
    insert = pg_insert if _pg(session) else sqlite_insert
    await session.exec(insert(ProviderStateRow).values(
        provider=provider, state={}, updated_at=now).on_conflict_do_nothing())
    query = select(ProviderStateRow).where(ProviderStateRow.provider == provider)
    if _pg(session):
        query = query.with_for_update()
    row = (await session.exec(query)).first()
    return ProviderState.model_validate(row.state) if row and row.state else ProviderState()


async def save_state(session: AsyncSession, provider: str, state: ProviderState,
                     now: datetime) -> None:
    row = await session.get(ProviderStateRow, provider)
    data = state.model_dump(mode="json")
    if row is None:
        session.add(ProviderStateRow(provider=provider, state=data,
                                     last_run_id=state.last_run_id, updated_at=now))
    else:
        row.state, row.last_run_id, row.updated_at = data, state.last_run_id, now
        session.add(row)


def add_run(session: AsyncSession, result: ProbeResult, slot: int | None = None) -> None:
    session.add(RunRow(
        slot=slot,
        id=result.run_id, provider=result.provider, started_at=result.started_at,
        duration_ms=result.duration_ms, ok=result.ok,
        failed_step=result.failed_step.value if result.failed_step else None,
        failure_class=result.failure_class.value if result.failure_class else None,
        result=result.model_dump(mode="json")))


async def add_events(session: AsyncSession, events: Sequence[Event], now: datetime) -> int:
    """Store events and, in the same transaction, one outbox row per matching subscriber."""
    if not events:
        return 0
    subscriptions = (await session.exec(
        select(SubscriptionRow).where(col(SubscriptionRow.enabled).is_(True)))).all()
    # Flush events first: deliveries reference them by foreign key.
    for event in events:
        session.add(EventRow(id=event.id, type=event.type.value, provider=event.provider,
                             timestamp=event.timestamp, run_id=event.run_id,
                             data=event.model_dump(mode="json")["data"]))
    await session.flush()
    queued = 0
    for event in events:
        for sub in subscriptions:
            if subscribed(sub, event):
                session.add(DeliveryRow(id=new_id(), event_id=event.id, subscription_id=sub.id,
                                        next_attempt_at=now, created_at=now))
                queued += 1
    return queued


def subscribed(sub: SubscriptionRow, event: Event) -> bool:
    """`*`, exact types and prefixes like `probe.*`; provider names or `*`."""
    type_ok = any(fnmatch.fnmatchcase(event.type.value, pattern) for pattern in sub.events)
    provider_ok = "*" in sub.providers or (event.provider in sub.providers)
    return type_ok and provider_ok


# The subscription columns as stored (Fernet tokens, or legacy plaintext), without the
# model's decrypting types.
_stored_subscription = sa.table("subscription", sa.column("id", sa.String),
                                sa.column("url", sa.String), sa.column("routing_key", sa.String),
                                sa.column("secrets", sa.JSON))


async def reencrypt_subscriptions(session: AsyncSession) -> int:
    """Rewrite every subscription secret not under the newest key; how many rows changed.

    After a key rotation (MONITOR_SECRET_KEY=NEW,OLD) the rows still under OLD, and
    any legacy plaintext, are encrypted under NEW, so OLD can then be dropped. Raises
    SecretKeyError when a value opens with none of the keys. Caller's transaction.
    """
    cipher = cipher_for(session.get_bind().dialect)
    table = _stored_subscription

    def rotated(value: str | None) -> str | None:
        return None if value is None else cipher.rotate(value)

    changed = 0
    rows = (await session.exec(select(table.c.id, table.c.url, table.c.routing_key,
                                      table.c.secrets))).all()
    for sub_id, url, routing_key, secrets in rows:
        stored = [v for v in (url, routing_key, *(secrets or [])) if v is not None]
        if all(cipher.is_current(v) for v in stored):
            continue
        await session.exec(sa.update(table).where(table.c.id == sub_id).values(
            url=rotated(url), routing_key=rotated(routing_key),
            secrets=[cipher.rotate(s) for s in secrets or []]))
        changed += 1
    return changed


def add_pending(session: AsyncSession, *, token: str, run_id: str, provider: str, mailbox: str,
                accepted_at: datetime, deadline: datetime) -> None:
    session.add(PendingTokenRow(token=token, run_id=run_id, provider=provider, mailbox=mailbox,
                                accepted_at=accepted_at, deadline=deadline))


async def recent_runs(session: AsyncSession, provider: str, *, limit: int = 50,
                      before: str | None = None) -> Sequence[RunRow]:
    query = select(RunRow).where(RunRow.provider == provider)
    if before:
        query = query.where(col(RunRow.id) < before)
    return (await session.exec(query.order_by(col(RunRow.id).desc()).limit(limit))).all()


async def receive_results_since(session: AsyncSession, since: datetime,
                                limit: int = 50) -> Sequence[ReceiveResultRow]:
    """Receive-side results checked after `since`, oldest first."""
    return (await session.exec(select(ReceiveResultRow)
                               .where(col(ReceiveResultRow.checked_at) > since)
                               .order_by(col(ReceiveResultRow.checked_at)).limit(limit))).all()


async def last_runs(session: AsyncSession) -> dict[str, RunRow]:
    """Each provider's newest run, in one query (the state row points at it)."""
    rows = (await session.exec(select(RunRow).join(
        ProviderStateRow, col(ProviderStateRow.last_run_id) == col(RunRow.id)))).all()
    return {row.provider: row for row in rows}


async def last_run(session: AsyncSession, provider: str) -> RunRow | None:
    runs = await recent_runs(session, provider, limit=1)
    return runs[0] if runs else None


async def states(session: AsyncSession) -> Sequence[ProviderStateRow]:
    return (await session.exec(select(ProviderStateRow).order_by(
        col(ProviderStateRow.provider)))).all()


async def list_events(session: AsyncSession, *, provider: str | None = None,
                      types: Sequence[str] = (), since: datetime | None = None,
                      until: datetime | None = None, before: str | None = None,
                      limit: int = 50) -> Sequence[EventRow]:
    query = select(EventRow)
    if provider:
        query = query.where(EventRow.provider == provider)
    if types:
        query = query.where(col(EventRow.type).in_(list(types)))
    if since:
        query = query.where(col(EventRow.timestamp) >= since)
    if until:
        query = query.where(col(EventRow.timestamp) < until)
    if before:
        query = query.where(col(EventRow.id) < before)
    return (await session.exec(query.order_by(col(EventRow.id).desc()).limit(limit))).all()


# -- receive side -----------------------------------------------------------------------


async def claim_pending(session: AsyncSession, now: datetime,
                        lease: timedelta) -> Sequence[PendingTokenRow]:
    """Lease unclaimed pending tokens to this replica (conditional UPDATE). Commits."""
    candidates = (await session.exec(select(PendingTokenRow).where(
        sa.or_(col(PendingTokenRow.claimed_until).is_(None),
               col(PendingTokenRow.claimed_until) < now)).limit(500))).all()
    claimed = []
    for row in candidates:
        result = await session.exec(
            sa.update(PendingTokenRow)
            .where(col(PendingTokenRow.token) == row.token)
            .where(col(PendingTokenRow.mailbox) == row.mailbox)
            .where(sa.or_(col(PendingTokenRow.claimed_until).is_(None),
                          col(PendingTokenRow.claimed_until) < now))
            .values(claimed_until=now + lease))
        if result.rowcount == 1:
            claimed.append(row)
    await session.commit()
    return claimed


async def release_pending(session: AsyncSession, rows: Sequence[PendingTokenRow]) -> None:
    for row in rows:
        await session.exec(sa.update(PendingTokenRow)
                           .where(col(PendingTokenRow.token) == row.token)
                           .where(col(PendingTokenRow.mailbox) == row.mailbox)
                           .values(claimed_until=None))


async def resolve_pending(session: AsyncSession, row: ReceiveResultRow) -> bool:
    """Store a receive result and drop its pending token (caller's transaction).

    False when the token was already resolved (another replica whose lease had
    run out got there first): the caller must then record nothing.
    """
    deleted = await session.exec(sa.delete(PendingTokenRow)
                                 .where(col(PendingTokenRow.token) == row.token)
                                 .where(col(PendingTokenRow.mailbox) == row.mailbox))
    if deleted.rowcount != 1:
        return False
    await session.merge(row)
    return True


# -- retention --------------------------------------------------------------------------


async def prune(session: AsyncSession, before: datetime) -> dict[str, int]:
    """Delete history older than `before`. Commits."""
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
    ):
        result = await session.exec(statement)
        counts[name] = result.rowcount
    await session.commit()
    return counts


# -- outbox -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: DeliveryRow
    event: EventRow
    subscription: SubscriptionRow


async def claim_due(session: AsyncSession, now: datetime, worker: str, *,
                    lease: timedelta, limit: int = 50) -> list[ClaimedDelivery]:
    """Claim due deliveries atomically so no two workers send the same attempt. Commits.

    PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED. SQLite: a conditional UPDATE per
    row (SQLite serialises writers, so the condition decides the winner).
    """
    enabled = select(SubscriptionRow.id).where(col(SubscriptionRow.enabled).is_(True))
    due = (select(DeliveryRow)
           .where(col(DeliveryRow.status) == "pending")
           # A disabled subscription's queue waits: re-enabling it resumes delivery.
           .where(col(DeliveryRow.subscription_id).in_(enabled))
           .where(col(DeliveryRow.next_attempt_at) <= now)
           .where(sa.or_(col(DeliveryRow.claimed_until).is_(None),
                         col(DeliveryRow.claimed_until) < now))
           .order_by(col(DeliveryRow.next_attempt_at), col(DeliveryRow.id))
           .limit(limit))
    claimed: list[DeliveryRow] = []
    if _pg(session):
        for row in (await session.exec(due.with_for_update(skip_locked=True))).all():
            row.claimed_until, row.claimed_by = now + lease, worker
            session.add(row)
            claimed.append(row)
    else:
        for row in (await session.exec(due)).all():
            result = await session.exec(
                sa.update(DeliveryRow)
                .where(col(DeliveryRow.id) == row.id)
                .where(col(DeliveryRow.status) == "pending")
                .where(sa.or_(col(DeliveryRow.claimed_until).is_(None),
                              col(DeliveryRow.claimed_until) < now))
                .values(claimed_until=now + lease, claimed_by=worker))
            if result.rowcount == 1:
                claimed.append(row)
    await session.commit()
    if not claimed:
        return []
    # Two queries for the whole batch, not two per delivery.
    events = {e.id: e for e in (await session.exec(select(EventRow).where(
        col(EventRow.id).in_({row.event_id for row in claimed})))).all()}
    subscriptions = {s.id: s for s in (await session.exec(select(SubscriptionRow).where(
        col(SubscriptionRow.id).in_({row.subscription_id for row in claimed})))).all()}
    return [ClaimedDelivery(row, events[row.event_id], subscriptions[row.subscription_id])
            for row in claimed
            if row.event_id in events and row.subscription_id in subscriptions]


async def finish_attempt(session: AsyncSession, delivery_id: str, attempt: DeliveryAttemptRow,
                         *, status: str, next_attempt_at: datetime | None,
                         error: str | None, worker: str) -> bool:
    """Record one attempt and the delivery's new state; release the claim. Commits.

    False, recording nothing, when this worker no longer holds the claim (its lease
    ran out and another worker took the delivery over).
    """
    query = select(DeliveryRow).where(DeliveryRow.id == delivery_id)
    if _pg(session):
        query = query.with_for_update()
    row = (await session.exec(query)).first()
    if row is None or row.claimed_by != worker:
        await session.rollback()
        return False
    session.add(attempt)
    row.attempts = attempt.attempt
    row.status = status
    row.last_status = attempt.status
    row.last_error = error
    row.claimed_until, row.claimed_by = None, None
    if next_attempt_at is not None:
        row.next_attempt_at = next_attempt_at
    if status == "delivered":
        row.delivered_at = attempt.at
    session.add(row)
    await session.commit()
    return True


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
