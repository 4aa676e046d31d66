"""BIMI findings (the BIMI draft, draft-brand-indicators-for-message-identification): the
`default._bimi` record, when there is one. A missing record is no finding: BIMI is
optional, and only worth checking where a domain publishes it."""

from __future__ import annotations

from monitor.posture.finding import Finding, info, warning
from monitor.posture.resolver import Resolver
from monitor.posture.tags import parse_tags


async def check(domain: str, resolver: Resolver, *, dmarc_enforced: bool) -> list[Finding]:
    name = f"default._bimi.{domain}"
    strings, found = await resolver.txt(name)
    records = [s for s in strings if s.replace(" ", "").lower().startswith("v=bimi1")]
    if found.error is not None or not records:
        return []
    record = records[0]
    tags = parse_tags(record)
    logo = tags.get("l", "") if isinstance(tags, dict) else ""
    if isinstance(tags, str) or (logo and not logo.lower().startswith("https://")):
        why = tags if isinstance(tags, str) else f"l={logo} is not an https: URL"
        return [warning("bimi.invalid",
                        f"The BIMI record at {name} is not valid: {why}. Mailboxes show no "
                        "logo. Fix the record.", record)]
    if not dmarc_enforced:
        return [warning(
            "bimi.dmarc_not_enforced",
            f"{domain} publishes BIMI at {name}, but its DMARC policy is not quarantine or "
            "reject at pct=100: mailboxes show no logo until it is. Fix DMARC first.",
            record)]
    return [info("bimi.present", f"{domain} publishes a BIMI logo at {name}. Nothing to "
                                 "change.", record)]
