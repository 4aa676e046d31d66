"""Posture beside the seeds in a check: DANE against what the send saw, DKIM on the
arrived seed, and a verdict that fails on an error finding or a listing."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from monitor.checks import CheckReport, CheckRequest, Verdict, run_check
from monitor.cli.render_check import render_report
from monitor.posture.assess import PostureOptions
from monitor.sandbox import Sandbox
from tests.unit.checks.conftest import DOMAIN, SENDER, SteeredMaildir, check_config
from tests.unit.checks.dnsserver import DnsServer, domain_records
from tests.unit.posture.zones import spf_tree

OPTIONS = PostureOptions(ip_zones=("zen.test",), domain_zones=("dbl.test",))


async def check(box: Sandbox, dns: DnsServer, **provider: Any) -> CheckReport:
    config = check_config(box, "seed-1", **provider)
    req = CheckRequest.model_validate({"provider": "sandbox", "from": SENDER,
                                       "seeds": ["seed-1"]})
    return await run_check(config, req, check_id="chk_posture", dns_nameserver=dns.address,
                           receive_backends=SteeredMaildir().backends(), dns_lifetime=2.0,
                           posture_options=OPTIONS)


def sandbox_spki(box: Sandbox) -> str:
    assert box.certificates is not None
    leaf = x509.load_pem_x509_certificates(box.certificates.cert_file.read_bytes())[0]
    return hashlib.sha256(leaf.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


async def test_posture_is_reported_beside_the_seeds(sandbox: Sandbox) -> None:
    records = domain_records(DOMAIN)
    tlsa = f"_{sandbox.port}._tcp.localhost"
    records[(tlsa, "TLSA")] = [f"3 1 1 {sandbox_spki(sandbox)}"]
    async with DnsServer(records, authentic={tlsa}) as dns:
        # By name, so DANE applies: the sandbox certificate is for localhost too.
        report = await check(sandbox, dns, host="localhost")
    assert report.verdict is Verdict.PASSED, report.reasons
    assert report.posture is not None
    found = {f.id: f for f in report.posture.findings}
    assert found["dane.tlsa_match"].subject == tlsa
    assert {"spf.ok", "dmarc.ok", "tls_rpt.missing", "mta_sts.missing"} <= set(found)
    # The seed arrived and was kept whole: DKIM was looked at (the sandbox signs nothing).
    assert "dkim.unsigned" in found and "dkim.not_checked" not in found
    text = render_report(report)
    assert f"Posture of {DOMAIN}" in text and "\n  Warnings\n    dkim.unsigned\n" in text


async def test_an_error_finding_or_a_listing_fails_the_check(sandbox: Sandbox) -> None:
    records = domain_records(DOMAIN)
    records.update(spf_tree(DOMAIN, 11))
    records[(f"{DOMAIN}.dbl.test", "A")] = ["127.0.1.2"]
    tlsa = f"_{sandbox.port}._tcp.localhost"
    records[(tlsa, "TLSA")] = ["3 1 1 " + "00" * 32]
    async with DnsServer(records, authentic={tlsa}) as dns:
        report = await check(sandbox, dns, host="localhost")
    assert report.verdict is Verdict.FAILED
    ids = [r.split(":", 1)[0] for r in report.reasons]
    assert ids == [f"dane.tlsa_mismatch ({tlsa})", f"dnsbl.listed ({DOMAIN} dbl.test)",
                   "spf.lookup_limit"], report.reasons
    assert all(s.arrived for s in report.seeds)  # the seeds themselves were fine
    # The API's JSON has the findings too, and reads back.
    again = CheckReport.model_validate(report.model_dump(mode="json", by_alias=True))
    assert again.posture == report.posture
