"""The `monitor` command line. Exit codes: 0 success, 1 probe failure, 2 usage/config error."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.config import ConfigError, default_config_path, load_config
from monitor.probe import run_probe
from monitor.render import render_result
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

    demo = commands.add_parser("demo", help="run everything locally against a built-in sandbox")
    demo.add_argument("--rounds", type=int, default=1, help=argparse.SUPPRESS)
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
        if args.command == "demo":
            from monitor.demo import run_demo

            return asyncio.run(run_demo())
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
    result = asyncio.run(run_probe(provider, config))
    print(result.model_dump_json(indent=2) if as_json else render_result(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def _validate(path: Path | None) -> int:
    config = load_config(path)
    source = path or default_config_path()
    print(f"{source}: OK ({len(config.providers)} providers, {len(config.mailboxes)} mailboxes, "
          f"{len(config.subscriptions)} subscriptions)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
