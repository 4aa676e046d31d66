"""Replica heartbeats: who is alive, so the providers can be shared out among them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.db import insert_unique
from monitor.store.tables import ReplicaRow


async def beat(session: AsyncSession, name: str, now: datetime) -> None:
    """Record that `name` is alive now. Commits."""
    result = await session.exec(sa.update(ReplicaRow).where(col(ReplicaRow.name) == name)
                                .values(last_seen=now))
    await session.commit()
    if result.rowcount == 0 and not await insert_unique(
            session, ReplicaRow(name=name, last_seen=now)):
        await beat(session, name, now)  # inserted meanwhile by a restart of the same name


async def alive(session: AsyncSession, since: datetime) -> list[str]:
    """The replicas seen since `since`, by name."""
    return sorted((await session.exec(select(ReplicaRow.name)
                                      .where(col(ReplicaRow.last_seen) >= since))).all())


async def forget(session: AsyncSession, name: str) -> None:
    """A replica stopping cleanly leaves at once, so its share moves without a wait. Commits."""
    await session.exec(sa.delete(ReplicaRow).where(col(ReplicaRow.name) == name))
    await session.commit()
