"""`monitor serve` as real processes for multi-replica tests: start, wait ready, stop.

Each replica gets its own loopback port, data directory and log file, and a
HOSTNAME, so its slot claims are attributable: `claimed_by` is HOSTNAME, a dash
and a random suffix (`monitor.service.context.replica_name`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from monitor.store.db import sessions
from tests.conftest import TEST_SECRET_KEY
from tests.waiting import eventually

Row = TypeVar("Row", bound=SQLModel)

_TAIL = 30
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_TOKEN = "test-admin-token-0123456789"  # the service wants at least 16 characters


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect_provider(name: str, port: int, interval: str, timeout: str) -> dict[str, object]:
    """A plaintext connect-mode provider against a loopback SMTP server."""
    return {"name": name, "host": "127.0.0.1", "port": port, "helo": "t.test", "tls": "none",
            "mode": "connect", "interval": interval, "timeout": timeout}


def flaky_webhook(receiver_url: str) -> dict[str, object]:
    """The config's subscriptions and settings: flaky's failures and recoveries, signed
    with SECRET, to a loopback receiver."""
    return {"subscriptions": [{"name": "rx", "kind": "generic", "url": f"{receiver_url}/hook",
                               "secret": SECRET, "events": ["probe.failed", "probe.recovered"],
                               "providers": ["flaky"]}],
            "settings": {"allow_private_destinations": True, "allow_http_destinations": True,
                         "webhook_timeout": "2s"}}


async def select_rows(engine: AsyncEngine, table: type[Row], *where: Any) -> list[Row]:
    async with sessions(engine)() as session:
        return list((await session.exec(select(table).where(*where))).all())


@dataclass
class Replica:
    name: str  # its HOSTNAME
    port: int
    log: Path
    proc: asyncio.subprocess.Process | None = None

    def owns(self, claimed_by: str) -> bool:
        return claimed_by.startswith(f"{self.name}-")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(lines[-_TAIL:])

    async def start(self, config: Path, database_url: str, data_dir: Path) -> None:
        env = {**os.environ, "MONITOR_DATABASE_URL": database_url,
               "MONITOR_SECRET_KEY": TEST_SECRET_KEY, "MONITOR_LISTEN": f"127.0.0.1:{self.port}",
               "MONITOR_API_TOKENS": f"{API_TOKEN}:admin", "MONITOR_DATA_DIR": str(data_dir),
               "HOSTNAME": self.name}
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor.cli", "serve", "--config", str(config),
                env=env, stdout=log, stderr=log)

    async def ready(self, client: httpx.AsyncClient) -> bool:
        assert self.proc is not None
        assert self.proc.returncode is None, \
            f"{self.name} exited {self.proc.returncode}\n{self.tail()}"
        try:
            return (await client.get(f"{self.url}/readyz")).status_code == 200
        except httpx.TransportError:
            return False  # not listening yet

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self, within: float) -> int:
        """SIGTERM, then its exit code (the test fails if it takes longer than `within`)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            raise AssertionError(f"{self.name} still running {within:g}s after SIGTERM\n"
                                 f"{self.tail()}") from None


async def start_replicas(count: int, config: Path, database_url: str,
                         workdir: Path) -> list[Replica]:
    """`count` replicas started at once (they migrate the fresh database concurrently)."""
    replicas = [Replica(f"replica-{n}", free_port(), workdir / f"replica-{n}.log")
                for n in range(1, count + 1)]
    for replica in replicas:
        await replica.start(config, database_url, workdir / f"data-{replica.name}")
    return replicas


async def wait_ready(replicas: Sequence[Replica], within: float) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        async def all_ready() -> bool:
            return all(await asyncio.gather(*(r.ready(client) for r in replicas)))
        await eventually(all_ready, "/readyz 200 on every replica", within, every=0.1)


async def kill_all(replicas: Sequence[Replica]) -> None:
    """Cleanup: nothing outlives the test."""
    for replica in replicas:
        if replica.proc is not None and replica.proc.returncode is None:
            await replica.kill()
