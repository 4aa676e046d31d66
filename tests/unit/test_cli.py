"""The `monitor` command as a user runs it: a subprocess, exit codes, output."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from monitor.sandbox import Sandbox
from monitor.store.writer import within

EXAMPLE = Path(__file__).parents[2] / "config" / "monitor.yaml"
EXAMPLE_ENV = {"SENDGRID_API_KEY": "x", "SEED_PASSWORD": "x", "PD_ROUTING_KEY": "x",
               "OPS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}


async def monitor(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def sandbox(tmp_path: Path):  # type: ignore[no-untyped-def]
    box = await Sandbox(tmp_path / "sandbox").start()
    yield box
    await box.stop()


def write_config(path: Path, box: Sandbox) -> Path:
    assert box.certificates is not None
    path.write_text(f"""
providers:
  - name: sandbox
    host: {box.host}
    port: {box.port}
    mode: send
    ca_file: {box.certificates.ca_file}
    helo: cli-test.localhost
    auth: {{username: {box.username}, password: "${{SANDBOX_PASSWORD}}"}}
    from: probe@cli.test
    to: [seed@cli.test]
""")
    return path


async def test_probe_prints_step_table_and_exits_0(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path / "c.yaml", sandbox)
    code, out, err = await monitor("probe", "sandbox", "--config", str(config),
                                   env={"SANDBOX_PASSWORD": sandbox.password})
    assert code == 0, err
    for step in ("connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "quit"):
        assert f"  {step}" in out
    assert "TLSv1." in out and "(verified)" in out
    assert sandbox.password not in out


async def test_probe_failure_exits_1_with_diagnosis(tmp_path: Path, sandbox: Sandbox) -> None:
    sandbox.faults["rcpt"] = "550 5.1.1 no such user"
    config = write_config(tmp_path / "c.yaml", sandbox)
    code, out, _ = await monitor("probe", "sandbox", "--config", str(config),
                                 env={"SANDBOX_PASSWORD": sandbox.password})
    assert code == 1
    assert "FAILED at rcpt 550 5.1.1 (permanent)" in out
    assert "Next:" in out


async def test_probe_json_shape(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path / "c.yaml", sandbox)
    code, out, _ = await monitor("probe", "sandbox", "--config", str(config), "--json",
                                 env={"SANDBOX_PASSWORD": sandbox.password})
    assert code == 0
    result = json.loads(out)
    assert result["ok"] is True and result["provider"] == "sandbox"
    assert [s["step"] for s in result["steps"]][:3] == ["connect", "ehlo", "noop"]
    first = result["steps"][0]
    assert set(first) >= {"step", "command", "code", "enhanced_code", "text", "latency_ms", "ok",
                          "failure_class"}
    assert result["tls"]["verified"] is True
    assert result["tls"]["certificate"]["not_after"]
    assert result["capabilities"]["auth_mechanisms"] == ["LOGIN", "PLAIN"]
    assert result["token"].startswith("dm-")
    assert sandbox.password not in out


async def test_unknown_provider_and_bad_config_exit_2(tmp_path: Path) -> None:
    code, _, err = await monitor("probe", "nope", "--config", str(EXAMPLE), env=EXAMPLE_ENV)
    assert code == 2 and "no provider named 'nope'" in err and "sendgrid-relay" in err
    code, _, err = await monitor("probe", "x", "--config", str(EXAMPLE), env={})
    assert code == 2
    assert f"{EXAMPLE}: providers[0].auth.password: environment variable SENDGRID_API_KEY" in err


async def test_config_validate() -> None:
    env = EXAMPLE_ENV
    code, out, _ = await monitor("config", "validate", str(EXAMPLE), env=env)
    assert code == 0 and "OK (2 providers, 1 mailboxes, 4 subscriptions)" in out
    bad = Path(__file__).parents[1] / "fixtures" / "config" / "invalid-tls-mode.yaml"
    code, _, err = await monitor("config", "validate", str(bad), env=env)
    assert code == 2 and "providers[2].tls" in err


async def test_usage_error_exits_2() -> None:
    code, _, err = await monitor("probe")
    assert code == 2 and "usage" in err


async def test_demo_shows_failure_and_recovery_with_verified_webhooks() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "demo", "--once", "--interval", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), 120)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert proc.returncode == 0, out + err
    assert "probe FAILED at rcpt 451 4.3.0 (transient)" in out
    assert "probe FAILED at rcpt 550 5.1.1 (permanent)" in out
    for kind in ("probe.code_changed", "probe.failed", "probe.recovered"):
        assert f"webhook {kind}" in out, kind
    assert "all signatures verified (0 rejected)" in out
    assert "REJECTED" not in out
    assert "Authorization: Bearer demo-" in out
    assert re.search(r"Status page +http://127\.0\.0\.1:\d+/ ", out)


async def test_probe_output_escapes_control_bytes_a_server_sends(tmp_path: Path) -> None:
    from tests.unit.scripted_smtp import ScriptedServer

    hostile = b"220 evil.test \x1b]0;pwned\x07\x1b[2J\x00 ready \xe2\x80\xae gnp.exe\r\n"
    async with ScriptedServer(banner=hostile) as server:
        config = tmp_path / "c.yaml"
        config.write_text(f"providers:\n  - {{name: evil, host: 127.0.0.1, port: {server.port},"
                          " tls: none, helo: cli.test}\n")
        code, out, err = await monitor("probe", "evil", "--config", str(config))
    assert code == 0, err
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out
    assert "\u202e" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x00 ready \\u202e gnp.exe" in out


async def _interrupt_after(args: list[str], ready: bytes, presses: int,
                           tmp_path: Path) -> tuple[int, str]:
    """Start `monitor ARGS`, wait for `ready` on stdout, press Ctrl-C `presses` times."""
    import os
    import signal

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", *args, cwd=tmp_path, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    seen = b""
    async with asyncio.timeout(30):
        while ready not in seen:
            line = await proc.stdout.readline()
            assert line, f"exited before {ready!r}: {seen.decode()}"
            seen += line
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize("presses", [1, 2])
async def test_ctrl_c_in_demo_exits_130_without_a_traceback(tmp_path: Path,
                                                            presses: int) -> None:
    code, err = await _interrupt_after(["demo"], b"Ctrl-C stops everything", presses,
                                       tmp_path)
    assert code == 130
    assert "Traceback" not in err and "CancelledError" not in err
    assert len(err.splitlines()) <= 1


async def test_ctrl_c_in_probe_exits_130_with_one_line(tmp_path: Path) -> None:
    from tests.unit.scripted_smtp import HANG, ScriptedServer

    async with ScriptedServer(replies={"NOOP": HANG}) as server:
        config = tmp_path / "c.yaml"
        config.write_text(f"providers:\n  - {{name: slow, host: 127.0.0.1, port: {server.port},"
                          " tls: none, helo: cli.test, step_timeout: 60s, timeout: 60s}\n")
        # `probe` prints nothing before it ends: wait for the server to see the NOOP.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.cli", "probe", "slow", "--config", str(config),
            start_new_session=True, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(30):
            while not any(c.startswith("NOOP") for c in server.commands):  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # the server records commands; it has no event
        import os
        import signal

        os.killpg(proc.pid, signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    assert err.decode().strip() == "interrupted"


async def test_events_and_status_read_the_database(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from monitor import store
    from monitor.events.model import Event, EventType
    from monitor.events.state import Health, ProviderState
    from monitor.store.db import make_engine, migrate, sessions

    url = f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
    now = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    engine = make_engine(url)
    try:
        await migrate(engine)
        async with sessions(engine)() as session, session.begin():
            await within(session, lambda s: store.events.add_events(s, [
                Event(id="e1", type=EventType.PROBE_CODE_CHANGED, timestamp=now, provider="p",
                      data={"step": "rcpt", "recipient": "seed@x.test",
                            "previous": {"code": 250, "enhanced_code": "2.1.5"},
                            "current": {"code": 451, "enhanced_code": "4.3.0"}}),
                Event(id="e2", type=EventType.DELIVERY_FAILED, timestamp=now, provider="p",
                      data={"mailbox": "seed", "message": "junk \x1b[2J", "class": "delivery"}),
            ], now))
            await within(session, lambda s: store.runs.save_state(s, "p", ProviderState(
                health=Health.DOWN, consecutive_failures=2), now))
    finally:
        await engine.dispose()
    env = {"MONITOR_DATABASE_URL": url}

    code, out, err = await monitor("events", env=env)
    assert code == 0, err
    assert out.splitlines() == [
        f"2026-05-01 09:30:00  {'probe.code_changed':28} {'p':20} "
        "rcpt seed@x.test: 250 2.1.5 -> 451 4.3.0",
        f"2026-05-01 09:30:00  {'delivery.failed':28} {'p':20} "
        "seed: junk \\x1b[2J (delivery)"]
    code, out, _ = await monitor("events", "--type", "delivery.failed", "--json", env=env)
    assert code == 0 and [e["id"] for e in json.loads(out)] == ["e2"]

    code, out, err = await monitor("status", env=env)
    assert code == 0, err
    assert out.split()[:4] == ["p", "down", "delivery=unknown", "failures=2"]
    code, out, _ = await monitor("status", "--json", env=env)
    assert code == 0 and json.loads(out)["p"]["health"] == "down"


def test_start_up_imports_only_what_the_command_needs(tmp_path: Path) -> None:
    """`monitor probe` must not pay for the database, HTTP client and server, DNS stacks, nor
    building the parser for anything but the standard library (a cron job pays each run)."""
    import subprocess

    config = tmp_path / "c.yaml"  # port 1 refuses: the probe's whole code path, fast
    config.write_text("providers:\n  - {name: p, host: 127.0.0.1, port: 1, tls: none}\n")
    script = f"""
import sys
from monitor.cli.main import parser
parser().parse_args(["probe", "p"])
heavy = {{"asyncio", "pydantic", "yaml", "sqlalchemy", "sqlmodel", "alembic", "aiosqlite",
          "asyncpg", "httpx", "dns", "uvicorn", "starlette", "aiosmtplib"}}
print(sorted(heavy & {{m.split(".")[0] for m in sys.modules}}))
from monitor.cli.main import main
code = main(["probe", "p", "--config", {str(config)!r}])
print(code, sorted({{m.split(".")[0] for m in sys.modules}} & {{
    "sqlalchemy", "sqlmodel", "alembic", "aiosqlite", "asyncpg", "httpx", "dns", "uvicorn",
    "starlette", "python_multipart"}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    parsing, probing = done.stdout.splitlines()[:1], done.stdout.splitlines()[-1:]
    assert parsing == ["[]"]
    assert probing == ["1 []"], done.stdout
