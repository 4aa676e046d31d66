"""The demo `monitor demo` runs: the whole loop on loopback, nothing to install or configure.

One process runs: the sandbox SMTP server (STARTTLS with a generated
certificate, AUTH, a Maildir), a Maildir seed mailbox, a webhook receiver that
verifies every Standard Webhooks signature, and the service itself (scheduler,
receive poller, outbox, HTTP API) on a short interval. The sandbox then
answers 451 and later 550 at RCPT for a while, which the terminal shows as
signed `probe.code_changed` / `probe.failed` webhooks, then the recovery.

Imported only when the demo runs (monitor/cli/demo.py): it brings uvicorn, starlette
and the whole service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor import store
from monitor.api import Tokens
from monitor.cli.command import ExitCode
from monitor.cli.terminal import terminal_safe
from monitor.config import Config
from monitor.events.model import EventType
from monitor.events.summary import failure, summary
from monitor.receive import ReceiveOptions
from monitor.sandbox import Sandbox
from monitor.service.context import AppContext
from monitor.service.serve import service_app
from monitor.webhooks.errors import SignatureError
from monitor.webhooks.signing import generate_secret, verify

# (runs to wait, fault at RCPT) — healthy, 451 twice, 550 twice, then healthy again.
SCENE = (
    (3, None),
    (2, "451 4.3.0 Sandbox: temporary failure (demo)"),
    (2, "550 5.1.1 Sandbox: no such user (demo)"),
)


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoReceiver:
    """Verifies each webhook's signature and prints what it says."""

    secret: str
    out: Callable[[str], None]
    verified: int = 0
    rejected: int = 0
    types: list[str] = field(default_factory=list)
    recovered: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            verify(body, request.headers, self.secret)
        except SignatureError as exc:
            self.rejected += 1
            self.out(f"  webhook REJECTED: {exc}")
            return Response("bad signature", status_code=401)
        self.verified += 1
        payload = json.loads(body)
        self.types.append(payload["type"])
        if payload["type"] == EventType.PROBE_RECOVERED.value:
            self.recovered.set()
        detail = summary(payload["type"], payload["data"])
        self.out(f"  webhook {payload['type']:<28} {detail}  "
                 f"[signature verified, webhook-id {request.headers['webhook-id']}]")
        return Response("ok")


