"""SPF findings against the loopback DNS server: limits counted through includes."""

from __future__ import annotations

from monitor.posture import spf
from monitor.posture.finding import Finding, Severity
from monitor.posture.resolver import Resolver
from tests.unit.checks.dnsserver import DnsServer, Records, txt
from tests.unit.posture.zones import spf_tree

DOMAIN = "spf.test"


async def findings(records: Records, domain: str = DOMAIN) -> list[Finding]:
    async with DnsServer(records) as server:
        return await spf.check(domain, Resolver(server.address))


def ids(found: list[Finding]) -> dict[str, Severity]:
    return {f.id: f.severity for f in found}


async def test_a_good_record_is_ok_with_its_counts() -> None:
    found = await findings(spf_tree(DOMAIN, 3))
    assert ids(found) == {"spf.ok": Severity.INFO}
    assert "3 of 10 DNS lookups, 0 of 2 void" in found[0].message
    assert found[0].record is not None and found[0].record.startswith("v=spf1 include:inc0")


async def test_eleven_lookups_through_nested_includes_is_an_error() -> None:
    # 2 at the top, 9 more below: the top-level count alone (2) would miss it.
    records = spf_tree(DOMAIN, 2)
    records[("inc1.spf.test", "TXT")] = [txt(
        "v=spf1 " + " ".join(f"include:deep{i}.spf.test" for i in range(9)) + " -all")]
    for i in range(9):
        records[(f"deep{i}.spf.test", "TXT")] = [txt("v=spf1 ip4:192.0.2.1 -all")]
    found = await findings(records)
    assert ids(found) == {"spf.lookup_limit": Severity.ERROR}
    assert "needs 11 DNS lookups, over the limit of 10" in found[0].message
    assert "RFC 7208 §4.6.4" in found[0].message


async def test_ten_lookups_is_a_warning_and_nine_too() -> None:
    assert ids(await findings(spf_tree(DOMAIN, 10))) == {"spf.lookup_limit": Severity.WARNING}
    assert ids(await findings(spf_tree(DOMAIN, 8))) == {"spf.ok": Severity.INFO}


async def test_three_void_lookups_is_an_error() -> None:
    records: Records = {(DOMAIN, "TXT"): [txt(
        "v=spf1 a:gone1.spf.test mx:gone2.spf.test exists:gone3.spf.test -all")],
        ("present.spf.test", "A"): ["192.0.2.1"]}
    found = await findings(records)
    assert ids(found) == {"spf.void_lookup_limit": Severity.ERROR}
    assert "gone1.spf.test, gone2.spf.test, gone3.spf.test" in found[0].message
    # Two are allowed.
    records[(DOMAIN, "TXT")] = [txt("v=spf1 a:gone1.spf.test a:present.spf.test "
                                    "exists:gone3.spf.test -all")]
    assert ids(await findings(records)) == {"spf.ok": Severity.INFO}


async def test_an_include_without_a_record_is_unresolved() -> None:
    records: Records = {(DOMAIN, "TXT"): [txt("v=spf1 include:nowhere.test -all")],
                        ("other.test", "TXT"): [txt("v=spf1 -all")]}
    found = await findings(records)
    assert ids(found) == {"spf.include_unresolved": Severity.ERROR}
    assert found[0].subject == "nowhere.test"


async def test_plus_all_is_an_error_and_question_all_a_warning() -> None:
    assert ids(await findings({(DOMAIN, "TXT"): [txt("v=spf1 mx +all")],
                               (DOMAIN, "MX"): ["10 mx.spf.test."]})) == {
        "spf.permissive_all": Severity.ERROR}
    assert ids(await findings({(DOMAIN, "TXT"): [txt("v=spf1 ip4:192.0.2.1 ?all")]})) == {
        "spf.permissive_all": Severity.WARNING}


async def test_plus_all_in_an_include_opens_the_domain_too() -> None:
    records: Records = {(DOMAIN, "TXT"): [txt("v=spf1 include:esp.test -all")],
                        ("esp.test", "TXT"): [txt("v=spf1 +all")]}
    found = await findings(records)
    assert ids(found) == {"spf.permissive_all": Severity.ERROR}
    assert found[0].subject == "esp.test"


async def test_missing_multiple_and_syntax() -> None:
    assert ids(await findings({(DOMAIN, "TXT"): [txt("hello")]})) == {
        "spf.missing": Severity.ERROR}
    assert ids(await findings({(DOMAIN, "TXT"): [txt("v=spf1 -all"), txt("v=spf1 ~all")]})) \
        == {"spf.multiple": Severity.ERROR}
    found = await findings({(DOMAIN, "TXT"): [txt("v=spf1 ip4:300.1.1.1 -all")]})
    assert ids(found) == {"spf.syntax": Severity.ERROR}
    assert "300.1.1.1" in found[0].message


async def test_an_include_loop_and_no_all() -> None:
    records: Records = {(DOMAIN, "TXT"): [txt("v=spf1 include:b.test -all")],
                        ("b.test", "TXT"): [txt("v=spf1 include:spf.test -all")]}
    assert "spf.include_loop" in ids(await findings(records))
    assert ids(await findings({(DOMAIN, "TXT"): [txt("v=spf1 ip4:192.0.2.1")]})) == {
        "spf.no_all": Severity.WARNING}


async def test_redirect_is_followed_and_counted() -> None:
    # The redirect is a lookup of its own: 1 + the target's 10 includes.
    records = spf_tree("target.test", 10)
    records[(DOMAIN, "TXT")] = [txt("v=spf1 redirect=target.test")]
    found = await findings(records)
    assert ids(found) == {"spf.lookup_limit": Severity.ERROR}
    assert "needs 11 DNS lookups" in found[0].message


async def test_a_dns_failure_is_a_warning_not_missing() -> None:
    async with DnsServer({}, rcode=2) as server:  # SERVFAIL
        found = await spf.check(DOMAIN, Resolver(server.address, lifetime=1))
    assert ids(found) == {"spf.lookup_failed": Severity.WARNING}
