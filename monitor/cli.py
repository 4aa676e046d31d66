"""The `monitor` command line. Exit codes: 0 success, 1 probe failure, 2 usage/config error."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.checks import cli as check_cli
from monitor.config import Config, ConfigError, ProviderConfig, default_config_path, load_config
from monitor.probe import ProbeResult, run_probe
from monitor.receive import (
    PendingToken,
    ReceiveOptions,
    ReceiveResult,
    pending_tokens,
    wait_for_arrival,
)
from monitor.render import render_receive, render_result
from monitor.store.db import SchemaTooNew
from monitor.webhooks import verify_cli

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    probe = commands.add_parser("probe", help="run one probe now and print every step")
    probe.add_argument("name", help="provider name from the config")
    probe.add_argument("--config", type=Path, default=None,
                       help="config file (default: $MONITOR_CONFIG or config/monitor.yaml)")
    probe.add_argument("--json", action="store_true", help="print the result as JSON")

    config = commands.add_parser("config", help="config file tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser("validate", help="check a config file and exit")
    validate.add_argument("file", nargs="?", type=Path, default=None)

    serve = commands.add_parser("serve", help="run the scheduler, outbox and HTTP API")
    serve.add_argument("--config", type=Path, default=None)

    events = commands.add_parser("events", help="print recent events from the database")
    events.add_argument("--provider", default=None)
    events.add_argument("--type", dest="types", action="append", default=[],
                        help="event type (repeatable)")
    events.add_argument("--limit", type=int, default=20)
    events.add_argument("--json", action="store_true")

    status = commands.add_parser("status", help="print each provider's current state")
    status.add_argument("--json", action="store_true")

    verify_cli.add_parser(commands)
    check_cli.add_parser(commands)

    demo = commands.add_parser("demo", help="run everything locally against a built-in sandbox")
    demo.add_argument("--once", action="store_true",
                      help="stop after one failure-and-recovery cycle")
    demo.add_argument("--interval", type=float, default=2.0, help="seconds between probes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "probe":
            return _probe(args.name, args.config, as_json=args.json)
        if args.command == "config":
            return _validate(args.file)
        if args.command == "serve":
            from monitor.service.serve import serve

            serve(args.config)
            return EXIT_OK
        if args.command in ("events", "status"):
            from monitor import history

            return asyncio.run(history.main(args))
        if args.command == "webhook":
            return verify_cli.run(args)
        if args.command == "check":
            return check_cli.run(args)
        if args.command == "demo":
            from monitor.demo import main as demo_main

            return demo_main(once=args.once, interval=args.interval)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SchemaTooNew as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


def _probe(name: str, config_path: Path | None, *, as_json: bool) -> int:
    config = load_config(config_path)
    provider = config.provider(name)
    if provider is None:
        known = ", ".join(p.name for p in config.providers) or "none configured"
        print(f"error: {config.source}: no provider named {name!r} (known: {known})",
              file=sys.stderr)
        return EXIT_USAGE
    result, received = asyncio.run(_probe_and_receive(provider, config))
    if as_json:
        data = json.loads(result.model_dump_json())
        if received:  # only for sends to configured mailboxes: other output is unchanged
            data["receive"] = [json.loads(r.model_dump_json()) for r in received]
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(render_result(result) + ("\n\n" + render_receive(received) if received else ""))
    ok = result.ok and all(r.ok for r in received)  # missing, late or junk fail the probe
    return EXIT_OK if ok else EXIT_FAILED


async def _probe_and_receive(provider: ProviderConfig,
                             config: Config) -> tuple[ProbeResult, list[ReceiveResult]]:
    """Probe, then wait (bounded by each mailbox's `deliver_within`) for the message."""
    result = await run_probe(provider, config)
    pending = pending_tokens(result, config)
    if not pending:
        return result, []
    options = ReceiveOptions(data_dir=Path(os.environ.get("MONITOR_DATA_DIR", "data")))
    progress = _Progress(pending)

    async def wait(item: PendingToken) -> ReceiveResult:
        outcome = await wait_for_arrival(config, item, progress.callback(item.mailbox),
                                         options=options)
        progress.settled(item.mailbox, outcome.status.value)
        return outcome

    received = await asyncio.gather(*(wait(p) for p in pending))
    progress.done()
    return result, list(received)


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


def _validate(path: Path | None) -> int:
    config = load_config(path)
    source = path or default_config_path()
    print(f"{source}: OK ({len(config.providers)} providers, {len(config.mailboxes)} mailboxes, "
          f"{len(config.subscriptions)} subscriptions)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
