"""Inbound mail: messages posted to /inbound/{mailbox}, kept where every replica sees them.

The replica that answers an ESP's POST is rarely the one whose receive job looks
for the token, so the message lives in the database (`inbound_message`), not on
a pod's disk. Bounded: each message by the route's size limit, each mailbox to
its `MAX_PER_MAILBOX` newest (the oldest dropped as a new one comes in), and
every row by age — the scan sweeps day-old probes, retention (`retention.prune`)
whatever is older than the history window.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.ids import new_id
from monitor.store.tables import InboundMessageRow

MAX_PER_MAILBOX = 1000


class InboundHead(NamedTuple):
    """A stored message as a scan reads it: the first `head_bytes` of it, not all."""

    id: str
    token: str | None
    received_at: datetime
    head: bytes


async def add_message(session: AsyncSession, *, mailbox: str, token: str | None, raw: bytes,
                      received_at: datetime, keep: int = MAX_PER_MAILBOX) -> str:
    """Store one message, drop the mailbox's oldest beyond `keep`, return its id. Commits."""
    message_id = new_id("in")
    session.add(InboundMessageRow(id=message_id, mailbox=mailbox, token=token,
                                  received_at=received_at, raw=raw))
    await session.flush()
    beyond = (select(InboundMessageRow.id).where(col(InboundMessageRow.mailbox) == mailbox)
              .order_by(col(InboundMessageRow.received_at).desc(),
                        col(InboundMessageRow.id).desc())
              .offset(keep))
    await session.exec(sa.delete(InboundMessageRow)
                       .where(col(InboundMessageRow.mailbox) == mailbox)
                       .where(col(InboundMessageRow.id).in_(beyond)))
    await session.commit()
    return message_id


async def find_messages(session: AsyncSession, mailbox: str, tokens: Collection[str], *,
                        head_bytes: int, limit: int) -> Sequence[InboundHead]:
    """The `limit` newest messages of `mailbox` carrying one of `tokens`, newest first,
    each cut to its first `head_bytes` by the database (a scan needs only the header
    block, and a body may be megabytes)."""
    if not tokens:
        return []
    head = sa.func.substr(col(InboundMessageRow.raw), 1, head_bytes, type_=sa.LargeBinary)
    rows = (await session.exec(
        select(InboundMessageRow.id, InboundMessageRow.token, InboundMessageRow.received_at,
               head)
        .where(col(InboundMessageRow.mailbox) == mailbox)
        .where(col(InboundMessageRow.token).in_(sorted(tokens)))
        .order_by(col(InboundMessageRow.received_at).desc(), col(InboundMessageRow.id).desc())
        .limit(limit))).all()
    return [InboundHead(*row) for row in rows]


async def delete_messages(session: AsyncSession, ids: Collection[str]) -> int:
    """Delete these messages (already gone is fine); how many went. Commits."""
    if not ids:
        return 0
    result = await session.exec(sa.delete(InboundMessageRow)
                                .where(col(InboundMessageRow.id).in_(sorted(ids))))
    await session.commit()
    return result.rowcount


async def sweep_messages(session: AsyncSession, mailbox: str, before: datetime,
                         keep: Collection[str]) -> int:
    """Delete the mailbox's messages received before `before` whose token is not in
    `keep` (nobody waits for them any more); how many went. Commits."""
    token = col(InboundMessageRow.token)
    result = await session.exec(sa.delete(InboundMessageRow)
                                .where(col(InboundMessageRow.mailbox) == mailbox)
                                .where(col(InboundMessageRow.received_at) < before)
                                .where(sa.or_(token.is_(None), token.not_in(sorted(keep)))))
    await session.commit()
    return result.rowcount

