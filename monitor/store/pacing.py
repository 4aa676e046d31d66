"""Pacing shared by every replica: when a paced destination (a Slack webhook URL) may
next be sent to, claimed atomically, so three replicas send one message a second to
one URL between them, not one each.

A destination is its `key`, the sha256 hex of its URL (`limits.rate_key`): the URL is
a credential and is never stored. Claiming a turn is one statement, an upsert whose
update is conditional: it inserts the key's row on its first claim, and later moves
`next_at` an interval on only if the turn is free. PostgreSQL re-checks the condition
on the row a concurrent winner committed (and one of two racing inserts meets the
other's row), SQLite serialises writers, so of any number of claimants at one moment
exactly one is granted. One statement, one round trip, for the first claim too: a
turn runs from the `now` it was asked with, so every round trip between that and the
grant brings the next replica's turn closer to this one's request.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.store.db import is_postgres
from monitor.store.tables import DeliveryRow, PaceRow

# A grant sets next_at one interval past the granter's clock. A next_at further ahead
# than that plus this was written by a clock running fast (or by a test's): the turn is
# taken rather than waited for, so one bad clock cannot stall a destination for hours.
MAX_AHEAD = timedelta(minutes=1)

_KEY = re.compile(r"[0-9a-f]{64}")


async def claim_turn(session: AsyncSession, key: str, now: datetime,
                     interval: timedelta) -> datetime | None:
    """Take the turn to send to `key` now. Commits.

    None: granted, and the next turn is `now + interval`. Otherwise the time the
    current turn ends (`next_at`), to wait until before asking again; it may already
    be past when another claimant moved it in between, and asking again at once is
    then right.
    """
    if not _KEY.fullmatch(key):  # the URL itself must never land in the table
        raise ValueError("a pace key is the sha256 hex digest of the destination")
    insert = pg_insert if is_postgres(session) else sqlite_insert
    claim = insert(PaceRow).values(key=key, next_at=now + interval)
    granted = await session.exec(claim.on_conflict_do_update(
        index_elements=[col(PaceRow.key)], set_={"next_at": claim.excluded.next_at},
        where=sa.or_(col(PaceRow.next_at) <= now,
                     col(PaceRow.next_at) > now + interval + MAX_AHEAD)))
    if granted.rowcount == 1:
        await session.commit()
        return None
    next_at = (await session.exec(select(PaceRow.next_at)
                                  .where(col(PaceRow.key) == key))).first()
    await session.commit()  # hold nothing while the caller waits
    return next_at if next_at is not None else now + interval  # (never pruned meanwhile)


async def defer_delivery(session: AsyncSession, delivery_id: str, worker: str,
                         due: datetime) -> bool:
    """Give a claimed delivery back, due again at `due`, with no attempt counted: its
    turn is further off than a claim should be held. False when `worker` no longer
    holds it. Commits."""
    result = await session.exec(
        sa.update(DeliveryRow)
        .where(col(DeliveryRow.id) == delivery_id)
        .where(col(DeliveryRow.claimed_by) == worker)
        .where(col(DeliveryRow.status) == "pending")
        .values(next_attempt_at=due, claimed_until=None, claimed_by=None))
    await session.commit()
    return bool(result.rowcount == 1)
