"""The verdict of a check: a pure function of its seeds and its DNS report.

Failed when any seed was not accepted, did not arrive (or arrived after its
deadline), landed in junk, or its mailbox could not be checked; or when the
sender domain has no MX, no SPF record, several or unparseable SPF records,
or no valid DMARC record, or a lookup for them failed. Each reason is one
line naming the seed or the DNS name it is about. With a posture report, every
`error` finding (a DNSBL listing is one) fails it too, as `<id>: <explanation>`;
the ones the DNS report already gives as reasons (no SPF, no DMARC...) once.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.checks.dns import spf_warnings
from monitor.checks.model import DnsReport, SeedReport, Verdict
from monitor.posture.assess import PostureReport
from monitor.receive.result import Placement, ReceiveStatus


def decide(seeds: Sequence[SeedReport], dns: DnsReport | None,
           posture: PostureReport | None = None) -> tuple[Verdict, list[str], list[str]]:
    """(verdict, reasons, warnings); posture warnings stay in its own section."""
    reasons = [r for seed in seeds if (r := seed_reason(seed)) is not None]
    if posture is not None:
        reasons += posture_reasons(posture)
    warnings: list[str] = []
    if dns is None:
        reasons.append("the sender domain's DNS was not checked")
    else:
        reasons += dns_reasons(dns)
        warnings += dns_warnings(dns)
    warnings += [f"{s.mailbox}: filed in folder {s.folder!r}, not the inbox"
                 for s in seeds if s.placement is Placement.OTHER]
    return (Verdict.FAILED if reasons else Verdict.PASSED), reasons, warnings


# Posture findings that say what a DNS reason already says.
_SAID_BY_DNS = frozenset({"spf.missing", "spf.multiple", "spf.syntax", "dmarc.missing",
                          "dmarc.invalid", "dmarc.multiple"})


def posture_reasons(posture: PostureReport) -> list[str]:
    return [f"{f.id}{f' ({f.subject})' if f.subject else ''}: {f.message}"
            for f in posture.errors if f.id not in _SAID_BY_DNS]


def seed_reason(seed: SeedReport) -> str | None:
    name = seed.mailbox
    if not seed.accepted:
        failed = next((s for s in seed.smtp if s.failure_class is not None), None)
        if failed is None:
            return f"{name}: not accepted: {seed.error or 'the message was not sent'}"
        code = " ".join(str(x) for x in (failed.code, failed.enhanced_code) if x)
        text = (failed.text.splitlines() or [""])[0]
        if failed.enhanced_code and text.startswith(failed.enhanced_code):
            text = text[len(failed.enhanced_code):].lstrip()  # already shown with the code
        cls = failed.failure_class.value if failed.failure_class else "?"
        return f"{name}: not accepted at {failed.step.value.upper()}" \
               f"{' ' + code if code else ''} ({cls}): {text}".rstrip(": ")
    status = seed.receive_status
    if status is ReceiveStatus.MISSING:
        return f"{name}: did not arrive ({seed.error or 'not seen before the deadline'})"
    if status is ReceiveStatus.LATE:
        return f"{name}: arrived late ({seed.error or 'after the deadline'})"
    if status is ReceiveStatus.ERROR:
        return f"{name}: mailbox could not be checked: {seed.error or 'unknown error'}"
    if status is not ReceiveStatus.ARRIVED:
        return f"{name}: arrival not confirmed ({seed.error or status})"
    if seed.placement is Placement.JUNK:
        return f"{name}: landed in {seed.folder or 'junk'}"
    return None


def dns_reasons(dns: DnsReport) -> list[str]:
    domain, reasons = dns.domain, []
    mx, spf, dmarc = dns.mx, dns.spf, dns.dmarc
    if mx.error is not None:
        reasons.append(f"MX: {mx.error}")
    elif mx.null_mx:
        reasons.append(f"{domain} publishes a null MX (RFC 7505): it accepts no mail, "
                       "so bounces and replies to the sender cannot be delivered")
    elif not mx.present:
        reasons.append(f"{domain} has no MX record")
    if not spf.present:
        reasons.append(f"SPF: {spf.error}" if spf.error is not None
                       else f"{domain} has no SPF record (TXT v=spf1)")
    elif len(spf.records) > 1:
        reasons.append(f"{domain} has {spf.error}")
    elif not spf.parseable:
        reasons.append(f"{domain} SPF record is not parseable: {spf.error}")
    if not dmarc.present:
        reasons.append(f"DMARC: {dmarc.error}" if dmarc.error is not None
                       else f"{domain} has no DMARC record ({dmarc.name})")
    elif not dmarc.valid:
        reasons.append(f"DMARC record at {dmarc.name} is invalid: {dmarc.error}")
    return reasons


def dns_warnings(dns: DnsReport) -> list[str]:
    warnings = spf_warnings(dns.spf)
    dmarc = dns.dmarc
    if dmarc.valid and dmarc.policy == "none":
        warnings.append(f"DMARC policy at {dmarc.name} is p=none: monitoring only")
    if dmarc.valid and dmarc.pct is not None and dmarc.pct < 100:
        warnings.append(f"DMARC pct={dmarc.pct}: the policy applies to part of the mail only")
    return warnings + list(dns.notes)
