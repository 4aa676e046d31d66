"""DMARC findings (RFC 7489): the policy that applies to a domain's mail, and its tags.

The record is looked up at `_dmarc.<domain>` and, when there is none, at the
organizational domain (§6.6.3), found with the Public Suffix List that the
publicsuffixlist package ships (no download at run time). There, `sp=` (else
`p=`) is the policy for the subdomain.
"""

from __future__ import annotations

from functools import cache

from publicsuffixlist import PublicSuffixList

from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.records import is_dmarc, parse_dmarc
from monitor.posture.resolver import Resolver

ALIGNMENT_MODES = ("r", "s")


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # parses the bundled list once (a few hundred ms)


def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label (`mail.example.co.uk` →
    `example.co.uk`); the domain itself when it is a public suffix."""
    return _suffixes().privatesuffix(domain.lower().rstrip(".")) or domain.lower()


async def check(domain: str, resolver: Resolver) -> list[Finding]:
    name = f"_dmarc.{domain}"
    records, failed = await _records(resolver, name)
    if failed is not None:
        return [_lookup_failed(name, failed)]
    org = organizational_domain(domain)
    fallback = False
    if not records and org != domain:
        name = f"_dmarc.{org}"
        records, failed = await _records(resolver, name)
        if failed is not None:
            return [_lookup_failed(name, failed)]
        fallback = bool(records)
    if not records:
        also = f" nor at _dmarc.{org}" if org != domain else ""
        return [error(
            "dmarc.missing",
            f"{domain} has no DMARC record at _dmarc.{domain}{also}: receivers apply no "
            "policy to forged mail and bulk senders without one are rejected by Gmail and "
            f"Yahoo. Fix it: publish \"v=DMARC1; p=none; rua=mailto:dmarc@{org}\" at "
            f"_dmarc.{org}, then move to p=quarantine or p=reject.")]
    if len(records) > 1:
        return [error(
            "dmarc.multiple",
            f"{name} has {len(records)} DMARC records: receivers apply none of them "
            "(RFC 7489 §6.6.3). Fix it: keep one.", " | ".join(records))]
    return _tags(domain, name, records[0], fallback)


async def _records(resolver: Resolver, name: str) -> tuple[list[str], str | None]:
    strings, found = await resolver.txt(name)
    return [s for s in strings if is_dmarc(s)], found.error


def _lookup_failed(name: str, why: str) -> Finding:
    return warning(
        "dmarc.lookup_failed",
        f"The DMARC lookup at {name} failed ({why}): receivers seeing the same apply no "
        "policy. Usually transient: wait and check again; if it persists, fix the "
        "domain's name servers.")


def _tags(domain: str, name: str, record: str, fallback: bool) -> list[Finding]:
    parsed = parse_dmarc(record)
    bad_mode = next((f"{tag}={parsed.tags[tag]}" for tag in ("adkim", "aspf")
                     if parsed.tags.get(tag, "r").lower() not in ALIGNMENT_MODES), None)
    if not parsed.valid or bad_mode:
        why = parsed.error or f"{bad_mode} is not r or s"
        return [error(
            "dmarc.invalid",
            f"The DMARC record at {name} is not valid: {why}. Receivers may ignore it and "
            "apply no policy. Fix the record (RFC 7489 §6.3).", record)]
    findings: list[Finding] = []
    policy = parsed.policy
    if fallback:
        policy = parsed.subdomain_policy or parsed.policy
        findings.append(info(
            "dmarc.org_fallback",
            f"{domain} has no DMARC record of its own; the organizational domain's at {name} "
            f"applies to it, with {'sp' if parsed.subdomain_policy else 'p'}={policy} "
            "(RFC 7489 §6.6.3). Nothing to change unless the subdomain needs its own "
            "policy.", record))
    if policy == "none":
        findings.append(warning(
            "dmarc.policy_none",
            f"DMARC for {domain} is p=none: monitoring only, so forged mail is delivered as "
            "usual. Fix it once the aggregate reports show all your senders aligned: move "
            f"to p=quarantine, then p=reject, at {name}.", record))
    elif not fallback and parsed.subdomain_policy == "none":
        findings.append(warning(
            "dmarc.subdomain_policy_none",
            f"DMARC at {name} is p={policy} but sp=none: mail forged from any subdomain of "
            f"{domain} is delivered as usual. Fix it: remove sp= or set it to quarantine "
            "or reject.", record))
    if parsed.pct is not None and parsed.pct < 100 and policy != "none":
        findings.append(warning(
            "dmarc.pct_partial",
            f"DMARC at {name} has pct={parsed.pct}: p={policy} applies to {parsed.pct}% of "
            "failing mail, the rest gets the next weaker policy. Fix it when the reports "
            "are clean: raise pct to 100 or remove it.", record))
    if not parsed.rua:
        findings.append(warning(
            "dmarc.rua_missing",
            f"DMARC at {name} has no rua=: nobody receives the aggregate reports that show "
            "which servers send as the domain and whether they align. Fix it: add "
            f"rua=mailto:<a mailbox you read> to {name}.", record))
    strict = [t for t in ("adkim", "aspf") if parsed.tags.get(t, "r").lower() == "s"]
    if strict:
        findings.append(info(
            "dmarc.strict_alignment",
            f"DMARC at {name} sets {' and '.join(t + '=s' for t in strict)}: a provider "
            "that signs or bounces with a subdomain (em.example.com) does not align. "
            "Nothing to change if the seeds pass DMARC.", record))
    if not any(f.severity.value != "info" for f in findings):
        findings.append(info(
            "dmarc.ok", f"DMARC for {domain} is p={policy}"
            f"{'' if parsed.pct in (None, 100) else f' pct={parsed.pct}'}, with aggregate "
            "reports. Nothing to change.", record))
    return findings
