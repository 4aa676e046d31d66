"""The sender domain's DNS: MX, SPF and DMARC records, looked up with dnspython.

`lookup_domain` never raises: NXDOMAIN, an empty answer, SERVFAIL and timeouts
become data in the report (`error` on the section whose lookup failed, or
`present: false`). dnspython's exceptions are translated here, once.

The resolver is the system's (/etc/resolv.conf) unless a nameserver (ip, port)
is given; each attempt waits `attempt_timeout` seconds and all attempts of one lookup
at most `lifetime`, so a check's DNS part is bounded by `lifetime`: the three
lookups run concurrently.

DMARC is looked up at `_dmarc.<domain>` only, and the report says so when the
record is missing; the posture findings beside it (monitor/posture/dmarc.py)
follow the fallback to the organizational domain (RFC 7489 §6.6.3).
"""

from __future__ import annotations

import asyncio
import time

import dns.resolver
from dns.rdtypes.ANY.MX import MX

from monitor.checks.model import DmarcReport, DnsReport, MxHost, MxReport, SpfReport
from monitor.lookups import (
    DEFAULT_LIFETIME,
    DEFAULT_TIMEOUT,
    Lookup,
    lookup,
    make_resolver,
    short,
    txt_strings,
)
from monitor.posture.records import is_dmarc, is_spf, parse_dmarc, parse_spf

__all__ = ["DEFAULT_LIFETIME", "DEFAULT_TIMEOUT", "Lookup", "lookup", "lookup_domain",
           "make_resolver", "txt_strings"]

async def lookup_domain(domain: str, *, nameserver: tuple[str, int] | None = None,
                       attempt_timeout: float = DEFAULT_TIMEOUT,
                       lifetime: float = DEFAULT_LIFETIME) -> DnsReport:
    """MX, SPF and DMARC of `domain`, looked up concurrently; never raises."""
    started = time.perf_counter()
    where = f"{nameserver[0]}:{nameserver[1]}" if nameserver else None
    dmarc_name = f"_dmarc.{domain}"
    try:
        resolver = make_resolver(nameserver, timeout=attempt_timeout, lifetime=lifetime)
    except (dns.resolver.NoResolverConfiguration, OSError) as exc:
        error = f"no DNS resolver configured: {short(exc)}"
        return DnsReport(domain=domain, nameserver=where, mx=MxReport(error=error),
                         spf=SpfReport(error=error), dmarc=DmarcReport(name=dmarc_name,
                                                                       error=error))
    mx, txt, dmarc = await asyncio.gather(
        lookup(resolver, domain, "MX"), lookup(resolver, domain, "TXT"),
        lookup(resolver, dmarc_name, "TXT"))
    notes: list[str] = []
    dmarc_report = dmarc_section(dmarc_name, dmarc)
    if not dmarc_report.present and dmarc_report.error is None:
        notes.append("DMARC was looked up at the domain only; the organizational-domain "
                     "fallback (RFC 7489 §6.6.3) is not checked")
    return DnsReport(domain=domain, nameserver=where, mx=mx_section(mx), spf=spf_section(txt),
                     dmarc=dmarc_report, notes=notes,
                     duration_ms=round((time.perf_counter() - started) * 1000, 1))


def mx_section(found: Lookup) -> MxReport:
    if found.error is not None:
        return MxReport(error=found.error)
    hosts = sorted((MxHost(preference=r.preference, exchange=r.exchange.to_text())
                    for r in found.records if isinstance(r, MX)),
                   key=lambda h: (h.preference, h.exchange))
    # RFC 7505: a single "0 ." says the domain accepts no mail at all.
    null_mx = len(hosts) == 1 and hosts[0].exchange == "."
    return MxReport(present=bool(hosts) and not null_mx, hosts=hosts, null_mx=null_mx)


def spf_section(found: Lookup) -> SpfReport:
    if found.error is not None:
        return SpfReport(error=found.error)
    records = [text for text in map(txt_strings, found.records) if is_spf(text)]
    if not records:
        return SpfReport()
    if len(records) > 1:
        # RFC 7208 §4.5: more than one record is a permerror; receivers use neither.
        return SpfReport(present=True, records=records,
                         error=f"{len(records)} SPF records (RFC 7208 §4.5: permerror)")
    parsed = parse_spf(records[0])
    return SpfReport(present=True, record=records[0], records=records, parseable=parsed.ok,
                     all_qualifier=parsed.all_qualifier, dns_lookup_terms=parsed.lookup_terms,
                     error=parsed.error)


def dmarc_section(name: str, found: Lookup) -> DmarcReport:
    if found.error is not None:
        return DmarcReport(name=name, error=found.error)
    records = [text for text in map(txt_strings, found.records) if is_dmarc(text)]
    if not records:
        return DmarcReport(name=name)
    if len(records) > 1:
        # RFC 7489 §6.6.3: several records means no DMARC policy applies.
        return DmarcReport(name=name, present=True, record=records[0],
                           error=f"{len(records)} DMARC records: receivers apply none")
    parsed = parse_dmarc(records[0])
    return DmarcReport(name=name, present=True, record=records[0], valid=parsed.valid,
                       policy=parsed.policy, subdomain_policy=parsed.subdomain_policy,
                       pct=parsed.pct, rua=list(parsed.rua), error=parsed.error)


def spf_warnings(report: SpfReport) -> list[str]:
    """Warnings about a parseable SPF record (unknown modifiers, +all, lookups)."""
    if report.record is None or not report.parseable:
        return []
    warnings = list(parse_spf(report.record).warnings)
    if report.all_qualifier == "+":
        warnings.append("SPF ends in +all: any host on the internet passes SPF")
    if report.dns_lookup_terms > 10:
        warnings.append(f"SPF has {report.dns_lookup_terms} DNS-lookup terms at the top "
                        "level (RFC 7208 §4.6.4 limit: 10): a permerror for receivers")
    return warnings
