"""`monitor webhook verify`: check a received webhook's Standard Webhooks signature.

    monitor webhook verify --secret whsec_... \\
        --header 'webhook-id: 0193…' --header 'webhook-timestamp: 1767225600' \\
        --header 'webhook-signature: v1,…' < body.json
    monitor webhook verify --headers-file headers.txt --body-file body.json   # secret from
                                                         # $MONITOR_WEBHOOK_SECRET

`--headers-file` takes `name: value` lines as `curl -D` or a proxy log writes them (a
request or status line is skipped). The body is read as raw bytes, never re-encoded:
the signature covers the exact bytes. Exit 0 valid, 1 invalid, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from monitor.cli.command import Commands, ExitCode, UsageError

SECRET_ENV = "MONITOR_WEBHOOK_SECRET"
# "POST /hooks HTTP/1.1" or "HTTP/1.1 200 OK": the start line of a dump, not a header.
_START_LINE = re.compile(r"^(?:[A-Z]+ \S+ HTTP/\S+|HTTP/\S+ \d{3}\b.*)$")


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    webhook = commands.add_parser("webhook", help="tools for webhook receivers")
    sub = webhook.add_subparsers(dest="webhook_command", required=True)
    p = sub.add_parser(
        "verify", help="check a webhook's signature (exit 0 valid, 1 invalid)",
        description="Verify a received Standard Webhooks request: the secret(s), the three "
                    "webhook-* headers and the exact body. Exit 0 valid, 1 invalid, 2 usage.")
    p.add_argument("--secret", action="append", default=[],
                   help="whsec_ secret; repeat during a rotation "
                        f"(default: ${SECRET_ENV})")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="a received header; repeat for each")
    p.add_argument("--headers-file", type=Path, help="file of 'name: value' lines")
    p.add_argument("--body-file", type=Path, help="the raw body (default: standard input)")
    p.add_argument("--tolerance", type=float, default=300.0, metavar="SECONDS",
                   help="accepted clock difference for webhook-timestamp (default 300)")
    p.set_defaults(run=run_verify)


def parse_header_lines(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        if not line or _START_LINE.match(line):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise UsageError(f"not a 'name: value' header: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def run_verify(args: argparse.Namespace) -> ExitCode:
    from datetime import timedelta

    from monitor.cli.terminal import terminal_safe
    from monitor.webhooks.errors import SignatureError
    from monitor.webhooks.signing import verify

    secrets = list(args.secret) or ([os.environ[SECRET_ENV]] if os.environ.get(SECRET_ENV)
                                    else [])
    if not secrets:
        raise UsageError(f"no secret: pass --secret or set {SECRET_ENV}")
    lines = list(args.header)
    if args.headers_file is not None:
        lines += _read(args.headers_file).decode("utf-8", "replace").splitlines()
    headers = parse_header_lines(lines)
    if args.tolerance < 0:
        raise UsageError("--tolerance must not be negative")
    body = _read(args.body_file) if args.body_file else sys.stdin.buffer.read()
    try:
        verify(body, headers, secrets, tolerance=timedelta(seconds=args.tolerance))
    except SignatureError as exc:
        print(terminal_safe(f"invalid: {exc.message}"), file=sys.stderr)
        return ExitCode.FAILED
    except ValueError as exc:  # a malformed secret: the caller's input, not the webhook's
        raise UsageError(str(exc)) from None
    # The headers came from whoever sent the webhook.
    print(terminal_safe(f"valid: webhook-id {headers['webhook-id']}, {len(body)} bytes"))
    return ExitCode.OK
