"""diagnose(): one-line summary and action for every failure class, code and mix-up."""

from __future__ import annotations

import pytest

from monitor.probe.diagnosis import diagnose
from monitor.probe.result import Diagnosis, FailureClass, Step

T, P, A, TLS = FailureClass.TRANSIENT, FailureClass.PERMANENT, FailureClass.AUTH, FailureClass.TLS
NET, TO, PROTO = FailureClass.NETWORK, FailureClass.TIMEOUT, FailureClass.PROTOCOL


def d(
    step: Step,
    cls: FailureClass,
    code: int | None = None,
    enhanced: str | None = None,
    text: str = "",
    *,
    port: int = 587,
    tls_mode: str = "starttls",
) -> Diagnosis:
    return diagnose(step, cls, code, enhanced, text, port=port, tls_mode=tls_mode)


# Every listed code gets its own meaning; 2xx/3xx only fail as "unexpected for the step".
@pytest.mark.parametrize(
    ("code", "step", "cls", "meaning"),
    [
        (220, Step.MAIL, PROTO, "service ready"),
        (221, Step.RCPT, PROTO, "closing the connection"),
        (235, Step.MAIL, PROTO, "authentication succeeded"),
        (250, Step.CONNECT, PROTO, "requested action completed"),
        (251, Step.DATA, PROTO, "will forward"),
        (252, Step.DATA, PROTO, "cannot verify the user"),
        (334, Step.MAIL, PROTO, "authentication challenge"),
        (354, Step.RCPT, PROTO, "start mail input"),
        (421, Step.CONNECT, T, "service not available"),
        (450, Step.MAIL, T, "mailbox unavailable for now"),
        (451, Step.RCPT, T, "local error in processing"),
        (452, Step.MAIL, T, "insufficient system storage"),
        (454, Step.STARTTLS, T, "TLS not available"),
        (455, Step.MAIL, T, "cannot accommodate the parameters"),
        (500, Step.EHLO, P, "command unrecognized"),
        (501, Step.MAIL, P, "syntax error in parameters"),
        (502, Step.NOOP, P, "command not implemented"),
        (503, Step.RCPT, P, "bad sequence of commands"),
        (504, Step.MAIL, P, "command parameter not implemented"),
        (521, Step.CONNECT, P, "host does not accept mail"),
        (523, Step.AUTH, A, "encryption needed"),
        (530, Step.MAIL, A, "authentication required"),
        (534, Step.AUTH, A, "mechanism too weak"),
        (535, Step.AUTH, A, "username or password rejected"),
        (538, Step.AUTH, A, "encryption required"),
        (550, Step.RCPT, P, "relaying denied"),
        (551, Step.RCPT, P, "user not local"),
        (552, Step.RCPT, P, "exceeded storage allocation"),
        (553, Step.RCPT, P, "mailbox name not allowed"),
        (554, Step.RCPT, P, "transaction failed"),
        (555, Step.MAIL, P, "parameters not recognized"),
        (556, Step.RCPT, P, "domain does not accept mail"),
    ],
)
def test_every_listed_code_has_its_own_meaning(
    code: int, step: Step, cls: FailureClass, meaning: str
) -> None:
    result = d(step, cls, code)
    assert meaning in result.summary
    assert str(code) in result.summary
    assert step.value.upper() in result.summary
    assert "unlisted" not in result.summary
    assert result.action


