"""Sending-domain posture state: read the last one, and replace it together with the
events its change raised, in one transaction, only if nobody else did first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.events.model import Event
from monitor.store.events import add_events
from monitor.store.tables import DomainPostureRow
from monitor.store.writer import within


async def load(session: AsyncSession, domain: str) -> DomainPostureRow | None:
    return await session.get(DomainPostureRow, domain)


async def save(session: AsyncSession, domain: str, state: dict[str, Any],
               read_version: int | None, events: Sequence[Event], now: datetime) -> bool:
    """Write `state` (and `events` with their outbox rows) if the row is still at
    `read_version` (None: there was no row). Commits; False, having written nothing, when
    another writer got there first (two replicas during a membership change)."""
    try:
        if read_version is None:
            session.add(DomainPostureRow(domain=domain, state=state, version=1,
                                         checked_at=now))
            await session.flush()
        else:
            result = await session.exec(
                sa.update(DomainPostureRow)
                .where(col(DomainPostureRow.domain) == domain,
                       col(DomainPostureRow.version) == read_version)
                .values(state=state, version=read_version + 1, checked_at=now))
            if result.rowcount != 1:
                await session.rollback()
                return False
        await within(session, lambda s: add_events(s, events, now))
        await session.commit()
    except IntegrityError:  # inserted by another writer meanwhile
        await session.rollback()
        return False
    return True
