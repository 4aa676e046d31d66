"""A private CA and a server certificate, for the sandbox and for tests.

`monitor demo` must run with nothing installed or configured, so it makes its
own CA; the probe then trusts that CA through the provider's `ca_file`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hostnames: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def make_certificates(
    directory: Path,
    hostnames: tuple[str, ...] = ("localhost", "127.0.0.1"),
    *,
    valid_for: timedelta = timedelta(days=90),
    not_before: datetime | None = None,
    self_signed: bool = False,
    ca_name: str = "Delivery Monitor Sandbox CA",
) -> CertificateFiles:
    """Write ca.pem, server.pem (leaf + CA chain) and server.key into `directory`.

    `not_before`/`valid_for` let tests make expired or nearly-expiring
    certificates; `self_signed` makes the leaf its own issuer.
    """
    directory.mkdir(parents=True, exist_ok=True)
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, signing_key = (_name(hostnames[0]), key) if self_signed else (
        ca_cert.subject, ca_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(hostnames[0]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .add_extension(_san(hostnames), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
    )
    if not self_signed:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False)
    leaf = builder.sign(signing_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    files = CertificateFiles(directory / "ca.pem", directory / "server.pem",
                             directory / "server.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(pem))
    chain = leaf.public_bytes(pem) + (b"" if self_signed else ca_cert.public_bytes(pem))
    files.cert_file.write_bytes(chain)
    files.key_file.write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files.key_file.chmod(0o600)
    return files
