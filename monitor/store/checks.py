"""Pre-campaign checks: the request, the report as it progresses, its lease, its end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.tables import CheckRow


def add_check(session: AsyncSession, *, check_id: str, status: str, created_at: datetime,
              request: dict[str, Any], report: dict[str, Any], claimed_by: str,
              lease: timedelta) -> None:
    session.add(CheckRow(id=check_id, status=status, created_at=created_at, request=request,
                         report=report, claimed_by=claimed_by,
                         lease_until=created_at + lease))


async def save_report(session: AsyncSession, check_id: str, *, status: str,
                      report: dict[str, Any], finished_at: datetime | None,
                      replica: str | None = None) -> bool:
    """The check's latest report (caller's transaction). False if the check is gone, or
    (given `replica`) another replica has taken it over: its report stands."""
    row = await session.get(CheckRow, check_id)
    if row is None or (replica is not None and row.claimed_by not in (None, replica)):
        return False
    if row.finished_at is not None:
        return False  # finished already (by whoever took it over): never twice
    row.status, row.report, row.finished_at = status, report, finished_at
    session.add(row)
    return True


async def get_check(session: AsyncSession, check_id: str) -> CheckRow | None:
    return await session.get(CheckRow, check_id)


async def renew(session: AsyncSession, check_id: str, replica: str, until: datetime) -> bool:
    """Extend `replica`'s lease on a running check. Commits."""
    result = await session.exec(sa.update(CheckRow)
                                .where(col(CheckRow.id) == check_id)
                                .where(col(CheckRow.claimed_by) == replica)
                                .where(col(CheckRow.finished_at).is_(None))
                                .values(lease_until=until))
    await session.commit()
    return bool(result.rowcount == 1)


async def abandoned(session: AsyncSession, now: datetime, *,
                    limit: int = 20) -> Sequence[CheckRow]:
    """Unfinished checks whose replica stopped renewing their lease."""
    return (await session.exec(select(CheckRow)
                               .where(col(CheckRow.finished_at).is_(None))
                               .where(col(CheckRow.lease_until) < now)
                               .order_by(col(CheckRow.created_at)).limit(limit))).all()


async def take_over(session: AsyncSession, row: CheckRow, replica: str, now: datetime,
                    lease: timedelta) -> bool:
    """Move an abandoned check to `replica`; one taker wins. Commits."""
    result = await session.exec(sa.update(CheckRow)
                                .where(col(CheckRow.id) == row.id)
                                .where(col(CheckRow.finished_at).is_(None))
                                .where(col(CheckRow.lease_until) < now)
                                .values(claimed_by=replica, lease_until=now + lease))
    await session.commit()
    return bool(result.rowcount == 1)
