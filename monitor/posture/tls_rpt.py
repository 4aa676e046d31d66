"""TLS-RPT findings (RFC 8460): the `_smtp._tls` record that asks senders for reports
about TLS failures delivering to the domain (MTA-STS and DANE failures among them)."""

from __future__ import annotations

from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.resolver import Resolver
from monitor.posture.tags import parse_tags

PREFIX = "v=TLSRPTv1"


async def check(domain: str, resolver: Resolver) -> list[Finding]:
    name = f"_smtp._tls.{domain}"
    strings, found = await resolver.txt(name)
    if found.error is not None:
        return [warning("tls_rpt.lookup_failed",
                        f"The TLS-RPT lookup at {name} failed ({found.error}). Usually "
                        "transient: wait and check again.")]
    records = [s for s in strings if s.replace(" ", "").startswith(PREFIX)]
    if not records:
        return [warning(
            "tls_rpt.missing",
            f"{domain} has no TLS-RPT record at {name}: when senders cannot deliver to it "
            "over TLS (an expired certificate, an MTA-STS or DANE mismatch), nobody is "
            f"told. Fix it: publish \"v=TLSRPTv1; rua=mailto:tls-reports@{domain}\" at "
            f"{name} (RFC 8460 §3).")]
    if len(records) > 1:
        return [error("tls_rpt.multiple",
                      f"{name} has {len(records)} TLS-RPT records: senders use none "
                      "(RFC 8460 §3). Fix it: keep one.", " | ".join(records))]
    record = records[0]
    problem = _problem(record)
    if problem is not None:
        return [error("tls_rpt.invalid",
                      f"The TLS-RPT record at {name} is not valid: {problem}. Senders "
                      "ignore it and send no reports. Fix the record (RFC 8460 §3).", record)]
    return [info("tls_rpt.ok", f"{domain} asks for TLS reports at {name}. Nothing to change.",
                 record)]


def _problem(record: str) -> str | None:
    tags = parse_tags(record)
    if isinstance(tags, str):
        return tags
    if tags.get("v") != "TLSRPTv1":
        return "the first tag must be v=TLSRPTv1"
    uris = [u.strip() for u in tags.get("rua", "").split(",") if u.strip()]
    if not uris:
        return "rua= (where reports go) is missing"
    bad = [u for u in uris if not u.lower().startswith(("mailto:", "https://"))]
    if bad:
        return f"rua= must be mailto: or https: URIs, not {bad[0]!r}"
    return None
