"""DNSBL findings: the sending IP and the domain against configured block lists.

A listing is an A record in 127.0.0.0/8 at `<reversed ip>.<zone>` (RFC 5782 §2)
or `<domain>.<zone>`. Spamhaus answers 127.255.255.252-255 when it refuses the
query (a public resolver, over quota, a typo): that says nothing about the IP,
so it is "unknown", never "listed"; so is any answer outside 127/8 (a resolver
that rewrites NXDOMAIN). Our own few lines rather than pydnsbl/aiodnsbl: those
resolve through aiodns with the system's servers, and every posture lookup must
go through settings.dns_server.
"""

from __future__ import annotations

import asyncio
import ipaddress

from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.resolver import Resolver

LISTED = ipaddress.ip_network("127.0.0.0/8")
REFUSED = ipaddress.ip_network("127.255.255.252/30")  # Spamhaus's error answers


def query_name(target: str, zone: str) -> str:
    """`2.0.0.127.zone` for an IPv4 address, nibbles for IPv6 (RFC 5782 §2.4), the
    domain itself before the zone otherwise."""
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        return f"{target.rstrip('.')}.{zone}"
    return ip.reverse_pointer.rsplit(".", 2)[0] + f".{zone}"


async def check(targets: list[str], zones: list[str], resolver: Resolver) -> list[Finding]:
    """Each target (IPs against IP zones, domains against domain zones, as given)."""
    results = await asyncio.gather(*(_one(t, z, resolver) for t in targets for z in zones))
    findings = [f for f in results if f is not None]
    if targets and zones and not findings:
        findings.append(info("dnsbl.not_listed",
                             f"{', '.join(targets)}: not listed in {', '.join(zones)}. "
                             "Nothing to change."))
    return findings


async def _one(target: str, zone: str, resolver: Resolver) -> Finding | None:
    name = query_name(target, zone)
    found = await resolver.query(name, "A")
    subject = f"{target} {zone}"
    if found.error is not None:
        return warning("dnsbl.unknown",
                       f"Whether {target} is listed in {zone} is unknown: the lookup failed "
                       f"({found.error}). Wait and check again.", subject=subject)
    if not found.records:
        return None
    answers = [ipaddress.ip_address(str(r)) for r in found.records]
    record = f"{name} A {', '.join(map(str, answers))}"
    if any(a in REFUSED for a in answers) or not all(a in LISTED for a in answers):
        return warning(
            "dnsbl.unknown",
            f"{zone} refused to say whether {target} is listed (it answered "
            f"{', '.join(map(str, answers))}: for Spamhaus, a query through a public resolver "
            "or over the free quota). Not a listing. Fix it: query through your own "
            "resolver (settings.dns_server) or a data-feed key.", record, subject)
    reasons, _ = await resolver.txt(name)
    if reasons:
        record += f"; TXT {' | '.join(reasons)}"
    return error(
        "dnsbl.listed",
        f"{target} is listed in {zone} ({', '.join(map(str, answers))}): receivers using it "
        "reject or junk mail from it. Fix it: stop what got it listed (a compromised "
        "account, a bad list), then request delisting at the list's site; waiting works "
        "for some lists, not for all.", record, subject)
