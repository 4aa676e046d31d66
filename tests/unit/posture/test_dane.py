"""DANE: TLSA records matched against the certificate a real probe of the sandbox saw."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from monitor.config import Config
from monitor.posture import dane
from monitor.posture.finding import Finding, Severity
from monitor.posture.resolver import Resolver
from monitor.probe.engine import run_probe
from monitor.sandbox import Sandbox
from tests.unit.checks.conftest import check_config
from tests.unit.checks.dnsserver import DnsServer, Records

HOST = "smtp.dane.test"


@pytest.fixture
async def seen(tmp_path: Path) -> AsyncIterator[tuple[dane.Seen, bytes]]:
    box = await Sandbox(tmp_path / "sandbox").start()
    try:
        config: Config = check_config(box, mode="tls")
        result = await run_probe(config.providers[0], config)
    finally:
        await box.stop()
    assert result.tls is not None and result.tls.certificate is not None
    assert box.certificates is not None
    leaf = x509.load_pem_x509_certificates(box.certificates.cert_file.read_bytes())[0]
    yield dane.Seen.from_certificate(HOST, box.port, result.tls.certificate), \
        leaf.public_bytes(Encoding.DER)


def spki_sha256(der: bytes) -> str:
    key = x509.load_der_x509_certificate(der).public_key()
    return hashlib.sha256(key.public_bytes(Encoding.DER,
                                           PublicFormat.SubjectPublicKeyInfo)).hexdigest()


async def findings(records: Records, seen: dane.Seen, *, authentic: bool = True
                   ) -> list[Finding]:
    name = f"_{seen.port}._tcp.{HOST}"
    async with DnsServer(records, authentic={name} if authentic else set()) as server:
        return await dane.check_host(HOST, seen.port, Resolver(server.address), seen)


def ids(found: list[Finding]) -> dict[str, Severity]:
    return {f.id: f.severity for f in found}


async def test_a_3_1_1_record_of_the_sandbox_certificate_matches(
        seen: tuple[dane.Seen, bytes]) -> None:
    probed, der = seen
    assert probed.spki_sha256 == spki_sha256(der)  # the probe recorded the SPKI digest
    name = f"_{probed.port}._tcp.{HOST}"
    found = await findings({(name, "TLSA"): [f"3 1 1 {spki_sha256(der)}"]}, probed)
    assert ids(found) == {"dane.tlsa_match": Severity.INFO}
    full = hashlib.sha256(der).hexdigest()
    assert ids(await findings({(name, "TLSA"): [f"3 0 1 {full}"]}, probed)) == {
        "dane.tlsa_match": Severity.INFO}


async def test_a_record_of_another_certificate_does_not_match(
        seen: tuple[dane.Seen, bytes]) -> None:
    probed, _ = seen
    name = f"_{probed.port}._tcp.{HOST}"
    found = await findings({(name, "TLSA"): ["3 1 1 " + "ab" * 32]}, probed)
    assert ids(found) == {"dane.tlsa_mismatch": Severity.ERROR}
    assert probed.spki_sha256 in found[0].message
    assert found[0].record == "3 1 1 " + "ab" * 32


async def test_without_the_ad_bit_the_records_are_not_validated(
        seen: tuple[dane.Seen, bytes]) -> None:
    probed, der = seen
    name = f"_{probed.port}._tcp.{HOST}"
    found = await findings({(name, "TLSA"): [f"3 1 1 {spki_sha256(der)}"]}, probed,
                           authentic=False)
    assert ids(found) == {"dane.not_validated": Severity.WARNING,
                          "dane.tlsa_match": Severity.INFO}


async def test_pkix_usages_are_unusable_and_ta_needs_the_chain(
        seen: tuple[dane.Seen, bytes]) -> None:
    probed, der = seen
    name = f"_{probed.port}._tcp.{HOST}"
    found = await findings({(name, "TLSA"): [f"1 1 1 {spki_sha256(der)}",
                                             "2 1 1 " + "cd" * 32]}, probed)
    assert ids(found) == {"dane.tlsa_unusable": Severity.WARNING,
                          "dane.tlsa_unverifiable": Severity.INFO}


def test_a_chain_matches_every_combination(seen: tuple[dane.Seen, bytes]) -> None:
    from dns.rdtypes.ANY.TLSA import TLSA

    probed, der = seen
    key = x509.load_der_x509_certificate(der).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with_chain = dane.Seen(HOST, probed.port, chain=(der,))
    sha512 = TLSA("IN", "TLSA", 3, 1, 2, hashlib.sha512(key).digest())
    exact = TLSA("IN", "TLSA", 3, 0, 0, der)
    other = TLSA("IN", "TLSA", 3, 1, 2, b"\0" * 64)
    assert dane.matches(sha512, with_chain) and dane.matches(exact, with_chain)
    assert dane.matches(other, with_chain) is False
    assert dane.matches(sha512, probed) is None  # digests from a result cover 3 x 1 only


async def test_a_host_without_tlsa_is_info() -> None:
    async with DnsServer({(HOST, "A"): ["127.0.0.1"]}) as server:
        found = await dane.check_host(HOST, 25, Resolver(server.address))
    assert ids(found) == {"dane.no_tlsa": Severity.INFO}
