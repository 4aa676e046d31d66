"""The probe against Debian's postfix (SASL through dovecot) on loopback."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, ProviderConfig
from monitor.probe import FailureClass, ProbeResult, Step, run_probe
from tests.integration.mailstack import MailStack

SEED = "seed@example.test"
SEED_PASSWORD = "seed-password"


def provider_config(stack: MailStack, **overrides: Any) -> Config:
    fields: dict[str, Any] = {
        "name": "postfix", "host": stack.host, "port": stack.submission_port,
        "tls": "starttls", "mode": "send", "ca_file": stack.ca_pem_path,
        "helo": "probe.example.test", "from": SEED, "to": [SEED],
        "auth": {"username": SEED, "password": SEED_PASSWORD},
        "timeout": "20s", "step_timeout": "5s",
    }
    fields.update(overrides)
    return Config(providers=(ProviderConfig.model_validate(fields),))


async def probe(stack: MailStack, **overrides: Any) -> ProbeResult:
    config = provider_config(stack, **overrides)
    return await run_probe(config.providers[0], config)


def failure_of(result: ProbeResult) -> tuple[Step, int | None, str | None, FailureClass | None]:
    failure = result.failure
    assert failure is not None, "probe unexpectedly succeeded"
    return failure.step, failure.code, failure.enhanced_code, failure.failure_class


@pytest.fixture
def access_map(mailstack: MailStack) -> Iterator[MailStack]:
    yield mailstack
    mailstack.set_recipient_access({})


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_submission_starttls_and_auth(mailstack: MailStack, mechanism: str) -> None:
    result = await probe(mailstack, mode="auth",
                         auth={"username": SEED, "password": SEED_PASSWORD,
                               "mechanism": mechanism})
    assert result.ok, result.failure
    steps = [s.step for s in result.steps]
    assert steps == [Step.CONNECT, Step.EHLO, Step.NOOP, Step.STARTTLS, Step.EHLO_TLS,
                     Step.AUTH, Step.QUIT]
    assert result.steps[0].code == 220 and "ESMTP" in result.steps[0].text
    assert result.steps[5].code == 235 and result.steps[5].enhanced_code == "2.7.0"
    assert result.tls is not None and result.tls.verified and result.tls.certificate
    caps = result.capabilities
    assert caps is not None and caps.pipelining and caps.enhancedstatuscodes and caps.size
    assert {"PLAIN", "LOGIN"} <= set(caps.auth_mechanisms)
    # Postfix offers AUTH only after STARTTLS (smtpd_tls_auth_only).
    assert result.steps[1].text.count("AUTH") == 0


async def test_implicit_tls_port(mailstack: MailStack) -> None:
    result = await probe(mailstack, port=mailstack.smtps_port, tls="implicit", mode="auth")
    assert result.ok, result.failure
    assert Step.STARTTLS not in [s.step for s in result.steps]
    assert result.tls is not None and result.tls.verified


async def test_send_accepted_with_250_2_0_0(mailstack: MailStack) -> None:
    result = await probe(mailstack)
    assert result.ok, result.failure
    message = next(s for s in result.steps if s.step is Step.MESSAGE)
    assert (message.code, message.enhanced_code) == (250, "2.0.0")
    assert "queued as" in message.text
    rcpt = next(s for s in result.steps if s.step is Step.RCPT)
    assert (rcpt.code, rcpt.enhanced_code, rcpt.recipient) == (250, "2.1.5", SEED)


async def test_recipient_rejected_by_access_map_then_deferred(access_map: MailStack) -> None:
    access_map.set_recipient_access({SEED: "550 5.1.1 Mailbox unavailable (access map)"})
    result = await probe(access_map)
    assert failure_of(result) == (Step.RCPT, 550, "5.1.1", FailureClass.PERMANENT)
    assert [s.step for s in result.steps][-2:] == [Step.RSET, Step.QUIT]
    assert result.diagnosis is not None and not result.diagnosis.retry

    access_map.set_recipient_access({SEED: "450 4.2.1 Mailbox busy, try later"})
    result = await probe(access_map)
    assert failure_of(result) == (Step.RCPT, 450, "4.2.1", FailureClass.TRANSIENT)
    assert result.diagnosis is not None and result.diagnosis.retry


async def test_wrong_password_is_535_auth(mailstack: MailStack) -> None:
    result = await probe(mailstack, mode="auth",
                         auth={"username": SEED, "password": "wrong", "mechanism": "PLAIN"})
    assert failure_of(result) == (Step.AUTH, 535, "5.7.8", FailureClass.AUTH)
    assert "wrong" not in result.model_dump_json()


async def test_plaintext_auth_refused_by_postfix(mailstack: MailStack) -> None:
    # Explicit tls: none — postfix does not offer AUTH before TLS, so no mechanism in common.
    result = await probe(mailstack, tls="none", mode="auth")
    assert failure_of(result) == (Step.AUTH, None, None, FailureClass.AUTH)


async def test_implicit_tls_against_submission_port_is_named(mailstack: MailStack) -> None:
    result = await probe(mailstack, tls="implicit", mode="tls", step_timeout="3s")
    step, _, _, failure_class = failure_of(result)
    assert step is Step.CONNECT and failure_class in (FailureClass.TLS, FailureClass.TIMEOUT)
    assert result.diagnosis is not None and "tls: starttls" in result.diagnosis.action


async def test_postfix_stopped_is_network(mailstack: MailStack) -> None:
    mailstack.stop_postfix()
    try:
        result = await probe(mailstack)
    finally:
        mailstack.start_postfix()
    assert failure_of(result) == (Step.CONNECT, None, None, FailureClass.NETWORK)
    assert result.diagnosis is not None and result.diagnosis.retry


async def test_monitor_probe_cli_against_postfix(mailstack: MailStack, tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(f"""
providers:
  - name: local-postfix
    host: {mailstack.host}
    port: {mailstack.submission_port}
    mode: send
    ca_file: {mailstack.ca_pem_path}
    helo: probe.example.test
    auth: {{username: {SEED}, password: "${{SEED_PASSWORD}}"}}
    from: {SEED}
    to: [{SEED}]
""")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "probe", "local-postfix", "--config", str(config),
        "--json", env={"SEED_PASSWORD": SEED_PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert [s["code"] for s in result["steps"]] == [220, 250, 250, 220, 250, 235, 250, 250,
                                                    354, 250, 221]
    assert all(s["latency_ms"] > 0 for s in result["steps"])