class _Server(uvicorn.Server):
    """Leaves Ctrl-C to asyncio.run, which cancels the demo: uvicorn's own handler
    would re-raise the signal when the server stops, as a traceback in whatever
    runs then."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _serving(app: Any, port: int) -> AsyncIterator[None]:
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                    lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def _config(sandbox: Sandbox, receiver_url: str, secret: str, interval: float) -> Config:
    assert sandbox.certificates is not None
    return Config.model_validate({
        "providers": [{
            "name": "sandbox", "host": sandbox.host, "port": sandbox.port, "tls": "starttls",
            "mode": "send", "ca_file": str(sandbox.certificates.ca_file),
            "helo": "demo.localhost",
            "auth": {"username": sandbox.username, "password": sandbox.password},
            "from": "probe@demo.localhost", "to": ["demo-seed"],
            "interval": f"{interval}s", "timeout": "10s",
            "thresholds": {"failure": 2, "recovery": 1, "latency_ms": 2000}}],
        "mailboxes": [{"name": "demo-seed", "address": "seed@demo.localhost", "kind": "maildir",
                       "path": str(sandbox.maildir), "deliver_within": "10s"}],
        "subscriptions": [{"name": "demo-receiver", "kind": "generic", "url": receiver_url,
                           "secret": secret, "events": ["*"]}],
        # The status page is public here: the demo listens on loopback only.
        "settings": {"allow_private_destinations": True, "allow_http_destinations": True,
                     "helo": "demo.localhost", "status_page": "public"},
    })


async def _watch_runs(ctx: AppContext, out: Callable[[str], None]) -> None:
    """Print each probe run, and what the seed mailbox saw of it, as they are recorded."""
    seen: str | None = None
    checked = ctx.clock()
    while True:
        async with ctx.sessions() as session:
            runs = list(reversed(await store.runs.recent_runs(session, "sandbox", limit=10)))
            received = await store.tokens.receive_results_since(session, checked)
        for row in received:
            checked = row.checked_at
            verdict = (f"seen in {row.placement}, {row.latency_ms:.0f} ms after DATA "
                       "(the receive poller looks every 2 s)"
                       if row.arrived and row.latency_ms is not None
                       else f"NOT delivered ({row.result.get('status')})")
            out(f"{row.checked_at:%H:%M:%S} mailbox {row.mailbox}: test message {verdict}")
        for run in runs:
            if seen is not None and run.id <= seen:
                continue
            seen = run.id
            result = run.result
            at = datetime.fromisoformat(result["started_at"]).strftime("%H:%M:%S")
            if result["ok"]:
                out(f"{at} probe ok     {len(result['steps'])} steps in "
                    f"{result['duration_ms']:.0f} ms")
            else:
                failed = next(s for s in result["steps"] if s.get("failure_class"))
                out(f"{at} probe FAILED at "
                    + failure(failed["step"], failed["code"], failed["enhanced_code"],
                              failed["failure_class"]))
        await asyncio.sleep(0.3)


async def _after_runs(ctx: AppContext, count: int) -> None:
    async with ctx.sessions() as session:
        start = len(await store.runs.recent_runs(session, "sandbox", limit=1000))
    while True:
        async with ctx.sessions() as session:
            if len(await store.runs.recent_runs(session, "sandbox", limit=1000)) >= start + count:
                return
        await asyncio.sleep(0.2)


async def run_demo(*, once: bool = False, interval: float = 2.0) -> ExitCode:
    def out(line: str) -> None:
        print(terminal_safe(line), flush=True)  # the sandbox's replies, the webhooks' data

    _own_ctrl_c()
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp:
        directory = Path(tmp)
        sandbox = await Sandbox(directory / "sandbox").start()
        secret = generate_secret()
        receiver = DemoReceiver(secret, out)
        receiver_app = Starlette(routes=[Route("/hooks", receiver.handle, methods=["POST"])])
        receiver_port, api_port = _free_port(0), _free_port(8080)
        config = _config(sandbox, f"http://127.0.0.1:{receiver_port}/hooks", secret, interval)
        ctx = AppContext.create(config, f"sqlite+aiosqlite:///{directory / 'monitor.db'}")
        token = "demo-" + secrets.token_urlsafe(18)
        app = service_app(ctx, Tokens.parse(f"{token}:admin", "demo"),
                          ReceiveOptions(data_dir=directory / "data"))
        watcher: asyncio.Task[None] | None = None
        interrupted = False
        try:
            async with _serving(receiver_app, receiver_port), _serving(app, api_port):
                out(f"Sandbox SMTP server   127.0.0.1:{sandbox.port} (STARTTLS, AUTH)")
                out(f"Seed mailbox          Maildir {sandbox.maildir}")
                out(f"Webhook receiver      http://127.0.0.1:{receiver_port}/hooks "
                    "(verifies every signature)")
                out(f"API                   http://127.0.0.1:{api_port}  — try:")
                out(f"  curl -H 'Authorization: Bearer {token}' "
                    f"http://127.0.0.1:{api_port}/v1/providers")
                out(f"Status page           http://127.0.0.1:{api_port}/  (and "
                    f"/badge/sandbox/status.svg)")
                out(f"Probing every {interval:g}s. Ctrl-C stops everything.\n")
                watcher = asyncio.create_task(_watch_runs(ctx, out))
                while True:
                    for runs, fault in SCENE:
                        sandbox.faults.pop("rcpt", None)
                        if fault:
                            sandbox.faults["rcpt"] = fault
                            out(f"--- injecting: the sandbox now answers {fault.split(' ')[0]} "
                                "at RCPT ---")
                        await _after_runs(ctx, runs)
                    sandbox.faults.pop("rcpt", None)
                    out("--- fault removed: waiting for the recovery ---")
                    receiver.recovered.clear()
                    await receiver.recovered.wait()
                    out(f"\nCycle complete: {receiver.verified} webhooks received, all "
                        f"signatures verified ({receiver.rejected} rejected).\n")
                    if once:
                        break
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
            out("\nStopping… (Ctrl-C again to quit at once)")
        finally:
            if watcher is not None:
                watcher.cancel()
            await sandbox.stop()
    if interrupted:
        return ExitCode.INTERRUPTED
    ok = receiver.rejected == 0 and receiver.verified > 0
    return ExitCode.OK if ok else ExitCode.FAILED


def _own_ctrl_c() -> None:
    """The first Ctrl-C cancels the demo, which stops cleanly; a second one leaves at
    once. (asyncio.run's own handler raises KeyboardInterrupt into whatever runs on
    the second, and the clean-up then prints its tracebacks.)"""
    demo = asyncio.current_task()
    loop = asyncio.get_running_loop()
    pressed = 0

    def on_ctrl_c() -> None:
        nonlocal pressed
        pressed += 1
        if pressed == 1 and demo is not None:
            demo.cancel()
            return
        print("Stopped.", file=sys.stderr, flush=True)
        os._exit(ExitCode.INTERRUPTED)

    loop.add_signal_handler(signal.SIGINT, on_ctrl_c)
