"""The inbound store the service injects: posted mail in the database, for every replica.

`POST /inbound/{mailbox}` lands on whichever replica the load balancer picks,
and the pending token is leased to whichever replica's receive job claims it;
with the message in the database (`monitor.store.inbound`) the two need not be
the same. This is the receive side's `InboundStore` on top of `ctx.sessions`:
the database being unreachable becomes a `ReceiveError` (network) there, so the
route answers 503 and the ESP retries, and it is counted like any outage
(`ctx.outage`, `monitor_database_failures{job="inbound"}`) — one log line a
minute, not a traceback per POST.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.receive.backend import MAX_HEADER_BYTES
from monitor.receive.errors import ReceiveError
from monitor.receive.inbound import StoredMessage
from monitor.results import FailureClass
from monitor.service.context import AppContext
from monitor.service.outage import unreachable
from monitor.store import inbound
from monitor.store.inbound import MAX_PER_MAILBOX

OUTAGE_NAME = "inbound"


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, as ReceiveOptions needs
class DatabaseInbound:
    ctx: AppContext
    keep: int = MAX_PER_MAILBOX  # per mailbox; the oldest go first

    async def put(self, mailbox: str, token: str | None, raw: bytes,
                  received_at: datetime) -> None:
        async with self._translated(count=True) as session:
            await inbound.add_message(session, mailbox=mailbox, token=token, raw=raw,
                                      received_at=received_at, keep=self.keep)

    async def find(self, mailbox: str, tokens: Collection[str],
                   limit: int) -> Sequence[StoredMessage]:
        async with self._translated() as session:
            heads = await inbound.find_messages(session, mailbox, tokens,
                                                head_bytes=MAX_HEADER_BYTES, limit=limit)
        return [StoredMessage(id=h.id, token=h.token, received_at=h.received_at, raw=h.head)
                for h in heads]

    async def delete(self, ids: Collection[str]) -> None:
        async with self._translated() as session:
            await inbound.delete_messages(session, ids)

    async def sweep(self, mailbox: str, before: datetime, keep: Collection[str]) -> int:
        async with self._translated() as session:
            return await inbound.sweep_messages(session, mailbox, before, keep)

    @asynccontextmanager
    async def _translated(self, *, count: bool = False) -> AsyncIterator[AsyncSession]:
        """A session; a database that cannot be reached is raised as ReceiveError and,
        for a POST (`count`), counted as an outage. A scan's failure is not counted
        here: the receive pass it is part of reaches the same database and is."""
        try:
            async with self.ctx.sessions() as session:
                yield session
        except Exception as exc:
            if not unreachable(exc):
                raise
            if count:
                self.ctx.outage.failed(OUTAGE_NAME, exc)
                self.ctx.metrics.database_failures.labels(OUTAGE_NAME).inc()
            raise ReceiveError(FailureClass.NETWORK,
                               f"the database is unreachable: {type(exc).__name__}") from exc
        if count:
            self.ctx.outage.reached()
