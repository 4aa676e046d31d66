"""`monitor check`: a pre-campaign check from the command line, no server needed.

    monitor check --provider sendgrid-relay --from news@example.com \\
        --seed seed-gmail --seed seed-outlook --subject "May newsletter" \\
        --html-file may.html [--text-file may.txt] [--dns-server 127.0.0.1:5353] [--json]

A progress bar goes to stderr, the report (or its JSON with --json) to stdout.
Exit 0 passed, 1 failed, 2 usage or config error (and an unfinished check).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from monitor.config.models import parse_nameserver

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _dns_server(value: str) -> tuple[str, int]:
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
        from monitor.checks.render import progress_bar

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


def run(args: argparse.Namespace) -> int:
    from monitor.checks.errors import CheckError
    from monitor.checks.model import CheckRequest, CheckStatus, Verdict
    from monitor.checks.render import render_report
    from monitor.checks.runner import new_check_id, resolve, run_check
    from monitor.config import ConfigError, load_config

    try:
        nameserver = _dns_server(args.dns_server) if args.dns_server else None
        request = CheckRequest.model_validate({
            "provider": args.provider, "from": args.sender, "seeds": args.seeds,
            "subject": args.subject, "text": _read(args.text_file, "--text-file"),
            "html": _read(args.html_file, "--html-file")})
        config = load_config(args.config)
        resolve(config, request)
        if nameserver is None:  # as the API does: the config's, else the system's
            nameserver = config.settings.dns_nameserver()
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"error: {_validation_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except CheckError as exc:
        print(f"error: {config.source or 'config'}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE

    printer = ProgressPrinter(sys.stderr)
    try:
        report = asyncio.run(run_check(config, request, check_id=new_check_id(),
                                       dns_nameserver=nameserver, on_progress=printer))
    finally:
        printer.close()
    print(report.model_dump_json(indent=2, by_alias=True) if args.json
          else render_report(report))
    if report.status is not CheckStatus.DONE:
        return EXIT_USAGE
    return EXIT_PASSED if report.verdict is Verdict.PASSED else EXIT_FAILED
