"""A whole posture run: every family from one resolver, the message's evidence used."""

from __future__ import annotations

import pytest

from monitor.posture import dkim
from monitor.posture.assess import Evidence, PostureOptions, assess
from monitor.posture.finding import Finding, Severity
from monitor.posture.resolver import Resolver
from tests.unit.checks.dnsserver import DnsServer
from tests.unit.posture.signing import message, rsa_key, sign
from tests.unit.posture.zones import good_domain

DOMAIN = "signed.test"


async def test_a_good_domain_and_its_seed_message() -> None:
    key = rsa_key(2048)
    records = good_domain(DOMAIN)
    records[("s1._domainkey.signed.test", "TXT")] = [key.record()]
    records[("25.2.0.192.in-addr.arpa", "PTR")] = ["out.esp.test."]
    records[("out.esp.test", "A")] = ["192.0.2.25"]
    records[("25.2.0.192.zen.test", "A")] = ["127.0.0.2"]
    options = PostureOptions(ip_zones=("zen.test",), domain_zones=("dbl.test",))
    async with DnsServer(records) as server:
        report = await assess(DOMAIN, Resolver(server.address), options,
                              Evidence(message=sign(message(), key)))
    found = {f.id: f.severity for f in report.findings}
    assert report.sending_ip == "192.0.2.25"
    assert found["dnsbl.listed"] is Severity.ERROR
    assert report.listed and report.failed
    assert report.findings[0].id == "dnsbl.listed"  # errors first
    assert {"dkim.ok", "rdns.ok", "spf.ok", "dmarc.ok", "tls_rpt.ok"} <= set(found)
    assert "dkim.not_checked" not in found
    assert report.queries == server.queries.__len__()
    # Every query went to our server, none to a resolver of a library's own.
    assert ("s1._domainkey.signed.test", "TXT") in server.queries


async def test_a_budget_bounds_a_hostile_tree() -> None:
    records = good_domain(DOMAIN)
    async with DnsServer(records) as server:
        report = await assess(DOMAIN, Resolver(server.address, budget=3))
    assert report.queries == 3
    assert any("budget of 3 DNS queries" in f.message for f in report.findings)


async def test_a_family_that_fails_unexpectedly_leaves_the_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.posture import tls_rpt

    async def broken(*args: object) -> list[Finding]:
        raise ValueError("unexpected remote data")

    monkeypatch.setattr(tls_rpt, "check", broken)
    async with DnsServer(good_domain(DOMAIN)) as server:
        report = await assess(DOMAIN, Resolver(server.address))
    found = {f.id: f for f in report.findings}
    assert found["posture.check_failed"].severity is Severity.WARNING
    assert "ValueError: unexpected remote data" in found["posture.check_failed"].message
    assert "spf.ok" in found and "dmarc.ok" in found


async def test_the_dkim_key_is_found_whatever_the_case_of_d_and_s() -> None:
    key = rsa_key(2048)
    raw = sign(message(), key, domain="Signed.TEST", selector="S1")
    async with DnsServer({("s1._domainkey.signed.test", "TXT"): [key.record()]}) as server:
        found = await dkim.check(raw, Resolver(server.address))
    assert [f.id for f in found] == ["dkim.ok"]
