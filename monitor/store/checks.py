"""Pre-campaign checks: the request, the report as it progresses, and its end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.tables import CheckRow


def add_check(session: AsyncSession, *, check_id: str, status: str, created_at: datetime,
              request: dict[str, Any], report: dict[str, Any]) -> None:
    session.add(CheckRow(id=check_id, status=status, created_at=created_at, request=request,
                         report=report))


async def save_report(session: AsyncSession, check_id: str, *, status: str,
                      report: dict[str, Any], finished_at: datetime | None) -> bool:
    """The check's latest report (caller's transaction); False if the check is gone."""
    row = await session.get(CheckRow, check_id)
    if row is None:
        return False
    row.status, row.report, row.finished_at = status, report, finished_at
    session.add(row)
    return True


async def get_check(session: AsyncSession, check_id: str) -> CheckRow | None:
    return await session.get(CheckRow, check_id)
