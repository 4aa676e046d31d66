"""`monitor check`: a pre-campaign check from the command line, no server needed.

    monitor check --provider sendgrid-relay --from news@example.com \\
        --seed seed-gmail --seed seed-outlook --subject "May newsletter" \\
        --html-file may.html [--text-file may.txt] [--dns-server 127.0.0.1:5353] [--json]

A progress bar goes to stderr, the report (or its JSON with --json) to stdout.
Exit 0 passed, 1 failed, 2 usage or config error (and an unfinished check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from monitor.cli.command import Commands, ExitCode, UsageError, add_config_option

if TYPE_CHECKING:
    from pydantic import ValidationError


def register(commands: Commands[argparse.ArgumentParser]) -> None:
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
    add_config_option(p)
    p.add_argument("--dns-server", default=None, metavar="IP[:PORT]",
                   help="resolver for the sender domain's DNS (default: settings.dns_server "
                        "from the config, else the system's)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def _dns_server(value: str) -> tuple[str, int]:
    from monitor.config.models import parse_nameserver

    try:
        return parse_nameserver(value)  # the one parser, shared with settings.dns_server
    except ValueError as exc:
        raise UsageError(f"--dns-server {value!r}: {exc}") from None


def _read(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None


def _validation_message(exc: ValidationError) -> str:
    names = {"sender": "--from", "from": "--from", "seeds": "--seed", "text": "--text-file",
             "html": "--html-file"}
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "request"
        lines.append(f"{names.get(field, '--' + field)}: {error['msg']}")
    return "; ".join(lines)


class ProgressPrinter:
    """A bar redrawn in place on a terminal; one line per change otherwise (logs, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""

    async def __call__(self, report: Any) -> None:
        from monitor.cli.render_check import progress_bar

        line = progress_bar(report.progress)
        if line == self.last:
            return
        self.last = line
        self.stream.write(f"\r{line}" if self.tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> ExitCode:
    import asyncio

    from pydantic import ValidationError

    from monitor.checks.errors import CheckError
    from monitor.checks.model import CheckRequest, CheckStatus, Verdict
    from monitor.checks.runner import new_check_id, resolve, run_check
    from monitor.cli.render_check import render_report
    from monitor.cli.terminal import terminal_safe
    from monitor.config import load_config

    try:
        nameserver = _dns_server(args.dns_server) if args.dns_server else None
        request = CheckRequest.model_validate({
            "provider": args.provider, "from": args.sender, "seeds": args.seeds,
            "subject": args.subject, "text": _read(args.text_file, "--text-file"),
            "html": _read(args.html_file, "--html-file")})
        config = load_config(args.config)  # a ConfigError is `main`'s to print (exit 2)
        resolve(config, request)
        if nameserver is None:  # as the API does: the config's, else the system's
            nameserver = config.settings.dns_nameserver()
    except ValidationError as exc:
        raise UsageError(_validation_message(exc)) from None
    except CheckError as exc:
        raise UsageError(f"{config.source or 'config'}: {exc.message}") from None

    printer = ProgressPrinter(sys.stderr)
    try:
        report = asyncio.run(run_check(config, request, check_id=new_check_id(),
                                       dns_nameserver=nameserver, on_progress=printer))
    finally:
        printer.close()
    # The report quotes SMTP replies and DNS records: server text.
    print(report.model_dump_json(indent=2, by_alias=True) if args.json
          else terminal_safe(render_report(report)))
    if report.status is not CheckStatus.DONE:
        return ExitCode.USAGE
    return ExitCode.OK if report.verdict is Verdict.PASSED else ExitCode.FAILED
