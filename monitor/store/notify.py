"""Waking the outbox when deliveries are queued: PostgreSQL NOTIFY at commit, LISTEN per replica.

NOTIFY inside the transaction that queues deliveries is delivered when (and
only if) it commits, to every listening replica. SQLite has no such thing; a
single process wakes its own worker (service/outbox.py), and polling stays the
fallback for both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session

from monitor.store.db import is_postgres

CHANNEL = "monitor_outbox"

log = logging.getLogger("monitor.outbox")


def notify_queued(session: Session) -> None:
    """Tell every replica's outbox, at commit, that deliveries are due."""
    if is_postgres(session):
        session.connection().execute(sa.text(f"NOTIFY {CHANNEL}"))


@asynccontextmanager
async def listening(engine: AsyncEngine, wake: Callable[[], None],
                    lost: Callable[[], None]) -> AsyncIterator[bool]:
    """LISTEN on a connection of `engine`'s pool for as long as the block runs.

    Yields False on SQLite (nothing to listen to). `wake` runs on each
    notification, `lost` if the connection drops (the caller reconnects).
    """
    if engine.dialect.name != "postgresql":
        yield False
        return
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg's Connection

        def notified(*_: object) -> None:
            wake()

        def terminated(*_: object) -> None:
            lost()

        await driver.add_listener(CHANNEL, notified)
        driver.add_termination_listener(terminated)
        try:
            yield True
        finally:
            if not driver.is_closed():
                driver.remove_termination_listener(terminated)
                await driver.remove_listener(CHANNEL, notified)
