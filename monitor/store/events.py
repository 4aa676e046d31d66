"""Events, and the outbox rows each one gets per matching subscription (same transaction)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.events.model import Event
from monitor.ids import new_id
from monitor.store.notify import notify_queued
from monitor.store.tables import (
    DeliveryRow,
    EventRow,
    SubscriptionRow,
)


def add_events(session: Session, events: Sequence[Event], now: datetime) -> int:
    """Store events and, in the same transaction, one outbox row per matching subscriber."""
    if not events:
        return 0
    # The columns matching needs, not the rows: those would decrypt every secret.
    subscriptions = session.exec(
        select(SubscriptionRow.id, SubscriptionRow.events, SubscriptionRow.providers)
        .where(col(SubscriptionRow.enabled).is_(True))).all()
    # Flush events first: deliveries reference them by foreign key.
    for event in events:
        session.add(EventRow(id=event.id, type=event.type.value, provider=event.provider,
                             timestamp=event.timestamp, run_id=event.run_id,
                             data=event.model_dump(mode="json")["data"]))
    session.flush()
    queued = 0
    for event in events:
        for sub_id, patterns, providers in subscriptions:
            if subscribed(patterns, providers, event):
                session.add(DeliveryRow(id=new_id(), event_id=event.id, subscription_id=sub_id,
                                        next_attempt_at=now, created_at=now))
                queued += 1
    if queued:
        notify_queued(session)
    return queued


def subscribed(patterns: Sequence[str], providers: Sequence[str], event: Event) -> bool:
    """`*`, exact types and prefixes like `probe.*`; provider names or `*`."""
    type_ok = any(fnmatch.fnmatchcase(event.type.value, pattern) for pattern in patterns)
    provider_ok = "*" in providers or (event.provider in providers)
    return type_ok and provider_ok


# The subscription columns as stored (Fernet tokens, or legacy plaintext), without the
# model's decrypting types.
_stored_subscription = sa.table("subscription", sa.column("id", sa.String),
                                sa.column("url", sa.String), sa.column("routing_key", sa.String),
                                sa.column("secrets", sa.JSON))


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
