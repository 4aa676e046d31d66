"""One posture run for a domain: every family's findings, gathered concurrently.

What is checked depends on what there is to go on. DNS alone gives SPF, DMARC,
MTA-STS, TLS-RPT, DANE on the MX hosts, BIMI and the domain's DNSBL listings;
an arrived seed message (`Evidence.message`) adds DKIM as received and the
sending IP's listings and reverse DNS; a probe's TLS result (`Evidence.probed`)
adds DANE matched against the certificate it saw.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from dns.rdtypes.ANY.MX import MX
from pydantic import BaseModel, ConfigDict, Field

from monitor.config.models import Settings
from monitor.posture import bimi, dane, dkim, dmarc, dnsbl, mta_sts, rdns, spf, tls_rpt
from monitor.posture.finding import Finding, Severity, by_severity, info, warning
from monitor.posture.received import sending_ip
from monitor.posture.resolver import Resolver

log = logging.getLogger("monitor.posture")

MAX_MX_HOSTS = 5  # DANE per MX host: the first few by preference are where mail goes
SMTP_PORT = 25
# DMARC findings that mean the policy is not enforced on all mail (BIMI needs it).
_NOT_ENFORCED = frozenset({"dmarc.missing", "dmarc.invalid", "dmarc.multiple",
                           "dmarc.policy_none", "dmarc.pct_partial", "dmarc.lookup_failed"})


@dataclass(frozen=True)
class PostureOptions:
    ip_zones: tuple[str, ...] = ()  # DNSBLs for the sending IP (settings.dnsbl_zones)
    domain_zones: tuple[str, ...] = ()  # for the domain (settings.dnsbl_domain_zones)
    mta_sts: mta_sts.PolicyFetch = field(default_factory=mta_sts.PolicyFetch)

    @classmethod
    def from_settings(cls, settings: Settings) -> PostureOptions:
        return cls(ip_zones=settings.dnsbl_zones, domain_zones=settings.dnsbl_domain_zones)


@dataclass(frozen=True)
class Evidence:
    message: bytes | None = None  # an arrived seed message, raw
    sending_ip: str | None = None  # given; else taken from the message's Received chain
    probed: tuple[dane.Seen, ...] = ()


class PostureReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str
    findings: list[Finding] = Field(default_factory=list)  # errors first
    sending_ip: str | None = None
    queries: int = 0
    duration_ms: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def listed(self) -> bool:
        return any(f.id == "dnsbl.listed" for f in self.findings)

    @property
    def failed(self) -> bool:
        """An error finding (a listing is one): the verdict of a check fails on it."""
        return bool(self.errors) or self.listed


async def assess(domain: str, resolver: Resolver, options: PostureOptions | None = None,
                 evidence: Evidence | None = None) -> PostureReport:
    started = time.perf_counter()
    domain = domain.lower().rstrip(".")
    options, evidence = options or PostureOptions(), evidence or Evidence()
    mx_hosts = await _mx_hosts(domain, resolver)
    ip = evidence.sending_ip
    private: str | None = None
    if ip is None and evidence.message is not None:
        sender = sending_ip(evidence.message)
        ip, private = (sender.ip, None) if sender.public else (None, sender.ip)
    jobs: list[Awaitable[list[Finding]]] = [
        spf.check(domain, resolver), dmarc.check(domain, resolver),
        tls_rpt.check(domain, resolver),
        mta_sts.check(domain, resolver, mx_hosts, options.mta_sts),
        *(dane.check_host(h, SMTP_PORT, resolver) for h in mx_hosts[:MAX_MX_HOSTS]),
        *(dane.check_host(s.host, s.port, resolver, s) for s in evidence.probed),
        dnsbl.check([domain], list(options.domain_zones), resolver),
    ]
    if ip is not None:
        jobs += [dnsbl.check([ip], list(options.ip_zones), resolver), rdns.check(ip, resolver)]
    if evidence.message is not None:
        jobs.append(dkim.check(evidence.message, resolver))
    findings = [f for found in await asyncio.gather(*map(_guarded, jobs)) for f in found]
    enforced = not any(f.id in _NOT_ENFORCED for f in findings)
    findings += await bimi.check(domain, resolver, dmarc_enforced=enforced)
    if private is not None:
        findings.append(info(
            "rdns.private_ip",
            f"The seed message reached the mailbox from {private}, a private address (the "
            "provider and the mailbox share a network), so its reverse DNS and block listings "
            "say nothing about what other receivers see; they were not checked. Nothing to "
            "change; pass --ip to check the provider's public address.",
            subject=private))
    if evidence.message is None:
        findings.append(info(
            "dkim.not_checked",
            f"No seed message from {domain} was at hand, so DKIM, the sending IP's block "
            "listings and its reverse DNS were not checked. Run a pre-campaign check, or pass "
            "--message with a message received from the provider."))
    return PostureReport(domain=domain, findings=by_severity(_unique(findings)),
                         sending_ip=ip or private,
                         queries=resolver.queries,
                         duration_ms=round((time.perf_counter() - started) * 1000, 1))


async def _guarded(job: Awaitable[list[Finding]]) -> list[Finding]:
    """A family's checks, and if they fail on remote data we did not expect, a finding
    saying so rather than no posture (or no check report) at all."""
    try:
        return await job
    except Exception as exc:
        log.exception("posture check failed")
        return [warning("posture.check_failed",
                        f"A posture check failed inside Delivery Monitor ({type(exc).__name__}: "
                        f"{exc}); the other findings stand. This is a bug to report, not a "
                        "problem with the domain.")]


async def _mx_hosts(domain: str, resolver: Resolver) -> list[str]:
    found = await resolver.query(domain, "MX")
    mxs = sorted((r for r in found.records if isinstance(r, MX)),
                 key=lambda r: (r.preference, r.exchange.to_text()))
    hosts = [r.exchange.to_text().rstrip(".").lower() for r in mxs]
    return [h for h in hosts if h]  # a null MX "." names no host


def _unique(findings: list[Finding]) -> list[Finding]:
    """One finding per (id, subject): the same MX host probed and listed, say."""
    seen: dict[tuple[str, str], Finding] = {}
    for finding in findings:
        current = seen.get(finding.key)
        if current is None or finding.severity.rank < current.severity.rank:
            seen[finding.key] = finding
    return list(seen.values())