@pytest.mark.parametrize(
    ("step", "code", "cls", "meaning"),
    [
        (Step.MAIL, 550, P, "sender was rejected"),
        (Step.RCPT, 550, P, "mailbox unavailable, relaying denied"),
        (Step.MESSAGE, 554, P, "rejected as spam or by content policy"),
        (Step.MESSAGE, 550, P, "content or policy"),
        (Step.DATA, 452, T, "insufficient storage for the message"),
        (Step.MESSAGE, 452, T, "insufficient storage for the message"),
        (Step.DATA, 552, P, "exceeds the size limit"),
        (Step.MESSAGE, 552, P, "exceeds the size limit"),
        (Step.RCPT, 452, T, "too many recipients"),
        (Step.AUTH, 454, T, "temporary authentication failure"),
        (Step.STARTTLS, 454, T, "TLS not available due to a temporary reason"),
        (Step.MAIL, 421, T, "closing the connection"),
        (Step.QUIT, 421, T, "closing the connection"),
        (Step.CONNECT, 554, P, "no SMTP service here"),
    ],
)
def test_meaning_depends_on_the_step(
    step: Step, code: int, cls: FailureClass, meaning: str
) -> None:
    assert meaning in d(step, cls, code).summary


def test_message_step_is_labelled_as_after_the_final_dot() -> None:
    summary = d(Step.MESSAGE, P, 554).summary
    assert summary.startswith("MESSAGE (after the final dot) rejected with 554")


def test_rcpt_550_511_reads_like_a_sentence() -> None:
    result = d(Step.RCPT, P, 550, "5.1.1", "5.1.1 <nobody@example.com>: user unknown")
    assert result.summary == (
        "RCPT rejected with 550 5.1.1: the mailbox does not exist (bad destination mailbox address)"
    )
    assert "recipient address" in result.action
    assert result.retry is False


@pytest.mark.parametrize(
    ("code", "enhanced", "step", "words"),
    [
        (550, "5.1.1", Step.RCPT, ("mailbox", "does not exist")),
        (550, "5.1.2", Step.RCPT, ("destination domain", "does not exist")),
        (553, "5.1.3", Step.RCPT, ("syntax",)),
        (553, "5.1.8", Step.MAIL, ("sender's system address",)),
        (550, "5.1.10", Step.RCPT, ("null MX",)),
        (550, "5.2.1", Step.RCPT, ("mailbox disabled",)),
        (452, "4.2.2", Step.RCPT, ("mailbox full",)),
        (552, "5.2.2", Step.RCPT, ("mailbox full",)),
        (552, "5.3.4", Step.MESSAGE, ("message too big",)),
        (451, "4.4.1", Step.MESSAGE, ("no answer from host",)),
        (451, "4.4.2", Step.MESSAGE, ("bad connection",)),
        (451, "4.4.7", Step.MESSAGE, ("delivery time expired",)),
        (501, "5.5.2", Step.MAIL, ("protocol syntax error",)),
        (554, "5.7.1", Step.MESSAGE, ("delivery not authorized", "message refused")),
        (535, "5.7.8", Step.AUTH, ("authentication credentials invalid",)),
        (534, "5.7.9", Step.AUTH, ("mechanism too weak",)),
        (538, "5.7.11", Step.AUTH, ("encryption required",)),
        (550, "5.7.23", Step.MESSAGE, ("SPF validation failed",)),
        (550, "5.7.25", Step.MESSAGE, ("reverse DNS",)),
        (550, "5.7.26", Step.MESSAGE, ("multiple authentication checks failed", "DMARC")),
        (550, "5.7.27", Step.MAIL, ("sender domain has a null MX",)),
    ],
)
def test_enhanced_code_meaning_is_in_the_summary(
    code: int, enhanced: str, step: Step, words: tuple[str, ...]
) -> None:
    cls = T if code < 500 else A if code in (534, 535, 538) else P
    summary = d(step, cls, code, enhanced).summary
    assert f"{code} {enhanced}" in summary
    for word in words:
        assert word in summary


def test_known_enhanced_detail_is_more_specific_than_the_basic_code() -> None:
    summary = d(Step.RCPT, P, 550, "5.2.2").summary
    assert "mailbox full" in summary
    assert "relaying denied" not in summary


def test_unknown_enhanced_detail_keeps_basic_meaning_and_names_the_subject() -> None:
    summary = d(Step.RCPT, P, 550, "5.7.99").summary
    assert "relaying denied" in summary
    assert summary.endswith("(security or policy status)")
    assert d(Step.RCPT, T, 450, "4.2.0").summary.endswith("(often greylisting; mailbox status)")


