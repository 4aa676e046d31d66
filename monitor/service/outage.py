"""The database going away, as the service lives with it: counted, logged once a minute.

A replica keeps running while its database is unreachable: slots it cannot
claim are skipped, passes of the receive job and the outbox fail. Each of those
is a known failure, not a bug, so none gets a traceback: `DatabaseOutage` logs
one line when the database becomes unreachable, one a minute while it stays
away (with what was skipped or failed since the last line), and one when it is
back. `/readyz` and the `monitor_database_failures` counter say the same to a
machine.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy.exc

log = logging.getLogger("monitor.database")

REPORT_EVERY = timedelta(minutes=1)


def unreachable(exc: BaseException) -> bool:
    """True for the ways a connection to the database fails, not for a bad query."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlalchemy.exc.InterfaceError | sqlalchemy.exc.OperationalError):
        return True  # asyncpg and aiosqlite connection failures arrive as these
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # the pool waited for a connection
        return True
    if isinstance(exc, OSError | socket.gaierror | TimeoutError | asyncio.TimeoutError):
        return True
    # asyncpg's own tree, when SQLAlchemy has not wrapped it (connect at pool start).
    module = type(exc).__module__ or ""
    if module.startswith("asyncpg") and "Connection" in type(exc).__name__:
        return True
    # The server refusing or ending connections while it starts, stops or recovers:
    # 57P01-57P03 ("the database system is starting up" / "is shutting down" is asyncpg's
    # CannotConnectNowError), and SQLSTATE class 08, connection exceptions.
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    if module.startswith("asyncpg") and sqlstate.startswith(("08", "57P")):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and unreachable(cause)


class DatabaseOutage:
    """Whether the database is away, since when, and what was lost to it meanwhile."""

    def __init__(self, clock: Callable[[], datetime], *,
                 every: timedelta = REPORT_EVERY) -> None:
        self.clock = clock
        self.every = every
        self.since: datetime | None = None
        self._reported: datetime | None = None
        self._counts: Counter[str] = Counter()
        self._total: Counter[str] = Counter()

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, what: str, exc: BaseException) -> None:
        """`what` (a slot, a receive pass, an outbox pass…) failed for want of a database."""
        now = self.clock()
        self._counts[what] += 1
        self._total[what] += 1
        if self.since is None:
            self.since = self._reported = now
            log.warning("database unreachable", extra={
                "action": "database_down", "error": _short(exc), "failed": dict(self._counts)})
            self._counts.clear()
        elif self._reported is not None and now - self._reported >= self.every:
            self._reported = now
            log.warning("database still unreachable", extra={
                "action": "database_still_down", "since": self.since.isoformat(),
                "failed": dict(self._counts), "error": _short(exc)})
            self._counts.clear()

    def reached(self) -> None:
        """A database call succeeded: the outage, if any, is over."""
        if self.since is None:
            return
        now = self.clock()
        log.info("database reachable again", extra={
            "action": "database_back", "since": self.since.isoformat(),
            "down_seconds": round((now - self.since).total_seconds(), 1),
            "failed": dict(self._total)})
        self.since = self._reported = None
        self._counts.clear()
        self._total.clear()


def _short(exc: BaseException) -> str:
    # The first line only: SQLAlchemy appends the statement and a link; no parameters.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"
