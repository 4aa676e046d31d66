"""DKIM-signed test messages (dkimpy) and the key records that verify them."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from functools import cache

import dkim
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.unit.posture.zones import long_txt


@dataclass(frozen=True)
class Key:
    bits: int
    private_pem: bytes
    public_b64: str

    def record(self) -> str:
        """TXT rdata of the selector record (split: a 2048-bit key is over 255 bytes)."""
        return long_txt(f"v=DKIM1; k=rsa; p={self.public_b64}")


@cache
def rsa_key(bits: int) -> Key:
    # 512 is below what cryptography generates; such keys are only ever verified here.
    private = rsa.generate_private_key(public_exponent=65537, key_size=max(bits, 1024))
    if bits < 1024:
        private = _small(bits)
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    return Key(bits, pem, base64.b64encode(der).decode())


def _small(bits: int) -> rsa.RSAPrivateKey:
    """An RSA key under 1024 bits, from our own primes (cryptography refuses to make one)."""
    e = 65537
    while True:
        p, q = _prime(bits // 2), _prime(bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e and (p * q).bit_length() == bits:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key()


def _prime(bits: int) -> int:
    while True:
        n = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if _probably_prime(n):
            return n


def _probably_prime(n: int, rounds: int = 32) -> bool:
    """Miller-Rabin."""
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def message(sender: str = "news@signed.test", ip: str = "192.0.2.25",
            body: str = "Hello seeds.\r\n") -> bytes:
    return (f"From: News <{sender}>\r\nTo: seed@seeds.test\r\nSubject: seed\r\n"
            f"Message-ID: <1@signed.test>\r\nDate: Tue, 01 Dec 2026 23:00:00 +0000\r\n"
            f"\r\n{body}").encode()


def sign(raw: bytes, key: Key, domain: str = "signed.test", selector: str = "s1",
         received_from: str = "192.0.2.25") -> bytes:
    """Signed by the provider, then received by the seed's MX (which adds Received)."""
    signature = dkim.sign(raw, selector.encode(), domain.encode(), key.private_pem,
                          include_headers=[b"from", b"to", b"subject", b"date"])
    received = (f"Received: from out.esp.test (out.esp.test [{received_from}])\r\n"
                "\tby mx.seeds.test with ESMTPS id 4Xyz; Tue, 01 Dec 2026 23:00:01 +0000\r\n"
                "Received: from localhost (localhost [127.0.0.1])\r\n"
                "\tby mx.seeds.test with LMTP; Tue, 01 Dec 2026 23:00:01 +0000\r\n")
    # The internal hop is the topmost: the sending IP is the first public one.
    inner, outer = received.split("Received: from localhost")
    return ("Received: from localhost" + outer).encode() + inner.encode() + signature + raw
