"""`monitor posture DOMAIN`: the sending domain's posture findings, no server needed.

    monitor posture example.com [--config F] [--dns-server IP[:PORT]]
        [--message seed.eml] [--ip 192.0.2.1] [--json]

Readable (grouped by severity, each finding with its explanation and record) or
JSON (a list of {"id", "severity", "message", "record"}). Exit 0 with no error
finding, 1 with an error or a block listing, 2 for usage or config errors.
Without --config and without a config file at the default path, the defaults
apply (system resolver, Spamhaus zones).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.command import Commands, ExitCode, UsageError, add_config_option

if TYPE_CHECKING:
    from monitor.config import Config


def register(commands: Commands[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "posture", help="sending-domain posture: SPF, DMARC, DKIM, MTA-STS, DANE, DNSBL...",
        description="Findings about a sending domain: SPF limits, DMARC, MTA-STS, TLS-RPT, "
                    "DANE, block listings, BIMI; with --message, DKIM as received and the "
                    "sending IP's listings and reverse DNS. Exit 0 no error finding, 1 an "
                    "error or a listing, 2 usage or config error.")
    p.add_argument("domain", metavar="DOMAIN", help="the sending domain, e.g. example.com")
    add_config_option(p)
    p.add_argument("--dns-server", default=None, metavar="IP[:PORT]",
                   help="resolver for every lookup (default: settings.dns_server, else the "
                        "system's)")
    p.add_argument("--message", type=Path, default=None, metavar="FILE",
                   help="a message received from the domain (raw, .eml): DKIM is verified on "
                        "it and the sending IP taken from its Received headers")
    p.add_argument("--ip", default=None, help="the sending IP (default: from --message)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(run=run)


def _config(path: Path | None) -> Config:
    from monitor.config import Config, default_config_path, load_config

    if path is None and not default_config_path().is_file():
        return Config()
    return load_config(path)  # a ConfigError is `main`'s to print (exit 2)


def run(args: argparse.Namespace) -> ExitCode:
    import asyncio
    import ipaddress
    import json

    from monitor.cli.check import _dns_server
    from monitor.cli.render_posture import render_posture
    from monitor.cli.terminal import terminal_safe
    from monitor.config.models import domain_name
    from monitor.posture.assess import Evidence, PostureOptions, assess
    from monitor.posture.resolver import Resolver

    try:
        domain = domain_name(args.domain)
    except ValueError as exc:
        raise UsageError(f"DOMAIN {args.domain!r}: {exc}") from None
    if args.ip is not None:
        try:
            ipaddress.ip_address(args.ip)
        except ValueError:
            raise UsageError(f"--ip {args.ip!r}: not an IP address") from None
    message = None
    if args.message is not None:
        try:
            message = args.message.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read --message {args.message}: {exc}") from None
    nameserver = _dns_server(args.dns_server) if args.dns_server else None
    config = _config(args.config)
    settings = config.settings
    options = PostureOptions(ip_zones=settings.dnsbl_zones,
                             domain_zones=settings.dnsbl_domain_zones)
    resolver = Resolver(nameserver or settings.dns_nameserver())
    report = asyncio.run(assess(domain, resolver, options,
                                Evidence(message=message, sending_ip=args.ip)))
    if args.json:
        print(json.dumps([f.model_dump(mode="json", include={"id", "severity", "message",
                                                            "record"})
                          for f in report.findings], indent=2))
    else:  # findings quote DNS records and policy files: remote text
        print(terminal_safe(render_posture(report, resolver.nameserver)))
    return ExitCode.FAILED if report.failed else ExitCode.OK
