"""MTA-STS: the TXT record on the loopback DNS server, the policy over loopback HTTPS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trustme

from monitor.posture import mta_sts
from monitor.posture.finding import Finding, Severity
from monitor.posture.resolver import Resolver
from tests.unit.checks.dnsserver import DnsServer, Records, txt
from tests.unit.posture.https import PolicyServer

DOMAIN = "sts.test"
HOST = f"mta-sts.{DOMAIN}"
GOOD = "version: STSv1\r\nmode: enforce\r\nmx: mx1.sts.test\r\nmx: *.backup.sts.test\r\n" \
       "max_age: 1209600\r\n"


def zone() -> Records:
    return {(f"_mta-sts.{DOMAIN}", "TXT"): [txt("v=STSv1; id=20261201T000000")],
            (HOST, "A"): ["127.0.0.1"]}


async def findings(policy: str | None, mx: list[str], *, records: Records | None = None,
                   expired: bool = False) -> tuple[list[Finding], PolicyServer]:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST, not_after=datetime.now(UTC) - timedelta(days=1)) if expired \
        else ca.issue_cert(HOST)
    server = PolicyServer(ca, cert, {HOST: policy} if policy is not None else {})
    async with DnsServer(records or zone()) as dns, server:
        fetch = mta_sts.PolicyFetch(port=server.port, verify=server.client_context(),
                                    timeout=5)
        found = await mta_sts.check(DOMAIN, Resolver(dns.address), mx, fetch)
    return found, server


def ids(found: list[Finding]) -> dict[str, Severity]:
    return {f.id: f.severity for f in found}


async def test_a_valid_enforced_policy_covering_every_mx_is_ok() -> None:
    found, server = await findings(GOOD, ["mx1.sts.test", "a.backup.sts.test"])
    assert ids(found) == {"mta_sts.ok": Severity.INFO}
    assert found[0].record == "version: STSv1; mode: enforce; mx: mx1.sts.test; " \
                              "mx: *.backup.sts.test; max_age: 1209600"
    # Fetched from the address our resolver gave, with the policy host as Host (and SNI).
    assert server.requests == [f"{HOST} GET /.well-known/mta-sts.txt HTTP/1.1"]


async def test_an_mx_the_policy_does_not_cover_is_an_error_in_enforce_mode() -> None:
    # A wildcard covers one label only (RFC 8461 §4.1).
    found, _ = await findings(GOOD, ["mx1.sts.test", "a.b.backup.sts.test", "mx9.sts.test"])
    assert ids(found) == {"mta_sts.mx_mismatch": Severity.ERROR}
    assert "a.b.backup.sts.test, mx9.sts.test" in found[0].message


async def test_testing_mode_is_a_warning_and_so_is_its_mismatch() -> None:
    policy = GOOD.replace("enforce", "testing")
    found, _ = await findings(policy, ["other.example"])
    assert ids(found) == {"mta_sts.mode_testing": Severity.WARNING,
                          "mta_sts.mx_mismatch": Severity.WARNING}


async def test_a_wrong_mode_is_an_invalid_policy() -> None:
    found, _ = await findings(GOOD.replace("enforce", "strict"), ["mx1.sts.test"])
    assert ids(found) == {"mta_sts.policy_invalid": Severity.ERROR}
    assert "mode: strict is not enforce, testing or none" in found[0].message


async def test_a_short_max_age_is_a_warning() -> None:
    found, _ = await findings(GOOD.replace("1209600", "3600"), ["mx1.sts.test"])
    assert ids(found) == {"mta_sts.max_age_short": Severity.WARNING}


async def test_an_expired_certificate_is_an_error() -> None:
    found, _ = await findings(GOOD, ["mx1.sts.test"], expired=True)
    assert ids(found) == {"mta_sts.certificate_invalid": Severity.ERROR}
    assert "certificate has expired" in found[0].message


async def test_no_policy_file_and_no_record() -> None:
    found, _ = await findings(None, ["mx1.sts.test"])
    assert ids(found) == {"mta_sts.policy_unreachable": Severity.ERROR}
    assert "HTTP 404" in found[0].message
    found, _ = await findings(GOOD, ["mx1.sts.test"], records={(HOST, "A"): ["127.0.0.1"]})
    assert ids(found) == {"mta_sts.missing": Severity.WARNING}
    bad = zone()
    bad[(f"_mta-sts.{DOMAIN}", "TXT")] = [txt("v=STSv1; id=not-valid!")]
    found, _ = await findings(GOOD, ["mx1.sts.test"], records=bad)
    assert ids(found) == {"mta_sts.record_invalid": Severity.ERROR}


def test_mx_patterns() -> None:
    assert mta_sts.mx_matches("*.example.com", "mx.example.com")
    assert not mta_sts.mx_matches("*.example.com", "example.com")
    assert not mta_sts.mx_matches("*.example.com", "a.b.example.com")
    assert mta_sts.mx_matches("MX.Example.com.", "mx.example.com")