def test_malformed_enhanced_code_is_ignored() -> None:
    summary = d(Step.RCPT, P, 550, "5.1").summary
    assert summary == (
        "RCPT rejected with 550: mailbox unavailable, relaying denied, or refused by policy"
    )


@pytest.mark.parametrize(
    ("cls", "code", "retry"),
    [
        (T, 421, True), (T, 450, True), (T, 451, True), (T, 452, True), (T, 454, True),
        (P, 550, False), (P, 552, False), (P, 554, False), (P, 500, False),
        (A, 535, False), (A, 530, False), (A, None, False),
        (TLS, None, False), (TLS, 554, False),
        (NET, None, True), (TO, None, True), (PROTO, None, False),
        (FailureClass.DELIVERY, None, True),
    ],
)
def test_retry_follows_the_class(cls: FailureClass, code: int | None, retry: bool) -> None:
    result = d(Step.RCPT, cls, code, text="something went wrong")
    assert result.retry is retry
    # The action never contradicts the flag: it says retry exactly when retrying helps.
    assert ("retry" in result.action.replace("do not retry", "")) is retry


def test_transient_action_says_retry_with_backoff_then_what_to_check() -> None:
    action = d(Step.RCPT, T, 450, "4.2.0").action
    assert action.startswith("retry with backoff; if it persists, ")
    assert "greylisting" in action


def test_permanent_action_says_what_to_fix() -> None:
    assert "sender address" in d(Step.MAIL, P, 550).action
    assert "SPF/DKIM/DMARC" in d(Step.MESSAGE, P, 554).action
    assert "smaller message" in d(Step.MESSAGE, P, 552).action


def test_530_on_a_plaintext_session_says_starttls_first() -> None:
    assert "STARTTLS first" in d(Step.MAIL, A, 530, "5.7.0", tls_mode="none").action
    assert "STARTTLS" not in d(Step.MAIL, A, 530, "5.7.0", tls_mode="starttls").action


def test_534_points_at_app_passwords_and_538_at_tls() -> None:
    gmail = d(Step.AUTH, A, 534, "5.7.9", "Application-specific password required")
    assert "app password" in gmail.summary
    assert "app password" in gmail.action and "OAuth2" in gmail.action
    assert "set tls: starttls" in d(Step.AUTH, A, 538, tls_mode="none").action


def test_starttls_refused_with_5xx_suggests_implicit_tls() -> None:
    result = d(Step.STARTTLS, TLS, 502, "5.5.1")
    assert result.summary.startswith("STARTTLS rejected with 502 5.5.1")
    assert "tls: implicit" in result.action
    assert result.retry is False


@pytest.mark.parametrize("tls_mode", ["starttls", "none"])
def test_465_without_implicit_tls_is_named(tls_mode: str) -> None:
    result = d(Step.CONNECT, TO, text="Timed out waiting for server response", port=465,
               tls_mode=tls_mode)
    assert result.action == "port 465 expects implicit TLS (SMTPS): set tls: implicit"
    assert "465" in result.summary and "TLS handshake" in result.summary
    assert result.retry is True


def test_465_mismatch_also_explains_garbage_or_a_dropped_connection() -> None:
    garbage = d(Step.CONNECT, PROTO, text="Malformed SMTP response line: \x15\x03\x01", port=465)
    dropped = d(Step.CONNECT, NET, text="connection reset by peer", port=465, tls_mode="none")
    for result in (garbage, dropped):
        assert "set tls: implicit" in result.action


