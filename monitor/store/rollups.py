"""Hourly rollups: updated in the caller's transaction as runs and receive results are
recorded, and read back summed over windows for the status page and its badges.

Writers of one provider are already serialised by the provider-state row lock
(`runs.load_state`, taken first in both recording transactions), so a row read,
changed in Python and written back cannot lose an update; on PostgreSQL it is
also read FOR UPDATE, in case a caller forgets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.probe.result import ProbeResult
from monitor.receive.result import ReceiveResult
from monitor.status import rollup
from monitor.status.histogram import Histogram, dense, sparse
from monitor.status.rollup import HourCounts, Uptime, Window
from monitor.store.db import dialect, insert_ignoring
from monitor.store.tables import HourlyRollupRow


def counts_of(row: HourlyRollupRow) -> HourCounts:
    return HourCounts(runs=row.runs, ok=row.ok, failed=row.failed, failures=dict(row.failures),
                      probe_ms=dense(row.probe_ms), receive_ms=dense(row.receive_ms),
                      delivery=dict(row.delivery))


_TABLE: sa.Table = HourlyRollupRow.__table__  # type: ignore[attr-defined]
_COUNTS = ("runs", "ok", "failed", "failures", "probe_ms", "receive_ms", "delivery")
# Built once, parameters at execution (a statement reused keeps its compiled form; see
# store.runs). The row is read first (FOR UPDATE on PostgreSQL), then updated, or
# inserted by the hour's first run; on SQLite the caller's first statement (the slot's
# finish, the state row, the pending token) already holds the database's write lock.
_THIS_HOUR = (_TABLE.c.provider == sa.bindparam("key_provider")) & (
    _TABLE.c.hour == sa.bindparam("key_hour"))
_READ = {"sqlite": sa.select(*(_TABLE.c[name] for name in _COUNTS)).where(_THIS_HOUR)}
_READ["postgresql"] = _READ["sqlite"].with_for_update()
_NEW = insert_ignoring(_TABLE)
_WRITE = _TABLE.update().where(_THIS_HOUR)


def _update(session: Session, provider: str, when: datetime,
            change: Callable[[HourCounts], HourCounts]) -> None:
    hour = rollup.hour_of(when)
    key = {"key_provider": provider, "key_hour": hour}
    kind = dialect(session)
    connection = session.connection()
    found = connection.execute(_READ[kind], key).first()
    if found is None:
        counts = change(HourCounts())
        if connection.execute(_NEW[kind], {"provider": provider, "hour": hour,
                                           **_values(counts)}).rowcount:
            return
        # Another writer inserted the hour meanwhile (PostgreSQL; it is locked now).
        found = connection.execute(_READ[kind], key).one()
    runs, ok, failed, failures, probe_ms, receive_ms, delivery = found
    counts = change(HourCounts(runs=runs, ok=ok, failed=failed, failures=dict(failures),
                               probe_ms=dense(probe_ms), receive_ms=dense(receive_ms),
                               delivery=dict(delivery)))
    connection.execute(_WRITE, {**key, **_values(counts)})


def _values(counts: HourCounts) -> dict[str, object]:
    return {"runs": counts.runs, "ok": counts.ok, "failed": counts.failed,
            "failures": dict(counts.failures), "delivery": dict(counts.delivery),
            "probe_ms": sparse(counts.probe_ms), "receive_ms": sparse(counts.receive_ms)}


def add_run(session: Session, result: ProbeResult) -> None:
    """Count a run into its provider's hour (caller's transaction)."""
    _update(session, result.provider, result.started_at,
                  lambda counts: rollup.add_run(counts, result))


def add_receive(session: Session, result: ReceiveResult) -> None:
    """Count a receive result into the hour its message was sent (caller's transaction)."""
    if rollup.delivery_of(result) is None:
        return  # the mailbox could not be checked: nothing to count
    _update(session, result.provider, result.accepted_at,
                  lambda counts: rollup.add_receive(counts, result))


async def hours(session: AsyncSession, provider: str, since: datetime,
                until: datetime | None = None) -> dict[datetime, HourCounts]:
    """A provider's rows from `since` on, by hour."""
    query = (select(HourlyRollupRow).where(col(HourlyRollupRow.provider) == provider)
             .where(col(HourlyRollupRow.hour) >= rollup.hour_of(since)))
    if until is not None:
        query = query.where(col(HourlyRollupRow.hour) < until)
    rows = (await session.exec(query.order_by(col(HourlyRollupRow.hour)))).all()
    return {row.hour: counts_of(row) for row in rows}


async def probe_histograms(session: AsyncSession,
                           since: datetime) -> dict[str, dict[datetime, Histogram]]:
    """Every provider's probe-duration histogram per hour from `since` on (the front
    page's sparklines): three columns, no row objects, for thousands of providers."""
    t = HourlyRollupRow
    rows = (await session.exec(select(col(t.provider), col(t.hour), col(t.probe_ms))
                               .where(col(t.hour) >= rollup.hour_of(since)))).all()
    out: dict[str, dict[datetime, Histogram]] = {}
    for provider, hour, stored in rows:
        out.setdefault(provider, {})[hour] = dense(stored)
    return out


async def uptimes(session: AsyncSession, windows: Mapping[str, Window], now: datetime,
                  provider: str | None = None, *,
                  hour: datetime | None = None) -> dict[str, dict[str, Uptime]]:
    """Uptime per provider and window, summed by the database in one pass over the
    longest window (histograms are not read: uptime needs only the counts); `hour`
    narrows every window to that one hour.

    A lower bound, or one hour by equality, and nothing else: SQLite (without
    ANALYZE) picks a scan for the first and the hour index for the second, which is
    right for both; a range bounded on both sides makes it look each row up through
    the hour index, ten times slower over 90 days of rows."""
    t = HourlyRollupRow
    columns: list[sa.ColumnElement[int]] = []
    for window in windows.values():
        inside = col(t.hour) >= window.start(now)
        columns += [
            sa.func.coalesce(sa.func.sum(sa.case((inside, col(t.runs)), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((inside, col(t.ok)), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((sa.and_(inside, col(t.runs) > 0), 1),
                                                 else_=0)), 0)]
    earliest = min(w.start(now) for w in windows.values())
    query = (select(col(t.provider), *columns)
             .where(col(t.hour) >= earliest if hour is None else col(t.hour) == hour)
             .group_by(col(t.provider)))
    if provider is not None:
        query = query.where(col(t.provider) == provider)
    out: dict[str, dict[str, Uptime]] = {}
    for row in (await session.exec(query)).all():
        name, sums = str(row[0]), [int(v) for v in row[1:]]
        out[name] = {w.name: rollup.uptime_from_totals(w, *sums[3 * i:3 * i + 3])
                     for i, w in enumerate(windows.values())}
    return out
