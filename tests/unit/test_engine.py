"""The probe engine against scripted peers: each odd behaviour, one test.

Every test asserts the failing step, its code and enhanced code, the class,
and that the probe returned within its timeouts.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import pytest

from monitor.probe import FailureClass, ProbeResult, Step, run_probe
from monitor.sandbox import CertificateFiles
from tests.unit.conftest import make_config
from tests.unit.scripted_smtp import CLOSE, HANG, Behaviour, Drip, ScriptedServer

SEND = {"mode": "send", "tls": "none", "auth": {"username": "u", "password": "hunter2"},
        "from": "probe@example.test", "to": ["seed@example.test"]}


async def probe(server: ScriptedServer, **provider: Any) -> ProbeResult:
    config = make_config(port=server.port, **provider)
    started = time.monotonic()
    result = await run_probe(config.providers[0], config)
    elapsed = time.monotonic() - started
    overall = config.providers[0].timeout.total_seconds()
    assert elapsed < overall + 1, f"probe took {elapsed:.1f}s, past its {overall}s timeout"
    return result


def assert_failed(result: ProbeResult, step: Step, code: int | None, enhanced: str | None,
                  failure_class: FailureClass) -> None:
    failure = result.failure
    assert not result.ok
    assert failure is not None, result.steps
    assert (failure.step, failure.code, failure.enhanced_code, failure.failure_class) == (
        step, code, enhanced, failure_class), failure
    assert result.failed_step is step and result.failure_class is failure_class
    assert result.diagnosis is not None and result.diagnosis.summary


async def test_healthy_send_records_every_step_in_order() -> None:
    async with ScriptedServer() as server:
        result = await probe(server, **SEND)
    assert result.ok, result.failure
    assert [s.step for s in result.steps] == [
        Step.CONNECT, Step.EHLO, Step.NOOP, Step.AUTH, Step.MAIL, Step.RCPT, Step.DATA,
        Step.MESSAGE, Step.QUIT]
    assert [s.code for s in result.steps] == [220, 250, 250, 235, 250, 250, 354, 250, 221]
    assert result.steps[4].enhanced_code == "2.1.0"
    assert result.capabilities is not None and result.capabilities.size == 1000000
    assert result.capabilities.auth_mechanisms == ("PLAIN", "LOGIN")
    assert result.token and result.token in result.message_id  # type: ignore[operator]


async def test_credentials_never_in_the_result() -> None:
    async with ScriptedServer() as server:
        result = await probe(server, **SEND)
    dumped = result.model_dump_json()
    assert "hunter2" not in dumped
    assert result.steps[3].command == "AUTH PLAIN ****"
    # …while the server did receive them (PLAIN: base64 of \0u\0hunter2).
    assert any(c.startswith("AUTH PLAIN AHUAaHVudGVyMg==") for c in server.commands)


async def test_banner_421_is_transient_at_connect() -> None:
    async with ScriptedServer(banner="421 4.3.2 Service shutting down") as server:
        result = await probe(server)
    assert_failed(result, Step.CONNECT, 421, "4.3.2", FailureClass.TRANSIENT)
    assert result.diagnosis is not None and result.diagnosis.retry


async def test_ehlo_refused_falls_back_to_helo() -> None:
    async with ScriptedServer(replies={"EHLO": "502 5.5.1 EHLO not supported"}) as server:
        result = await probe(server)
    assert result.ok
    steps = {s.step: s for s in result.steps}
    assert steps[Step.EHLO].code == 502 and not steps[Step.EHLO].ok
    assert steps[Step.EHLO].failure_class is None
    assert steps[Step.HELO].code == 250
    assert result.capabilities is not None and not result.capabilities.esmtp


async def test_starttls_required_but_not_offered_is_tls_failure() -> None:
    async with ScriptedServer() as server:  # no STARTTLS in EHLO
        result = await probe(server, mode="tls", tls="starttls")
    assert_failed(result, Step.STARTTLS, None, None, FailureClass.TLS)
    assert "not offered" in result.steps[-2].text or "not offered" in result.failure.text  # type: ignore[union-attr]
    assert "STARTTLS" not in server.commands


async def test_credentials_not_sent_when_starttls_missing(good_certs: CertificateFiles) -> None:
    async with ScriptedServer() as server:
        result = await probe(server, **{**SEND, "tls": "starttls"})
    assert_failed(result, Step.STARTTLS, None, None, FailureClass.TLS)
    assert not any(c.startswith("AUTH") for c in server.commands)


@pytest.mark.parametrize(("reply", "code", "enhanced", "cls"), [
    ("454 4.7.0 TLS not available due to local problem", 454, "4.7.0", FailureClass.TRANSIENT),
    ("502 5.5.1 STARTTLS not implemented", 502, "5.5.1", FailureClass.TLS),
])
async def test_starttls_refused(server_ctx: ssl.SSLContext, reply: str, code: int,
                                enhanced: str, cls: FailureClass) -> None:
    async with ScriptedServer(replies={"STARTTLS": reply}, starttls_context=server_ctx) as s:
        result = await probe(s, mode="tls", tls="starttls")
    assert_failed(result, Step.STARTTLS, code, enhanced, cls)


@pytest.mark.parametrize(("reply", "code", "enhanced"), [
    ("530 5.7.0 Authentication required", 530, "5.7.0"),
    ("534 5.7.9 Please log in with your web browser", 534, "5.7.9"),
    ("535 5.7.8 Error: authentication failed", 535, "5.7.8"),
])
async def test_auth_refusals_are_auth_class(reply: str, code: int, enhanced: str) -> None:
    async with ScriptedServer(replies={"AUTH": reply}) as server:
        result = await probe(server, **SEND)
    assert_failed(result, Step.AUTH, code, enhanced, FailureClass.AUTH)
    assert result.diagnosis is not None and not result.diagnosis.retry
    assert [s.step for s in result.steps][-1] is Step.QUIT


@pytest.mark.parametrize("verb", ["MAIL", "RCPT"])
@pytest.mark.parametrize(("reply", "code", "enhanced"), [
    ("550 5.1.1 <seed@example.test>: Recipient address rejected", 550, "5.1.1"),
    ("553 5.1.3 Bad address syntax", 553, "5.1.3"),
])
async def test_envelope_refusals_are_permanent_then_rset(verb: str, reply: str, code: int,
                                                         enhanced: str) -> None:
    async with ScriptedServer(replies={verb: reply}) as server:
        result = await probe(server, **SEND)
    step = Step.MAIL if verb == "MAIL" else Step.RCPT
    assert_failed(result, step, code, enhanced, FailureClass.PERMANENT)
    assert [s.step for s in result.steps][-2:] == [Step.RSET, Step.QUIT]
    assert "DATA" not in server.commands


async def test_each_recipient_gets_its_own_rcpt_and_reply() -> None:
    replies: dict[str, Behaviour] = {"RCPT": "550 5.1.1 unknown"}
    async with ScriptedServer(replies=replies) as server:
        result = await probe(server, **{**SEND, "to": ["a@example.test", "b@example.test"]})
    rcpts = [s for s in result.steps if s.step is Step.RCPT]
    assert [(s.recipient, s.code) for s in rcpts] == [("a@example.test", 550),
                                                      ("b@example.test", 550)]
    assert result.failure is rcpts[0]
    assert [c for c in server.commands if c.startswith("RCPT")] == [
        "RCPT TO:<a@example.test>", "RCPT TO:<b@example.test>"]


@pytest.mark.parametrize(("reply", "code", "enhanced", "cls"), [
    ("452 4.3.1 Insufficient system storage", 452, "4.3.1", FailureClass.TRANSIENT),
    ("552 5.3.4 Message size exceeds fixed limit", 552, "5.3.4", FailureClass.PERMANENT),
])
async def test_data_refusals(reply: str, code: int, enhanced: str, cls: FailureClass) -> None:
    async with ScriptedServer(replies={"DATA": reply}) as server:
        result = await probe(server, **SEND)
    assert_failed(result, Step.DATA, code, enhanced, cls)


async def test_554_after_final_dot_is_the_message_step() -> None:
    replies: dict[str, Behaviour] = {"MESSAGE": "554 5.7.1 Message rejected as spam"}
    async with ScriptedServer(replies=replies) as server:
        result = await probe(server, **SEND)
    assert_failed(result, Step.MESSAGE, 554, "5.7.1", FailureClass.PERMANENT)


@pytest.mark.parametrize(("verb", "step"), [
    ("BANNER", Step.CONNECT), ("EHLO", Step.EHLO), ("NOOP", Step.NOOP), ("AUTH", Step.AUTH),
    ("MAIL", Step.MAIL), ("RCPT", Step.RCPT), ("DATA", Step.DATA), ("MESSAGE", Step.MESSAGE),
])
async def test_no_answer_times_out_at_that_step(verb: str, step: Step) -> None:
    server = ScriptedServer(replies={verb: HANG})
    if verb == "BANNER":
        server = ScriptedServer(banner=HANG)
    async with server:
        result = await probe(server, **{**SEND, "step_timeout": "0.3s"})
    assert_failed(result, step, None, None, FailureClass.TIMEOUT)
    failure = result.failure
    assert failure is not None and 250 <= failure.latency_ms < 1500


async def test_quit_without_221_is_a_finding_not_a_failure() -> None:
    async with ScriptedServer(replies={"QUIT": CLOSE}) as server:
        result = await probe(server)
    assert result.ok
    assert result.steps[-1].step is Step.QUIT and not result.steps[-1].ok
    assert any(f.kind == "quit" for f in result.findings)


@pytest.mark.parametrize("garbage", [
    b"HELLO THERE\r\n", b"\x00\xff\xfe garbage\r\n", b"2x0 almost a code\r\n",
])
async def test_garbage_reply_is_protocol(garbage: bytes) -> None:
    async with ScriptedServer(replies={"EHLO": garbage}) as server:
        result = await probe(server)
    assert_failed(result, Step.EHLO, None, None, FailureClass.PROTOCOL)


async def test_megabyte_reply_line_is_protocol_and_kept_short() -> None:
    async with ScriptedServer(replies={"NOOP": "250 " + "x" * 1_000_000}) as server:
        result = await probe(server)
    assert_failed(result, Step.NOOP, None, None, FailureClass.PROTOCOL)
    assert len(result.model_dump_json()) < 20_000


async def test_wrong_code_for_step_is_protocol() -> None:
    async with ScriptedServer(replies={"NOOP": "354 go ahead"}) as server:
        result = await probe(server)
    assert_failed(result, Step.NOOP, 354, None, FailureClass.PROTOCOL)


async def test_dripping_server_hits_the_step_timeout() -> None:
    async with ScriptedServer(replies={"EHLO": Drip("250 slow.test", every=0.2)}) as server:
        result = await probe(server, step_timeout="0.5s")
    assert_failed(result, Step.EHLO, None, None, FailureClass.TIMEOUT)


async def test_overall_timeout_bounds_a_dripping_session() -> None:
    drip = Drip("250 2.0.0 OK", every=0.05)  # each reply ~0.6 s, under the step timeout
    async with ScriptedServer(replies={"NOOP": drip, "MAIL": drip, "RCPT": drip}) as server:
        result = await probe(server, **{**SEND, "timeout": "1s", "step_timeout": "2s"})
    failure = result.failure
    assert failure is not None and failure.failure_class is FailureClass.TIMEOUT
    assert "overall" in failure.text


@pytest.mark.parametrize("verb", ["EHLO", "MAIL", "DATA"])
async def test_server_closing_mid_session_is_network(verb: str) -> None:
    async with ScriptedServer(replies={verb: CLOSE}) as server:
        result = await probe(server, **SEND)
    step = {"EHLO": Step.EHLO, "MAIL": Step.MAIL, "DATA": Step.DATA}[verb]
    assert_failed(result, step, None, None, FailureClass.NETWORK)


async def test_connection_refused_is_network() -> None:
    async with ScriptedServer() as server:
        port = server.port
    config = make_config(port=port)
    result = await run_probe(config.providers[0], config)
    assert_failed(result, Step.CONNECT, None, None, FailureClass.NETWORK)
    assert "refused" in result.failure.text  # type: ignore[union-attr]


async def test_auto_picks_cram_md5_when_offered() -> None:
    ehlo = "250-scripted.test\r\n250 AUTH LOGIN PLAIN CRAM-MD5"
    async with ScriptedServer(replies={"EHLO": ehlo}) as server:
        result = await probe(server, **{**SEND, "mode": "auth"})
    assert result.ok, result.failure
    assert any(c == "AUTH CRAM-MD5" for c in server.commands)
    assert all("hunter2" not in c for c in server.commands)


async def test_login_mechanism_two_round_trips() -> None:
    async with ScriptedServer() as server:
        result = await probe(server, **{**SEND, "mode": "auth",
                                        "auth": {"username": "u", "password": "p",
                                                 "mechanism": "LOGIN"}})
    assert result.ok, result.failure
    assert result.steps[-2].command == "AUTH LOGIN ****"


async def test_no_mechanism_in_common_is_auth() -> None:
    async with ScriptedServer(replies={"EHLO": "250-x\r\n250 AUTH GSSAPI"}) as server:
        result = await probe(server, **SEND)
    assert_failed(result, Step.AUTH, None, None, FailureClass.AUTH)
    assert "GSSAPI" in result.failure.text  # type: ignore[union-attr]


async def test_xoauth2_uses_the_token() -> None:
    ehlo = "250-x\r\n250 AUTH XOAUTH2 PLAIN"
    async with ScriptedServer(replies={"EHLO": ehlo}) as server:
        result = await probe(server, **{**SEND, "mode": "auth",
                                        "auth": {"username": "u", "token": "ya29.tok",
                                                 "mechanism": "XOAUTH2"}})
    assert result.ok, result.failure
    assert any(c.startswith("AUTH XOAUTH2 ") for c in server.commands)
    assert "ya29.tok" not in result.model_dump_json()


@pytest.mark.parametrize(("vrfy", "finding"), [("252 2.0.0 Cannot VRFY", False),
                                               ("250 2.0.0 <seed@example.test>", True)])
async def test_vrfy_posture_check(vrfy: str, finding: bool) -> None:
    async with ScriptedServer(replies={"VRFY": vrfy}) as server:
        result = await probe(server, **{**SEND, "check_vrfy": True})
    assert result.ok
    assert any(f.kind == "vrfy_enabled" for f in result.findings) is finding
    assert any(s.step is Step.VRFY for s in result.steps)


async def test_unreadable_ca_file_is_a_tls_failure_not_an_exception(tmp_path: Any) -> None:
    from monitor.config import Config, ProviderConfig

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
    # The config was valid when loaded; the file changed afterwards.
    provider = ProviderConfig.model_construct(
        **{**ProviderConfig(name="p", host="127.0.0.1").model_dump(), "ca_file": ca})
    result = await run_probe(provider, Config())
    assert_failed(result, Step.CONNECT, None, None, FailureClass.TLS)
    assert "ca_file" in result.failure.text  # type: ignore[union-attr]


async def test_a_helo_the_client_refuses_is_a_recorded_failure_not_an_exception() -> None:
    from monitor.config import Config, ProviderConfig

    # The config model refuses this at load; a probe built some other way must not raise.
    provider = ProviderConfig(name="p", host="127.0.0.1").model_copy(
        update={"helo": "bad helo\r\nMAIL FROM:<x@y>"})
    result = await run_probe(provider, Config())
    assert not result.ok and result.failure is not None
    assert result.failure.step is Step.CONNECT
    assert result.failure_class is FailureClass.PROTOCOL
    assert result.failure.text.startswith("the probe could not start")
    assert result.diagnosis is not None


async def test_overall_timeout_bounds_the_clean_up_after_a_failure() -> None:
    # RCPT is refused, then RSET and QUIT never answer: the clean-up used to run on
    # its own clock (2 x step_timeout + 1 s), past the provider's `timeout`.
    async with ScriptedServer(replies={"RCPT": "550 5.1.1 no such user", "RSET": HANG,
                                       "QUIT": HANG}) as server:
        started = time.monotonic()
        result = await probe(server, **{**SEND, "timeout": "1s", "step_timeout": "2s"})
        elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"probe took {elapsed:.2f}s against timeout: 1s"
    assert_failed(result, Step.RCPT, 550, "5.1.1", FailureClass.PERMANENT)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_a_server_echoing_the_auth_line_does_not_leak_the_password(
        mechanism: str) -> None:
    # The 535 quotes back what it got; for PLAIN that is base64("\0u\0hunter2").
    echo = {"PLAIN": "535 5.7.8 bad credentials: AHUAaHVudGVyMg== (hunter2)",
            "LOGIN": "535 5.7.8 bad credentials: aHVudGVyMg (hunter2)"}[mechanism]
    auth = {"username": "u", "password": "hunter2", "mechanism": mechanism}
    async with ScriptedServer(replies={"AUTH": echo}) as server:
        result = await probe(server, **{**SEND, "auth": auth})
    assert_failed(result, Step.AUTH, 535, "5.7.8", FailureClass.AUTH)
    dumped = result.model_dump_json()
    for leaked in ("hunter2", "AHUAaHVudGVyMg", "aHVudGVyMg"):
        assert leaked not in dumped
    assert "[redacted]" in result.failure.text  # type: ignore[union-attr]


async def test_a_ten_thousand_line_ehlo_is_named_for_what_it_is() -> None:
    lines = "".join(f"250-EXT{i}\r\n" for i in range(10_000)) + "250 END"
    async with ScriptedServer(replies={"EHLO": lines}) as server:
        result = await probe(server)
    assert_failed(result, Step.EHLO, None, None, FailureClass.PROTOCOL)
    assert result.diagnosis is not None
    assert "32 KiB" in result.diagnosis.summary
    assert "512 octets" not in result.diagnosis.summary
