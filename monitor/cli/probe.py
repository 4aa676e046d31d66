"""`monitor probe NAME`: one probe now, then (for a send to configured mailboxes) the wait
for the message on the receive side, with progress on stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.command import Commands, ExitCode, UsageError, add_config_option

if TYPE_CHECKING:
    from monitor.config import Config, ProviderConfig
    from monitor.probe import ProbeResult
    from monitor.receive import PendingToken, ReceiveOptions, ReceiveResult


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    probe = commands.add_parser("probe", help="run one probe now and print every step")
    probe.add_argument("name", help="provider name from the config")
    add_config_option(probe)
    probe.add_argument("--json", action="store_true", help="print the result as JSON")
    probe.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    import asyncio

    from monitor.cli.render import render_receive, render_result
    from monitor.cli.terminal import terminal_safe
    from monitor.config import load_config

    config = load_config(args.config)
    provider = config.provider(args.name)
    if provider is None:
        known = ", ".join(p.name for p in config.providers) or "none configured"
        raise UsageError(f"{config.source}: no provider named {args.name!r} (known: {known})")
    result, received = asyncio.run(_probe_and_receive(provider, config))
    if args.json:
        data = json.loads(result.model_dump_json())
        if received:  # only for sends to configured mailboxes: other output is unchanged
            data["receive"] = [json.loads(r.model_dump_json()) for r in received]
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(terminal_safe(render_result(result)
                            + ("\n\n" + render_receive(received) if received else "")))
    ok = result.ok and all(r.ok for r in received)  # missing, late or junk fail the probe
    return ExitCode.OK if ok else ExitCode.FAILED


async def _probe_and_receive(provider: ProviderConfig,
                             config: Config) -> tuple[ProbeResult, list[ReceiveResult]]:
    """Probe, then wait (bounded by each mailbox's `deliver_within`) for the message."""
    from monitor.probe import run_probe
    from monitor.receive import ReceiveOptions, pending_tokens

    result = await run_probe(provider, config)
    pending = pending_tokens(result, config)
    if not pending:
        return result, []
    options = ReceiveOptions(data_dir=Path(os.environ.get("MONITOR_DATA_DIR", "data")))
    closing = None
    if any((m := config.mailbox(p.mailbox)) is not None and m.kind == "inbound"
           for p in pending):
        # Mail posted to `monitor serve` is in its database: read it there (only then
        # does this command load the database stack).
        from dataclasses import replace

        from monitor.service.context import AppContext
        from monitor.service.inbound import DatabaseInbound
        from monitor.store.db import database_url

        ctx = AppContext.create(config, database_url())
        options = replace(options, inbound_store=DatabaseInbound(ctx))
        closing = ctx
    try:
        return result, await _wait_all(config, pending, options)
    finally:
        if closing is not None:
            await closing.close()


async def _wait_all(config: Config, pending: list[PendingToken],
                    options: ReceiveOptions) -> list[ReceiveResult]:
    import asyncio

    from monitor.receive import wait_for_arrival

    progress = _Progress(pending)

    async def wait(item: PendingToken) -> ReceiveResult:
        outcome = await wait_for_arrival(config, item, progress.callback(item.mailbox),
                                         options=options)
        progress.settled(item.mailbox, outcome.status.value)
        return outcome

    received = await asyncio.gather(*(wait(p) for p in pending))
    progress.done()
    return list(received)


class _Progress:
    """Progress of the wait on stderr: redrawn in place on a terminal, one line otherwise."""

    def __init__(self, pending: list[PendingToken]) -> None:
        self.limits = {p.mailbox: (p.deadline - p.accepted_at).total_seconds() for p in pending}
        self.state = {name: f"0/{limit:g} s" for name, limit in self.limits.items()}
        self.tty = sys.stderr.isatty()
        names = ", ".join(self.limits)
        if not self.tty:
            print(f"waiting for the probe message in {names} "
                  f"(up to {max(self.limits.values()):g} s)…", file=sys.stderr)

    def callback(self, mailbox: str) -> Callable[[float], None]:
        def update(elapsed: float) -> None:
            self.state[mailbox] = f"{elapsed:.0f}/{self.limits[mailbox]:g} s"
            self._draw()
        return update

    def settled(self, mailbox: str, status: str) -> None:
        self.state[mailbox] = status
        self._draw()

    def _draw(self) -> None:
        if self.tty:
            line = "  ".join(f"{name} {state}" for name, state in self.state.items())
            print(f"\r\033[Kwaiting for the probe message: {line}", end="", file=sys.stderr,
                  flush=True)

    def done(self) -> None:
        if self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
