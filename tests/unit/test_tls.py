"""TLS: certificate verdicts (with the certificate still reported) and port/TLS mismatches."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.probe import FailureClass, Step, run_probe
from monitor.sandbox import CertificateFiles, Sandbox, make_certificates
from tests.unit.conftest import make_config
from tests.unit.scripted_smtp import ScriptedServer

AUTH = {"mode": "auth", "tls": "starttls"}


async def _probe_sandbox(tmp_path: Path, certs: CertificateFiles, **provider: object):
    sandbox = await Sandbox(tmp_path, certificates=certs).start()
    try:
        config = make_config(port=sandbox.port, mode="auth", tls="starttls",
                             auth={"username": sandbox.username, "password": sandbox.password},
                             **provider)
        return await run_probe(config.providers[0], config)
    finally:
        await sandbox.stop()


async def test_trusted_certificate_is_verified_and_described(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "c")
    result = await _probe_sandbox(tmp_path, certs, ca_file=certs.ca_file)
    assert result.ok, result.failure
    assert result.tls is not None and result.tls.verified
    assert result.tls.protocol in ("TLSv1.2", "TLSv1.3") and result.tls.cipher
    cert = result.tls.certificate
    assert cert is not None and cert.subject == "CN=localhost"
    assert "127.0.0.1" in cert.sans and "Sandbox CA" in cert.issuer
    assert cert.not_after is not None and cert.not_after > datetime.now(UTC)
    # STARTTLS appears before TLS; AUTH only after it (credentials never in clear).
    steps = [s.step for s in result.steps]
    assert steps.index(Step.STARTTLS) < steps.index(Step.EHLO_TLS) < steps.index(Step.AUTH)


async def test_each_server_gets_its_own_certificate_and_capabilities(tmp_path: Path) -> None:
    # Parsed certificates and EHLO replies are cached: the cache must be keyed on them.
    first, second = make_certificates(tmp_path / "a"), make_certificates(tmp_path / "b")
    results = [await _probe_sandbox(tmp_path, certs, ca_file=certs.ca_file)
               for certs in (first, second, first)]
    prints = [r.tls.certificate.fingerprint_sha256 for r in results  # type: ignore[union-attr]
              if r.tls is not None and r.tls.certificate is not None]
    assert len(prints) == 3 and prints[0] == prints[2] != prints[1]
    for result in results:
        # STARTTLS is not re-advertised inside TLS, yet it was offered.
        assert result.capabilities is not None and result.capabilities.starttls
        assert "AUTH" in result.capabilities.extensions


@pytest.mark.parametrize(("kind", "reason"), [
    ("unknown-ca", "unknown CA"),
    ("expired", "expired"),
    ("wrong-host", "mismatch"),
    ("self-signed", "self-signed"),
])
async def test_untrusted_certificates_fail_tls_but_are_reported(
        tmp_path: Path, kind: str, reason: str) -> None:
    trust: dict[str, object] = {}
    if kind == "unknown-ca":
        certs = make_certificates(tmp_path / "c")
    elif kind == "expired":
        certs = make_certificates(tmp_path / "c", not_before=datetime.now(UTC) - timedelta(
            days=40), valid_for=timedelta(days=30))
        trust = {"ca_file": certs.ca_file}
    elif kind == "wrong-host":
        certs = make_certificates(tmp_path / "c", hostnames=("mail.other.test",))
        trust = {"ca_file": certs.ca_file}
    else:
        certs = make_certificates(tmp_path / "c", self_signed=True)
    result = await _probe_sandbox(tmp_path, certs, **trust)
    failure = result.failure
    assert failure is not None and (failure.step, failure.failure_class) == (
        Step.STARTTLS, FailureClass.TLS), failure
    assert reason in failure.text
    assert result.tls is not None and not result.tls.verified
    assert reason in (result.tls.verify_error or "")
    # The certificate we refused is still described.
    assert result.tls.certificate is not None
    if kind == "expired":
        assert result.tls.certificate.not_after < datetime.now(UTC)  # type: ignore[operator]
    if kind == "wrong-host":
        assert result.tls.certificate.sans == ("mail.other.test",)
    assert not any(s.step is Step.AUTH for s in result.steps)


async def test_tls_verify_false_accepts_but_says_so(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "c")
    result = await _probe_sandbox(tmp_path, certs, tls_verify=False)
    assert result.ok
    assert result.tls is not None and not result.tls.verified
    assert "tls_verify" in (result.tls.verify_error or "")


async def test_implicit_tls(server_ctx: ssl.SSLContext, good_certs: CertificateFiles) -> None:
    async with ScriptedServer(implicit_context=server_ctx) as server:
        config = make_config(port=server.port, tls="implicit", mode="tls",
                             ca_file=good_certs.ca_file)
        result = await run_probe(config.providers[0], config)
    assert result.ok, result.failure
    assert result.tls is not None and result.tls.verified
    assert "STARTTLS" not in server.commands
    assert result.steps[0].command is not None and "implicit TLS" in result.steps[0].command


async def test_implicit_tls_against_a_starttls_port(server_ctx: ssl.SSLContext) -> None:
    async with ScriptedServer(starttls_context=server_ctx) as server:
        config = make_config(port=server.port, tls="implicit", mode="tls")
        result = await run_probe(config.providers[0], config)
    failure = result.failure
    assert failure is not None and (failure.step, failure.failure_class) == (
        Step.CONNECT, FailureClass.TLS)
    assert result.diagnosis is not None
    assert "starttls" in (result.diagnosis.summary + result.diagnosis.action).lower()


async def test_starttls_against_an_implicit_tls_port(server_ctx: ssl.SSLContext) -> None:
    async with ScriptedServer(implicit_context=server_ctx) as server:
        config = make_config(port=server.port, tls="starttls", mode="tls",
                             step_timeout="0.5s")
        result = await run_probe(config.providers[0], config)
    failure = result.failure
    assert failure is not None and (failure.step, failure.failure_class) == (
        Step.CONNECT, FailureClass.TIMEOUT)
    assert result.diagnosis is not None
    assert "implicit" in (result.diagnosis.summary + result.diagnosis.action).lower()
