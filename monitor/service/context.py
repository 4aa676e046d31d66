"""The application context: everything a job or a route needs, injected, no globals."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from monitor.config import Config
from monitor.probe.result import ProbeResult
from monitor.service.metrics import Metrics
from monitor.service.outage import DatabaseOutage, unreachable
from monitor.store.crypto import Cipher
from monitor.store.db import make_engine, sessions
from monitor.store.writer import Writer


def utcnow() -> datetime:
    return datetime.now(UTC)


def replica_name() -> str:
    """Distinguishes replicas in claims and logs (pod name on Kubernetes)."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    # Claim columns hold 64 characters; Kubernetes pod names reach 63.
    return f"{host[:57]}-{secrets.token_hex(3)}"


MAX_HELD = 1000


@dataclass(frozen=True)
class HeldResult:
    provider: str
    result: ProbeResult
    slot: int | None


@dataclass
class AppContext:
    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    replica: str = field(default_factory=replica_name)
    clock: Callable[[], datetime] = utcnow
    # Tasks a graceful shutdown waits for (probes in flight, deliveries being sent).
    inflight: set[asyncio.Task[object]] = field(default_factory=set)
    scheduler_running: bool = False
    # Per mailbox, tokens whose arrival is stored but whose message is not deleted yet:
    # the next scan of that mailbox deletes them (store first, then delete).
    recorded_arrivals: dict[str, set[str]] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    outage: DatabaseOutage = field(init=False)
    # Probe results that could not be recorded while the database was away, oldest
    # first; recorded when it is back (bounded: past it the oldest are dropped, counted).
    held: deque[HeldResult] = field(default_factory=lambda: deque(maxlen=MAX_HELD))
    held_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The live replicas, as of the last heartbeat (service/partition.py); empty: unknown.
    live: tuple[str, ...] = ()
    # Set once deliveries were queued and committed here, or NOTIFYed by another replica:
    # the outbox sends at once instead of at its next poll.
    outbox_wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.outage = DatabaseOutage(lambda: self.clock())

    @classmethod
    def create(cls, config: Config, database_url: str,
               cipher: Cipher | None = None) -> AppContext:
        """`cipher` None: MONITOR_SECRET_KEY, or an SQLite database's key file."""
        engine = make_engine(database_url, cipher)
        return cls(config=config, engine=engine, sessions=sessions(engine))

    @cached_property
    def writer(self) -> Writer:
        """Whole write transactions of the recording path, committed in groups, one thread
        hop a group on SQLite (made on first use: a context that never records starts no
        thread). A lost database fails a whole group at once."""
        return Writer(self.engine, self.sessions, shared=unreachable)

    async def close(self) -> None:
        if "writer" in self.__dict__:
            await self.writer.close()
        await self.engine.dispose()

    def track(self, task: asyncio.Task[object]) -> None:
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    def track_current(self) -> None:
        """Make shutdown wait for the calling task (a probe that has started)."""
        task = asyncio.current_task()
        if task is not None:
            self.track(task)
