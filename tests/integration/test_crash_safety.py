"""kill -9 during a slow webhook: after a restart the event is delivered, same webhook-id."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from standardwebhooks import Webhook

from monitor.store.db import make_engine, migrate, sessions
from monitor.store.tables import DeliveryRow, EventRow
from tests.receivers import Receiver, Reply, running
from tests.unit.scripted_smtp import ScriptedServer

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_event_survives_kill_9_and_duplicates_share_the_webhook_id(tmp_path: Path) -> None:
    smtp = ScriptedServer(replies={"EHLO": "421 4.3.2 going down"})
    async with smtp, running(Receiver(script=[Reply(200, delay=1.5)] * 1 + [Reply(200)])) as rx:
        config = tmp_path / "monitor.yaml"
        config.write_text(f"""
providers:
  - {{name: flaky, host: 127.0.0.1, port: {smtp.port}, helo: t.test, interval: 1s,
     thresholds: {{failure: 1}}}}
subscriptions:
  - {{name: rx, kind: generic, url: "{rx.url}/hook", secret: "{SECRET}",
     events: [probe.failed]}}
settings: {{allow_private_destinations: true, allow_http_destinations: true,
           webhook_timeout: 2s}}
""")
        url = f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
        env = {**os.environ, "MONITOR_DATABASE_URL": url, "MONITOR_CONFIG": str(config),
               "MONITOR_LISTEN": "127.0.0.1:0"}
        log = (tmp_path / "serve.log").open("ab")

        async def start() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor.cli", "serve", env=env, stdout=log, stderr=log)

        first = await start()
        try:
            await rx.wait_for(1, within=30)  # the receiver is now holding the request
            first.send_signal(signal.SIGKILL)
            await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
        engine = make_engine(url)
        await migrate(engine)
        async with sessions(engine)() as session:
            events = (await session.exec(sa.select(EventRow))).scalars().all()
        assert [e.type for e in events] == ["probe.failed"]
        event_id = events[0].id

        second = await start()
        try:
            deadline = time.monotonic() + 40
            status = None
            while time.monotonic() < deadline:
                async with sessions(engine)() as session:
                    row = (await session.exec(sa.select(DeliveryRow).where(
                        DeliveryRow.event_id == event_id))).scalars().one()
                status = row.status
                if status == "delivered":
                    break
                await asyncio.sleep(0.2)
            assert status == "delivered"
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 30)
            await engine.dispose()
        ours = [r for r in rx.received if Webhook(SECRET).verify(r.body, r.headers)
                ["data"]["event_id"] == event_id]
        assert len(ours) >= 2  # the one the kill interrupted, and the one after the restart
        assert {r.headers["webhook-id"] for r in ours} == {event_id}


async def test_sigterm_lets_the_probe_in_flight_finish(tmp_path: Path) -> None:
    from tests.unit.scripted_smtp import Drip

    # NOOP answers slowly: the probe is mid-session when SIGTERM arrives.
    smtp = ScriptedServer(replies={"NOOP": Drip("250 2.0.0 OK", every=0.1)})
    async with smtp:
        config = tmp_path / "monitor.yaml"
        config.write_text(f"""
providers:
  - {{name: slow, host: 127.0.0.1, port: {smtp.port}, helo: t.test, interval: 1s,
     step_timeout: 10s}}
""")
        url = f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
        env = {**os.environ, "MONITOR_DATABASE_URL": url, "MONITOR_CONFIG": str(config),
               "MONITOR_LISTEN": "127.0.0.1:0"}
        with (tmp_path / "serve.log").open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor.cli", "serve", env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while "NOOP" not in smtp.commands:
                assert time.monotonic() < deadline, "no probe started"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
    engine = make_engine(url)
    try:
        async with sessions(engine)() as session:
            runs = (await session.exec(sa.text("SELECT ok FROM run"))).all()
    finally:
        await engine.dispose()
    assert runs and all(ok for (ok,) in runs), runs
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
