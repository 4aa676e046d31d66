"""Receive-side tokens: pending ones leased to one replica at a time, and their results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.tables import (
    PendingTokenRow,
    ReceiveResultRow,
)


def add_pending(session: Session, *, token: str, run_id: str, provider: str, mailbox: str,
                accepted_at: datetime, deadline: datetime) -> None:
    session.add(PendingTokenRow(token=token, run_id=run_id, provider=provider, mailbox=mailbox,
                                accepted_at=accepted_at, deadline=deadline))


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


def resolve_pending(session: Session, row: ReceiveResultRow) -> bool:
    """Store a receive result and drop its pending token (caller's transaction).

    False when the token was already resolved (another replica whose lease had
    run out got there first): the caller must then record nothing.
    """
    deleted = session.exec(sa.delete(PendingTokenRow)
                           .where(col(PendingTokenRow.token) == row.token)
                           .where(col(PendingTokenRow.mailbox) == row.mailbox))
    if deleted.rowcount != 1:
        return False
    session.merge(row)
    return True


async def receive_results_since(session: AsyncSession, since: datetime,
                                limit: int = 50) -> Sequence[ReceiveResultRow]:
    """Receive-side results checked after `since`, oldest first."""
    return (await session.exec(select(ReceiveResultRow)
                               .where(col(ReceiveResultRow.checked_at) > since)
                               .order_by(col(ReceiveResultRow.checked_at)).limit(limit))).all()


async def recent_results(session: AsyncSession, provider: str,
                         limit: int = 20) -> Sequence[ReceiveResultRow]:
    """A provider's newest receive results, newest first."""
    return (await session.exec(select(ReceiveResultRow)
                               .where(col(ReceiveResultRow.provider) == provider)
                               .order_by(col(ReceiveResultRow.checked_at).desc())
                               .limit(limit))).all()
