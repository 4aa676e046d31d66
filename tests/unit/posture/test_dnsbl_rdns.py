"""DNSBL listings (127.0.0.2 listed, Spamhaus's 127.255.255.254 unknown), reverse DNS,
TLS-RPT and BIMI, against the loopback DNS server."""

from __future__ import annotations

from monitor.posture import bimi, dnsbl, rdns, tls_rpt
from monitor.posture.finding import Finding, Severity
from monitor.posture.resolver import Resolver
from tests.unit.checks.dnsserver import DnsServer, Records, txt

IP = "192.0.2.25"


def ids(found: list[Finding]) -> dict[str, Severity]:
    return {f.id: f.severity for f in found}


def test_query_names() -> None:
    assert dnsbl.query_name("192.0.2.25", "zen.test") == "25.2.0.192.zen.test"
    assert dnsbl.query_name("2001:db8::1", "zen.test") == \
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test"
    assert dnsbl.query_name("news.example", "dbl.test") == "news.example.dbl.test"


async def test_listed_unknown_and_clean() -> None:
    records: Records = {
        ("25.2.0.192.listing.test", "A"): ["127.0.0.2"],
        ("25.2.0.192.listing.test", "TXT"): [txt("https://lists.test/query/ip/192.0.2.25")],
        ("25.2.0.192.refusing.test", "A"): ["127.255.255.254"],
        ("25.2.0.192.hijacked.test", "A"): ["198.51.100.1"],
        ("clean.test", "A"): ["192.0.2.1"]}
    async with DnsServer(records) as server:
        found = await dnsbl.check([IP], ["listing.test", "refusing.test", "hijacked.test",
                                         "clean.test"], Resolver(server.address))
    by_zone = {f.subject: f for f in found}
    listed = by_zone[f"{IP} listing.test"]
    assert (listed.id, listed.severity) == ("dnsbl.listed", Severity.ERROR)
    assert listed.record == "25.2.0.192.listing.test A 127.0.0.2; TXT " \
                            "https://lists.test/query/ip/192.0.2.25"
    for zone in ("refusing.test", "hijacked.test"):  # never "listed"
        assert (by_zone[f"{IP} {zone}"].id, by_zone[f"{IP} {zone}"].severity) == (
            "dnsbl.unknown", Severity.WARNING)
    assert f"{IP} clean.test" not in by_zone
    async with DnsServer({("clean.test", "A"): ["192.0.2.1"]}) as server:
        clean = await dnsbl.check([IP], ["clean.test"], Resolver(server.address))
    assert ids(clean) == {"dnsbl.not_listed": Severity.INFO}


async def test_forward_confirmed_reverse_dns() -> None:
    ptr = "25.2.0.192.in-addr.arpa"
    good: Records = {(ptr, "PTR"): ["out.esp.test."], ("out.esp.test", "A"): [IP]}
    async with DnsServer(good) as server:
        assert ids(await rdns.check(IP, Resolver(server.address))) == {
            "rdns.ok": Severity.INFO}
    unconfirmed: Records = {(ptr, "PTR"): ["out.esp.test."],
                            ("out.esp.test", "A"): ["192.0.2.99"]}
    async with DnsServer(unconfirmed) as server:
        found = await rdns.check(IP, Resolver(server.address))
    assert ids(found) == {"rdns.not_forward_confirmed": Severity.ERROR}
    assert found[0].record == f"{ptr} PTR out.esp.test"
    async with DnsServer({}) as server:
        assert ids(await rdns.check(IP, Resolver(server.address))) == {
            "rdns.missing": Severity.ERROR}


async def test_tls_rpt() -> None:
    name = "_smtp._tls.rpt.test"
    cases = {"v=TLSRPTv1; rua=mailto:tls@rpt.test": "tls_rpt.ok",
             "v=TLSRPTv1; rua=ftp://x": "tls_rpt.invalid",
             "v=TLSRPTv1": "tls_rpt.invalid"}
    for record, expected in cases.items():
        async with DnsServer({(name, "TXT"): [txt(record)]}) as server:
            assert [f.id for f in await tls_rpt.check("rpt.test", Resolver(server.address))] \
                == [expected], record
    async with DnsServer({("rpt.test", "A"): ["192.0.2.1"]}) as server:
        assert ids(await tls_rpt.check("rpt.test", Resolver(server.address))) == {
            "tls_rpt.missing": Severity.WARNING}


async def test_bimi_only_when_present() -> None:
    name = "default._bimi.brand.test"
    record = "v=BIMI1; l=https://brand.test/logo.svg; a=https://brand.test/vmc.pem"
    async with DnsServer({(name, "TXT"): [txt(record)]}) as server:
        resolver = Resolver(server.address)
        assert ids(await bimi.check("brand.test", resolver, dmarc_enforced=True)) == {
            "bimi.present": Severity.INFO}
        assert ids(await bimi.check("brand.test", resolver, dmarc_enforced=False)) == {
            "bimi.dmarc_not_enforced": Severity.WARNING}
        assert await bimi.check("other.test", resolver, dmarc_enforced=True) == []
