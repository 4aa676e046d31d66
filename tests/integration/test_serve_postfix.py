"""`monitor serve` end to end: real postfix and sandboxes, events read back from the database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import store
from monitor.sandbox import Sandbox, make_certificates
from monitor.store.db import make_engine, migrate, sessions
from monitor.store.tables import EventRow
from tests.integration.mailstack import MailStack

SEED = "seed@example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


class Service:
    def __init__(self, config: Path, db: Path, log: Path) -> None:
        self.config, self.db, self.log = config, db, log
        self.url = f"sqlite+aiosqlite:///{db}"
        self.port = free_port()
        self.engine = make_engine(self.url)
        self.sessions = sessions(self.engine)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.subprocess.Process]:
        await migrate(self.engine)  # so polling can start before the service has migrated
        env = {**os.environ, "MONITOR_DATABASE_URL": self.url,
               "MONITOR_LISTEN": f"127.0.0.1:{self.port}", "MONITOR_CONFIG": str(self.config)}
        with self.log.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor.cli", "serve", env=env, stdout=log, stderr=log)
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def events(self, kind: str, provider: str) -> list[EventRow]:
        async with self.sessions() as session:
            rows = await store.events.list_events(session, provider=provider, types=[kind],
                                             limit=100)
        return list(rows)

    async def runs(self, provider: str) -> int:
        async with self.sessions() as session:
            return len(await store.runs.recent_runs(session, provider, limit=1000))


async def test_serve_records_runs_and_exactly_the_expected_events(
        mailstack: MailStack, tmp_path: Path) -> None:
    expiring = await Sandbox(tmp_path / "expiring", certificates=make_certificates(
        tmp_path / "expiring-certs", not_before=datetime.now(UTC) - timedelta(days=25),
        valid_for=timedelta(days=30))).start()
    withdrawing = await Sandbox(tmp_path / "withdrawing").start()
    assert expiring.certificates and withdrawing.certificates
    config = tmp_path / "monitor.yaml"
    config.write_text(f"""
providers:
  - name: postfix
    host: {mailstack.host}
    port: {mailstack.submission_port}
    mode: send
    ca_file: {mailstack.ca_pem_path}
    helo: probe.example.test
    auth: {{username: {SEED}, password: seed-password}}
    from: {SEED}
    to: [{SEED}]
    interval: 2s
    timeout: 10s
    step_timeout: 3s
  - name: expiring
    host: 127.0.0.1
    port: {expiring.port}
    mode: tls
    ca_file: {expiring.certificates.ca_file}
    helo: probe.example.test
    interval: 1s
  - name: withdrawing
    host: 127.0.0.1
    port: {withdrawing.port}
    mode: tls
    ca_file: {withdrawing.certificates.ca_file}
    helo: probe.example.test
    interval: 1s
""")
    service = Service(config, tmp_path / "monitor.db", tmp_path / "serve.log")
    try:
        async with service.running() as proc:
            await eventually(lambda: _has_runs(service, "postfix", 1), "a first postfix run")
            await eventually(lambda: _has_runs(service, "expiring", 3), "expiring runs")

            # 550 at RCPT: the code change, then (threshold 2) the failure.
            mailstack.set_recipient_access({SEED: "550 5.1.1 Mailbox unavailable"})
            try:
                await eventually(lambda: _has(service, "probe.failed", "postfix"),
                                 "probe.failed after 550")
                changed = await service.events("probe.code_changed", "postfix")
                assert [e.data["current"] for e in changed] == [
                    {"code": 550, "enhanced_code": "5.1.1"}]
                assert (changed[0].data["step"], changed[0].data["recipient"]) == ("rcpt", SEED)
                failed = (await service.events("probe.failed", "postfix"))[0]
                assert (failed.data["step"], failed.data["code"], failed.data["class"]) == (
                    "rcpt", 550, "permanent")
                assert changed[0].timestamp <= failed.timestamp
            finally:
                mailstack.set_recipient_access({})
            await eventually(lambda: _has(service, "probe.recovered", "postfix"),
                             "probe.recovered")

            mailstack.stop_postfix()
            try:
                await eventually(lambda: _count(service, "probe.failed", "postfix", 2),
                                 "probe.failed with postfix stopped")
            finally:
                mailstack.start_postfix()
            network = (await service.events("probe.failed", "postfix"))[0]
            assert (network.data["step"], network.data["class"]) == ("connect", "network")

            withdrawing.offer_starttls = False
            await eventually(lambda: _has(service, "probe.capabilities_changed", "withdrawing"),
                             "capabilities_changed")
            caps = (await service.events("probe.capabilities_changed", "withdrawing"))[0]
            assert "STARTTLS" in caps.data["removed"]

            # Graceful stop: SIGTERM, exit 0.
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0

        runs_before = await service.runs("expiring")
        async with service.running():
            await eventually(lambda: _has_runs(service, "expiring", runs_before + 3),
                             "expiring runs after the restart")
        expiring_events = await service.events("tls.certificate_expiring", "expiring")
        assert len(expiring_events) == 1
        assert expiring_events[0].data["threshold_days"] == 7
        assert await service.events("probe.failed", "expiring") == []
        log = service.log.read_text()
        assert "seed-password" not in log
    finally:
        await service.engine.dispose()
        await expiring.stop()
        await withdrawing.stop()


async def _has_runs(service: Service, provider: str, n: int) -> bool:
    return await service.runs(provider) >= n


async def _has(service: Service, kind: str, provider: str) -> bool:
    return bool(await service.events(kind, provider))


async def _count(service: Service, kind: str, provider: str, n: int) -> bool:
    return len(await service.events(kind, provider)) >= n
