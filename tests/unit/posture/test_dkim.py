"""DKIM on a received message: signed here with dkimpy, verified by us through our
resolver (the key records are on the loopback DNS server)."""

from __future__ import annotations

from monitor.posture import dkim
from monitor.posture.finding import Finding, Severity
from monitor.posture.received import from_domain, sending_ip
from monitor.posture.resolver import Resolver
from tests.unit.checks.dnsserver import DnsServer, Records
from tests.unit.posture.signing import Key, message, rsa_key, sign

SELECTOR = "s1._domainkey.signed.test"


def zone(key: Key) -> Records:
    return {(SELECTOR, "TXT"): [key.record()]}


async def findings(raw: bytes, records: Records) -> tuple[list[Finding], list[tuple[str, str]]]:
    async with DnsServer(records) as server:
        found = await dkim.check(raw, Resolver(server.address))
    return found, server.queries


def ids(found: list[Finding]) -> dict[str, Severity]:
    return {f.id: f.severity for f in found}


async def test_a_2048_bit_signature_verifies_through_our_resolver() -> None:
    key = rsa_key(2048)
    found, queries = await findings(sign(message(), key), zone(key))
    assert ids(found) == {"dkim.ok": Severity.INFO}
    assert "(rsa 2048 bits), aligned with From signed.test" in found[0].message
    assert queries == [(SELECTOR, "TXT")]  # dkimpy made no DNS query of its own


async def test_a_1024_bit_key_is_a_warning_and_768_an_error() -> None:
    key = rsa_key(1024)
    found, _ = await findings(sign(message(), key), zone(key))
    assert ids(found) == {"dkim.key_too_short": Severity.WARNING, "dkim.ok": Severity.INFO}
    short = rsa_key(768)
    found, _ = await findings(sign(message(), short), zone(short))
    assert ids(found)["dkim.key_too_short"] is Severity.ERROR
    assert "RSA 768 bits, under 1024" in found[0].message


async def test_a_message_changed_after_signing_fails() -> None:
    key = rsa_key(2048)
    raw = sign(message(), key).replace(b"Hello seeds.", b"Hello SEEDS.")
    found, _ = await findings(raw, zone(key))
    assert ids(found) == {"dkim.invalid_signature": Severity.ERROR}


async def test_a_key_published_for_another_signature_fails() -> None:
    found, _ = await findings(sign(message(), rsa_key(2048)), zone(rsa_key(1024)))
    assert ids(found)["dkim.invalid_signature"] is Severity.ERROR


async def test_unsigned_missing_key_and_unaligned() -> None:
    assert ids((await findings(message(), {}))[0]) == {"dkim.unsigned": Severity.WARNING}
    found, _ = await findings(sign(message(), rsa_key(2048)), {})
    assert ids(found) == {"dkim.key_missing": Severity.ERROR}
    key = rsa_key(2048)
    other = sign(message(sender="news@elsewhere.test"), key)
    found, _ = await findings(other, zone(key))
    assert ids(found) == {"dkim.not_aligned": Severity.WARNING}


async def test_a_revoked_key() -> None:
    found, _ = await findings(sign(message(), rsa_key(2048)),
                              {(SELECTOR, "TXT"): ['"v=DKIM1; k=rsa; p="']})
    assert ids(found) == {"dkim.key_revoked": Severity.ERROR}


def test_the_sending_ip_is_the_first_public_hop() -> None:
    raw = sign(message(), rsa_key(1024), received_from="198.51.100.7")
    sender = sending_ip(raw)
    assert (sender.ip, sender.public) == ("198.51.100.7", True)
    assert sender.received is not None and sender.received.startswith("from out.esp.test")
    # Only private hops: the topmost, said to be private.
    local = sign(message(), rsa_key(1024), received_from="10.0.0.5")
    assert (sending_ip(local).ip, sending_ip(local).public) == ("127.0.0.1", False)
    assert sending_ip(message()).ip is None
    assert from_domain(raw) == "signed.test"
