"""DMARC findings, including the organizational-domain fallback (RFC 7489 §6.6.3)."""

from __future__ import annotations

from monitor.posture import dmarc
from monitor.posture.finding import Finding, Severity
from monitor.posture.resolver import Resolver
from tests.unit.checks.dnsserver import DnsServer, Records, txt


async def findings(records: Records, domain: str = "dmarc.test") -> list[Finding]:
    async with DnsServer(records) as server:
        return await dmarc.check(domain, Resolver(server.address))


def ids(found: list[Finding]) -> dict[str, Severity]:
    return {f.id: f.severity for f in found}


def record(name: str, text: str) -> Records:
    return {(name, "TXT"): [txt(text)]}


def test_organizational_domain_uses_the_public_suffix_list() -> None:
    assert dmarc.organizational_domain("mail.example.co.uk") == "example.co.uk"
    assert dmarc.organizational_domain("a.b.example.com") == "example.com"
    assert dmarc.organizational_domain("example.com") == "example.com"


async def test_reject_with_reports_is_ok() -> None:
    found = await findings(record("_dmarc.dmarc.test", "v=DMARC1; p=reject; rua=mailto:r@x"))
    assert ids(found) == {"dmarc.ok": Severity.INFO}


async def test_missing_everywhere_is_an_error() -> None:
    found = await findings({("dmarc.test", "A"): ["192.0.2.1"]}, "news.dmarc.test")
    assert ids(found) == {"dmarc.missing": Severity.ERROR}
    assert "_dmarc.news.dmarc.test nor at _dmarc.dmarc.test" in found[0].message


async def test_the_org_domain_record_applies_with_its_sp() -> None:
    records = record("_dmarc.dmarc.test", "v=DMARC1; p=reject; sp=none; rua=mailto:r@x")
    found = await findings(records, "news.dmarc.test")
    assert ids(found) == {"dmarc.org_fallback": Severity.INFO,
                          "dmarc.policy_none": Severity.WARNING}
    assert "sp=none" in found[0].message
    assert found[0].record == "v=DMARC1; p=reject; sp=none; rua=mailto:r@x"
    # Its own record wins over the organizational domain's.
    records.update(record("_dmarc.news.dmarc.test", "v=DMARC1; p=quarantine; rua=mailto:r@x"))
    assert ids(await findings(records, "news.dmarc.test")) == {"dmarc.ok": Severity.INFO}


async def test_policy_none_pct_rua_sp_and_alignment() -> None:
    found = ids(await findings(record("_dmarc.dmarc.test", "v=DMARC1; p=none")))
    assert found == {"dmarc.policy_none": Severity.WARNING,
                     "dmarc.rua_missing": Severity.WARNING}
    found = ids(await findings(record(
        "_dmarc.dmarc.test", "v=DMARC1; p=reject; sp=none; pct=20; adkim=s; rua=mailto:r@x")))
    assert found == {"dmarc.subdomain_policy_none": Severity.WARNING,
                     "dmarc.pct_partial": Severity.WARNING,
                     "dmarc.strict_alignment": Severity.INFO}


async def test_invalid_and_multiple() -> None:
    assert ids(await findings(record("_dmarc.dmarc.test", "v=DMARC1; p=always"))) == {
        "dmarc.invalid": Severity.ERROR}
    assert ids(await findings(record("_dmarc.dmarc.test", "v=DMARC1; p=reject; aspf=x"))) == {
        "dmarc.invalid": Severity.ERROR}
    both = {("_dmarc.dmarc.test", "TXT"): [txt("v=DMARC1; p=reject"), txt("v=DMARC1; p=none")]}
    assert ids(await findings(both)) == {"dmarc.multiple": Severity.ERROR}
