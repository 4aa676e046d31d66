"""Front-page uptimes for every provider without summing 90 days of rows on each view.

At thousands of providers the 90-day window is millions of hourly rows. The hours
before the current one hardly change, so their sums are kept for `ttl` (and never
past the hour, when every window moves on by one); each view adds only the current
hour's rows, one per provider. Late writes into a closed hour (results held through
a database outage, a receive result for a message sent last hour) show within `ttl`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from monitor import store
from monitor.status.rollup import Uptime, Window, combined, hour_of, uptime_from_totals

Uptimes = dict[str, dict[str, Uptime]]


class UptimeCache:
    def __init__(self, windows: Mapping[str, Window], ttl: timedelta = timedelta(minutes=5)):
        self.windows = dict(windows)
        self.ttl = ttl
        self._closed: tuple[datetime, datetime, Uptimes] | None = None  # hour, at, sums
        self._lock = asyncio.Lock()  # one recomputation at a time, not one per viewer

    async def uptimes(self, session: AsyncSession, now: datetime) -> Uptimes:
        hour = hour_of(now)
        async with self._lock:
            if (self._closed is None or self._closed[0] != hour
                    or now - self._closed[1] >= self.ttl):
                # Closed hours = everything - the current hour (not a query bounded on
                # both sides: see store.rollups.uptimes).
                total = await store.rollups.uptimes(session, self.windows, now)
                current = await store.rollups.uptimes(session, self.windows, now, hour=hour)
                self._closed = (hour, now, self._add(total, current, -1))
            closed = self._closed[2]
        current = await store.rollups.uptimes(session, self.windows, now, hour=hour)
        return self._add(closed, current)

    def _add(self, a: Uptimes, b: Uptimes, sign: int = 1) -> Uptimes:
        empty = {name: uptime_from_totals(w, 0, 0, 0) for name, w in self.windows.items()}
        return {provider: {name: combined(a.get(provider, empty)[name],
                                          b.get(provider, empty)[name], sign)
                           for name in self.windows}
                for provider in {*a, *b}}