@pytest.mark.parametrize(
    ("port", "text"),
    [
        (587, "TLS handshake failed: WRONG_VERSION_NUMBER"),
        (25, "TLS handshake failed: something else"),
        (2525, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
        (2525, "TLS handshake failed: RECORD_LAYER_FAILURE"),
    ],
)
def test_implicit_tls_on_a_starttls_port_is_named(port: int, text: str) -> None:
    result = d(Step.CONNECT, TLS, text=text, port=port, tls_mode="implicit")
    assert result.action == f"port {port} speaks STARTTLS, not implicit TLS: set tls: starttls"
    assert "plaintext" in result.summary
    assert result.retry is False


def test_no_mismatch_when_the_mode_fits_the_port() -> None:
    ok_465 = d(Step.CONNECT, TO, text="timed out", port=465, tls_mode="implicit")
    ok_587 = d(Step.CONNECT, TO, text="timed out", port=587, tls_mode="starttls")
    for result in (ok_465, ok_587):
        assert "set tls" not in result.action
        assert "no banner" in result.summary


def test_banner_timeout_names_implicit_tls_only_when_the_port_speaks_it() -> None:
    plain = d(Step.CONNECT, TO, text="timed out", port=2465, tls_mode="starttls")
    assert "implicit" not in (plain.summary + plain.action).lower()
    checked = d(Step.CONNECT, TO, port=2465, tls_mode="starttls",
                text="timed out; the port completes a TLS handshake: it expects implicit TLS")
    assert checked.action == "port 2465 expects implicit TLS (SMTPS): set tls: implicit"
    assert "implicit" not in d(Step.CONNECT, TO, port=2465, tls_mode="implicit").action


def test_certificate_problem_wins_over_the_port_heuristic() -> None:
    result = d(Step.CONNECT, TLS, text="certificate verification failed: certificate expired",
               port=587, tls_mode="implicit")
    assert "expired" in result.summary
    assert "set tls: starttls" not in result.action


@pytest.mark.parametrize(
    ("text", "summary_part", "action_part"),
    [
        ("certificate verification failed: certificate expired", "has expired", "renew"),
        ("certificate verification failed: self-signed certificate", "self-signed", "ca_file"),
        ("certificate verification failed: unknown CA (unable to get local issuer certificate)",
         "not trusted", "full chain"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self signed certificate "
         "in certificate chain", "self-signed", "ca_file"),
        ("certificate verification failed: hostname mismatch", "host name", "SANs"),
        ("certificate verification failed: certificate not yet valid", "not valid yet", "clock"),
        ("STARTTLS required but not offered (not in the EHLO reply)",
         "did not offer STARTTLS", "enable STARTTLS"),
        ("TLS handshake failed: TLSV1_ALERT_PROTOCOL_VERSION", "handshake failed", "TLS 1.2"),
        ("weird", "TLS failure (weird)", "TLS setup"),
    ],
)
def test_tls_reasons(text: str, summary_part: str, action_part: str) -> None:
    result = d(Step.STARTTLS, TLS, text=text)
    assert result.summary.startswith("TLS failed at STARTTLS: ")
    assert summary_part in result.summary
    assert action_part in result.action


@pytest.mark.parametrize(
    ("text", "meaning"),
    [
        ("connection refused", "connection refused"),
        ("DNS lookup failed: Name or service not known", "DNS lookup"),
        ("[Errno 101] Network is unreachable", "unreachable"),
        ("connection reset by peer", "reset or closed"),
        ("something odd", "network error (something odd)"),
    ],
)
def test_network_failures(text: str, meaning: str) -> None:
    result = d(Step.CONNECT, NET, text=text)
    assert meaning in result.summary
    assert "port 587" in result.summary
    assert result.action == "check host, port and firewall; retry"


@pytest.mark.parametrize(
    ("step", "words"),
    [
        (Step.CONNECT, "CONNECT timed out: no banner"),
        (Step.EHLO, "EHLO timed out: the server accepted TCP but stopped answering"),
        (Step.RCPT, "RCPT timed out"),
        (Step.MESSAGE, "after the final dot"),
    ],
)
def test_timeout_names_the_step(step: Step, words: str) -> None:
    result = d(step, TO, text="Timed out waiting for server response")
    assert words in result.summary
    assert "raise timeout" in result.action


@pytest.mark.parametrize(
    ("code", "text", "words"),
    [
        (None, "reply too long: over aiosmtplib's limit", "longer than the client accepts"),
        (None, "Malformed SMTP response line: garbage", "malformed reply"),
        (None, "HTTP/1.1 400 Bad Request", "HTTP, not SMTP"),
        (250, "hello", "unexpected reply 250 (expected 220): requested action completed"),
    ],
)
def test_protocol_failures(code: int | None, text: str, words: str) -> None:
    result = d(Step.CONNECT, PROTO, code, text=text)
    assert words in result.summary
    assert "set tls" not in result.action


def test_auth_without_a_common_mechanism_lists_what_the_server_offers() -> None:
    result = d(Step.AUTH, A, text="no AUTH mechanism in common: server offers CRAM-MD5 LOGIN, "
               "we want XOAUTH2")
    assert "the server offers CRAM-MD5, LOGIN" in result.summary
    assert "XOAUTH2" not in result.summary
    assert "auth.mechanism" in result.action


def test_auth_with_nothing_offered_on_plaintext_says_starttls_first() -> None:
    text = "no AUTH mechanism in common: server offers none, we want any we support"
    assert "STARTTLS first" in d(Step.AUTH, A, text=text, tls_mode="none").action
    assert "submission port" in d(Step.AUTH, A, text=text).action


@pytest.mark.parametrize(
    ("code", "cls", "step", "words"),
    [
        (599, P, Step.RCPT, "RCPT rejected with 599: an unlisted permanent failure (5xx)"),
        (499, T, Step.MAIL, "MAIL temporarily rejected with 499: an unlisted transient failure"),
        (299, P, Step.RCPT, "RCPT answered with 299: an unlisted success reply (2xx)"),
        (299, PROTO, Step.CONNECT, "unexpected reply 299 (expected 220): an unlisted success"),
        (600, P, Step.RCPT, "not a valid SMTP reply"),
        (99, PROTO, Step.EHLO, "not a valid SMTP reply"),
    ],
)
def test_unknown_codes_fall_back_to_their_class(
    code: int, cls: FailureClass, step: Step, words: str
) -> None:
    assert words in d(step, cls, code).summary


def test_unknown_permanent_code_is_not_retried() -> None:
    result = d(Step.RCPT, P, 599)
    assert result.retry is False
    assert "do not retry" in result.action


@pytest.mark.parametrize("cls", [T, P])
def test_reply_class_without_a_code(cls: FailureClass) -> None:
    result = d(Step.MAIL, cls, None, text="connection lost\nmid-reply")
    assert result.summary == "MAIL failed without a reply code: connection lost mid-reply"


@pytest.mark.parametrize(
    ("step", "cls", "code", "enhanced", "port", "tls_mode"),
    [
        (Step.RCPT, P, 550, "5.1.1", 587, "starttls"),
        (Step.MESSAGE, P, 554, None, 25, "none"),
        (Step.CONNECT, TO, None, None, 465, "starttls"),
        (Step.CONNECT, TLS, None, None, 587, "implicit"),
        (Step.AUTH, A, None, None, 587, "none"),
        (Step.EHLO, PROTO, None, None, 25, "none"),
        (Step.CONNECT, NET, None, None, 25, "none"),
        (Step.MESSAGE, FailureClass.DELIVERY, None, None, 587, "starttls"),
    ],
)
def test_summary_and_action_are_single_lines(
    step: Step, cls: FailureClass, code: int | None, enhanced: str | None, port: int,
    tls_mode: str,
) -> None:
    text = "550-5.1.1 first line\r\n550-second\r\n550 5.1.1 third\n\tmore"
    result = d(step, cls, code, enhanced, text, port=port, tls_mode=tls_mode)
    for line in (result.summary, result.action):
        assert line and "\n" not in line and "\r" not in line and "\t" not in line
        assert line == line.strip()


def test_hostile_text_is_clipped_in_the_summary() -> None:
    result = d(Step.EHLO, PROTO, text="Malformed SMTP response line: " + "x" * 10_000)
    assert len(result.summary) < 300
    assert "x…): malformed reply" in result.summary
