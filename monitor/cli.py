"""The `monitor` command line. Exit codes: 0 success, 1 probe failure, 2 usage/config error."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.store.errors import SchemaTooNew, SecretKeyError

# Each command imports what it needs when it runs: `monitor probe` should not pay for
# the database, HTTP and DNS stacks of the others (start-up time is most of a CLI run).

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
CONFIG_HELP = "config file (default: $MONITOR_CONFIG or config/monitor.yaml)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    probe = commands.add_parser("probe", help="run one probe now and print every step")
    probe.add_argument("name", help="provider name from the config")
    probe.add_argument("--config", type=Path, default=None, help=CONFIG_HELP)
    probe.add_argument("--json", action="store_true", help="print the result as JSON")

    config = commands.add_parser("config", help="config file tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser("validate", help="check a config file and exit")
    validate.add_argument("file", nargs="?", type=Path, default=None)

    serve = commands.add_parser("serve", help="run the scheduler, outbox and HTTP API")
    serve.add_argument("--config", type=Path, default=None, help=CONFIG_HELP)

    events = commands.add_parser("events", help="print recent events from the database")
    events.add_argument("--provider", default=None)
    events.add_argument("--type", dest="types", action="append", default=[],
                        help="event type (repeatable)")
    events.add_argument("--limit", type=int, default=20)
    events.add_argument("--json", action="store_true")

    status = commands.add_parser("status", help="print each provider's current state")
    status.add_argument("--json", action="store_true")

    _add_webhook_verify(commands)
    _add_check(commands)

    demo = commands.add_parser("demo", help="run everything locally against a built-in sandbox")
    demo.add_argument("--once", action="store_true",
                      help="stop after one failure-and-recovery cycle")
    demo.add_argument("--interval", type=_interval, default=2.0,
                      help="seconds between probes (at least 1)")
    return parser


def _add_webhook_verify(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhook = commands.add_parser("webhook", help="tools for webhook receivers")
    sub = webhook.add_subparsers(dest="webhook_command", required=True)
    p = sub.add_parser(
        "verify", help="check a webhook's signature (exit 0 valid, 1 invalid)",
        description="Verify a received Standard Webhooks request: the secret(s), the three "
                    "webhook-* headers and the exact body. Exit 0 valid, 1 invalid, 2 usage.")
    p.add_argument("--secret", action="append", default=[],
                   help="whsec_ secret; repeat during a rotation "
                        "(default: $MONITOR_WEBHOOK_SECRET)")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="a received header; repeat for each")
    p.add_argument("--headers-file", type=Path, help="file of 'name: value' lines")
    p.add_argument("--body-file", type=Path, help="the raw body (default: standard input)")
    p.add_argument("--tolerance", type=float, default=300.0, metavar="SECONDS",
                   help="accepted clock difference for webhook-timestamp (default 300)")


def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "check", help="pre-campaign check: send to seed mailboxes, check DNS, give a verdict",
        description="A pre-campaign check from the command line, no server needed: one "
                    "tagged message per seed mailbox through the provider, the wait for each, "
                    "the sender domain's MX/SPF/DMARC, and a verdict. Exit 0 passed, "
                    "1 failed, 2 usage or config error.")
    p.add_argument("--provider", required=True, help="provider name from the config")
    p.add_argument("--from", dest="sender", required=True, metavar="ADDRESS",
                   help="the campaign's sender address (its domain's DNS is checked)")
    p.add_argument("--seed", dest="seeds", action="append", required=True, metavar="MAILBOX",
                   help="a configured mailbox name; repeat for each seed")
    p.add_argument("--subject", default=None, help="the campaign's subject")
    p.add_argument("--text-file", type=Path, default=None, help="plain-text body (UTF-8)")
    p.add_argument("--html-file", type=Path, default=None, help="HTML body (UTF-8)")
    p.add_argument("--config", type=Path, default=None, help=CONFIG_HELP)
    p.add_argument("--dns-server", default=None, metavar="IP[:PORT]",
                   help="resolver for the sender domain's DNS (default: settings.dns_server "
                        "from the config, else the system's)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 1 <= value <= 3600:  # the config's bounds for a provider's interval
        raise argparse.ArgumentTypeError("must be between 1 and 3600 seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from monitor.config import ConfigError

    try:
        return _run(args)
    except (ConfigError, SchemaTooNew, SecretKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    if args.command == "probe":
        from monitor.probe_command import probe_command

        return probe_command(args.name, args.config, as_json=args.json)
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
        from monitor.webhooks import verify_cli

        return verify_cli.run(args)
    if args.command == "check":
        from monitor.checks import cli as check_cli

        return check_cli.run(args)
    if args.command == "demo":
        from monitor.demo import main as demo_main

        return demo_main(once=args.once, interval=args.interval)
    return EXIT_USAGE


def _validate(path: Path | None) -> int:
    from monitor.config import default_config_path, load_config

    config = load_config(path)
    source = path or default_config_path()
    print(f"{source}: OK ({len(config.providers)} providers, {len(config.mailboxes)} mailboxes, "
          f"{len(config.subscriptions)} subscriptions)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
