"""Run one SMTP probe, step by step, and return its result; never raise.

The session is driven by hand on aiosmtplib (`start_tls=False`, no credentials
at connect) so every step — banner, EHLO, NOOP, STARTTLS, EHLO again, AUTH,
MAIL, each RCPT, DATA, the message, QUIT — is timed and recorded on its own.
Each step has `step_timeout`; the whole session has the provider's `timeout`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import aiosmtplib

from monitor.config import AuthConfig, AuthMechanism, Config, ProbeMode, ProviderConfig, TlsMode
from monitor.ids import new_id
from monitor.network import client_context
from monitor.probe import tls as tlsinfo
from monitor.probe import tls_buffer
from monitor.probe.capabilities import HELO_ONLY, MECHANISM_PREFERENCE, parse_capabilities
from monitor.probe.diagnosis import diagnose
from monitor.probe.errors import class_for_code, classify
from monitor.probe.message import MessageSpec, build_message, new_token
from monitor.probe.recorder import StepFailed, StepRecorder
from monitor.probe.result import (
    Capabilities,
    FailureClass,
    Finding,
    ProbeResult,
    Step,
    StepResult,
    TlsInfo,
)
from monitor.redact import auth_needles

# Inert outside a probe: only TLS connections opened under tls_buffer.capped() change.
tls_buffer.install()

_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")
# Replies to EHLO after which HELO is worth a try (RFC 5321 §4.1.4: servers without ESMTP).
_EHLO_REFUSALS = frozenset({500, 501, 502, 504, 550})


async def run_probe(provider: ProviderConfig, config: Config, *,
                    message: MessageSpec | None = None) -> ProbeResult:
    """Probe `provider` up to its mode; every outcome is data in the result.

    `message` replaces the provider's sender, recipients and test message (a
    pre-campaign check sends the campaign's content to its seeds).
    """
    session = _Session(provider, config, message)
    with tls_buffer.capped():  # 4 KiB instead of asyncio's 256 KiB per TLS connection
        return await session.run()


class _Session:
    def __init__(self, provider: ProviderConfig, config: Config,
                 message: MessageSpec | None) -> None:
        self.provider = provider
        self.message = message or MessageSpec(
            sender=provider.sender or "", recipients=tuple(config.recipients(provider)),
            subject=provider.subject)
        self.recipients = list(self.message.recipients)
        self.helo = provider.helo or config.settings.helo
        self.step_timeout = config.step_timeout(provider)
        self.recorder = StepRecorder(redact=_credential_needles(provider.auth))
        self.capabilities: Capabilities | None = None
        self.tls: TlsInfo | None = None
        self.findings: list[Finding] = []
        self.token: str | None = None
        self.message_id: str | None = None
        self.accepted_at: datetime | None = None
        self.tls_context = client_context(provider.tls_verify, None)
        self._smtp: aiosmtplib.SMTP | None = None
        self._port_hint = ""

    @property
    def smtp(self) -> aiosmtplib.SMTP:
        if self._smtp is None:
            raise RuntimeError("the SMTP client is built at the start of run()")
        return self._smtp

    def _client(self) -> aiosmtplib.SMTP:
        """Build the client; inside the probe's `try`, so a bad value fails the probe."""
        p = self.provider
        try:
            self.tls_context = client_context(p.tls_verify, p.ca_file)
        except (ssl.SSLError, OSError) as exc:
            # A CA file that went bad after the config was loaded is a tls failure.
            raise self.recorder.fail(Step.CONNECT, FailureClass.TLS,
                                     f"cannot load ca_file {p.ca_file}: {exc}") from None
        return aiosmtplib.SMTP(
            hostname=p.host,
            port=p.port,
            # Set explicitly: left unset, aiosmtplib resolves our FQDN in a thread on
            # every connect (bench/: raw connects 1.2-1.7x faster with it set).
            local_hostname=self.helo,
            timeout=self.step_timeout,
            use_tls=p.tls is TlsMode.IMPLICIT,
            start_tls=False,
            tls_context=self.tls_context,
        )

    async def run(self) -> ProbeResult:
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        overall = self.provider.timeout.total_seconds()
        failure: StepResult | None = None
        try:
            # One deadline for everything the probe does, clean-up and re-probes included.
            async with asyncio.timeout(overall):
                try:
                    self._smtp = self._client()
                    await self._steps()
                except StepFailed as exc:
                    failure = exc.result
                    await self._after_failure(failure)
        except TimeoutError:
            if failure is None:
                failure = self.recorder.fail_current(
                    FailureClass.TIMEOUT,
                    f"overall probe timeout ({overall:g}s) exceeded during "
                    f"{self.recorder.current or Step.CONNECT}")
        except Exception as exc:  # the probe never raises; last-resort translation
            if failure is None:
                classified = classify(exc)
                failure = self.recorder.fail_current(
                    classified.failure_class,
                    classified.text if self._smtp is not None
                    else f"the probe could not start: {classified.text}")
        finally:
            self._close()
        failure = self._final(failure)

        diagnosis = None
        if failure is not None and failure.failure_class is not None:
            diagnosis = diagnose(failure.step, failure.failure_class, failure.code,
                                 failure.enhanced_code, failure.text,
                                 port=self.provider.port, tls_mode=self.provider.tls.value)
        return ProbeResult(
            run_id=new_id(),
            provider=self.provider.name,
            host=self.provider.host,
            port=self.provider.port,
            tls_mode=self.provider.tls.value,
            mode=self.provider.mode.value,
            started_at=started_at,
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
            ok=failure is None,
            steps=tuple(self.recorder.steps),
            tls=self.tls,
            capabilities=self.capabilities,
            failed_step=failure.step if failure else None,
            failure_class=failure.failure_class if failure else None,
            diagnosis=diagnosis,
            findings=tuple(self.findings),
            token=self.token,
            message_id=self.message_id,
            accepted_at=self.accepted_at,
        )

    # -- the session, in protocol order ------------------------------------------------

    async def _steps(self) -> None:
        p, rec, smtp, t = self.provider, self.recorder, self.smtp, self.step_timeout
        where = f"{p.host}:{p.port}" + (" (implicit TLS)" if p.tls is TlsMode.IMPLICIT else "")
        await rec.run(Step.CONNECT, f"connect {where}", lambda: smtp.connect(timeout=t),
                      expect={220})
        if p.tls is TlsMode.IMPLICIT:
            self.tls = self._session_tls()
        await self._greet(Step.EHLO)
        await rec.run(Step.NOOP, "NOOP", lambda: smtp.noop(timeout=t), expect={250})

        if p.tls is TlsMode.STARTTLS and p.mode is not ProbeMode.CONNECT:
            await self._starttls()
        if p.check_vrfy:
            await self._posture_check()
        if p.mode.reaches(ProbeMode.AUTH) and p.auth is not None:
            await self._authenticate(p.auth)
        if p.mode is ProbeMode.SEND:
            await self._send()
        await self._quit()

    async def _greet(self, step: Step) -> None:
        rec, smtp, t = self.recorder, self.smtp, self.step_timeout
        ehlo = await rec.run(step, f"EHLO {self.helo}", lambda: smtp.ehlo(timeout=t),
                             expect={250}, tolerate=_EHLO_REFUSALS)
        if ehlo is not None:
            self.capabilities = parse_capabilities(ehlo.message,
                                                   starttls_offered=step is Step.EHLO_TLS)
            return
        await rec.run(Step.HELO, f"HELO {self.helo}", lambda: smtp.helo(timeout=t),
                      expect={250})
        self.capabilities = HELO_ONLY

    async def _starttls(self) -> None:
        p, rec, smtp, t = self.provider, self.recorder, self.smtp, self.step_timeout
        if self.capabilities is None or not self.capabilities.starttls:
            why = "server speaks only HELO" if self.capabilities == HELO_ONLY else \
                "not in the EHLO reply"
            raise rec.fail(Step.STARTTLS, FailureClass.TLS,
                           f"STARTTLS required but not offered ({why})")
        await rec.run(
            Step.STARTTLS, "STARTTLS",
            lambda: smtp.starttls(tls_context=self.tls_context, server_hostname=p.host,
                                  timeout=t),
            expect={220},
            # RFC 3207 §4: 454 is "TLS not available due to temporary reason".
            refusal_class=lambda code: FailureClass.TLS if code >= 500 else class_for_code(code),
        )
        self.tls = self._session_tls()
        await self._greet(Step.EHLO_TLS)

    async def _posture_check(self) -> None:
        """VRFY/EXPN should be refused; an answer lets anyone harvest addresses."""
        rec, smtp, t = self.recorder, self.smtp, self.step_timeout
        target = self.recipients[0] if self.recipients else "postmaster"
        for step, verb, call in (
            (Step.VRFY, "VRFY", lambda: smtp.execute_command(b"VRFY", target.encode(),
                                                             timeout=t)),
            (Step.EXPN, "EXPN", lambda: smtp.execute_command(b"EXPN", b"postmaster",
                                                             timeout=t)),
        ):
            reply = await rec.run(step, f"{verb} {target if verb == 'VRFY' else 'postmaster'}",
                                  call, expect=range(200, 600))
            if reply is not None and reply.code in (250, 251):
                self.findings.append(Finding(
                    kind=f"{verb.lower()}_enabled",
                    message=f"{verb} answered {reply.code}: the server confirms addresses, "
                            "which allows address harvesting; disable it "
                            "(postfix: disable_vrfy_command = yes)"))

    async def _authenticate(self, auth: AuthConfig) -> None:
        rec, smtp, t = self.recorder, self.smtp, self.step_timeout
        offered = self.capabilities.auth_mechanisms if self.capabilities else ()
        mechanism = choose_mechanism(auth, offered)
        if mechanism is None:
            wanted = "any we support" if auth.mechanism is AuthMechanism.AUTO \
                else auth.mechanism.value
            have = " ".join(offered) or "none"
            raise rec.fail(Step.AUTH, FailureClass.AUTH,
                           f"no AUTH mechanism in common: server offers {have}, we want {wanted}")
        secret = _secret(auth, mechanism)
        methods: dict[str, Any] = {
            "PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login,
            "CRAM-MD5": smtp.auth_crammd5, "XOAUTH2": smtp.auth_xoauth2,
        }
        method = methods[mechanism]
        await rec.run(Step.AUTH, f"AUTH {mechanism} ****",
                      lambda: method(auth.username, secret, timeout=t), expect={235},
                      # Any refusal at AUTH is about credentials or mechanism, except
                      # 4xx (454 temporary authentication failure: retry).
                      refusal_class=lambda code: class_for_code(code) if code < 500
                      else FailureClass.AUTH)

    async def _send(self) -> None:
        rec, smtp, t = self.recorder, self.smtp, self.step_timeout
        sender = self.message.sender
        self.token = new_token()
        body, self.message_id = build_message(self.message, token=self.token,
                                              now=datetime.now(UTC), helo=self.helo)
        await rec.run(Step.MAIL, f"MAIL FROM:<{sender}>", lambda: smtp.mail(sender, timeout=t),
                      expect={250})
        for rcpt in self.recipients:
            await rec.run(Step.RCPT, f"RCPT TO:<{rcpt}>",
                          lambda rcpt=rcpt: smtp.rcpt(rcpt, timeout=t),  # type: ignore[misc]
                          expect={250, 251}, fatal=False, recipient=rcpt)
            if not smtp.is_connected:
                break
        rejected = next((s for s in rec.steps if s.step is Step.RCPT and s.failure_class), None)
        if rejected is not None:
            # Every recipient's reply is on record; the first refusal fails the probe.
            raise StepFailed(rejected)
        await rec.run(Step.DATA, "DATA", lambda: smtp.execute_command(b"DATA", timeout=t),
                      expect={354})
        await rec.run(Step.MESSAGE, f"<message {len(body)} bytes>\r\n.",
                      lambda: self._send_content(body), expect={250})
        self.accepted_at = datetime.now(UTC)

    async def _send_content(self, body: bytes) -> aiosmtplib.SMTPResponse:
        protocol = self.smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("connection lost before the message")
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        protocol.write(_DOT_AT_LINE_START.sub(b"..", body) + b".\r\n")
        try:
            return await protocol.read_response(timeout=self.step_timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            self.smtp.close()
            raise

    async def _quit(self) -> None:
        """QUIT always; a server that hangs up without 221 is noted, not failed."""
        smtp, t = self.smtp, self.step_timeout
        reply = await self.recorder.run(Step.QUIT, "QUIT", lambda: smtp.quit(timeout=t),
                                        expect={221}, tolerate=range(1000), fatal=False)
        if reply is None:
            self.recorder.forgive_last()
            self.findings.append(Finding(kind="quit", message="QUIT was not answered with 221"))

    async def _after_failure(self, failure: StepResult) -> None:
        """RSET/QUIT, then what helps explain a TLS or connect failure."""
        await self._finish_after_failure(failure.failure_class)
        self._close()
        if failure.failure_class is FailureClass.TLS and self.tls is None:
            self.tls = await self._inspect_failed_tls(failure.text)
        if (failure.step is Step.CONNECT and failure.failure_class is FailureClass.TIMEOUT
                and self.provider.tls is not TlsMode.IMPLICIT
                and await self._port_speaks_tls()):
            self._port_hint = ("; the port completes a TLS handshake: it expects "
                               "implicit TLS")

    def _close(self) -> None:
        if self._smtp is not None:
            self._smtp.close()

    def _final(self, failure: StepResult | None) -> StepResult | None:
        if failure is None or not self._port_hint:
            return failure
        index = self.recorder.steps.index(failure)
        failure = failure.model_copy(update={"text": failure.text + self._port_hint})
        self.recorder.steps[index] = failure
        return failure

    async def _finish_after_failure(self, failure_class: FailureClass | None) -> None:
        if (self._smtp is None or not self.smtp.is_connected
                or failure_class in (FailureClass.TIMEOUT, FailureClass.NETWORK)):
            return
        step = self.recorder.steps[-1].step
        try:
            async with asyncio.timeout(self.step_timeout * 2 + 1):
                if step in (Step.MAIL, Step.RCPT, Step.DATA, Step.MESSAGE):
                    await self.recorder.run(Step.RSET, "RSET",
                                            lambda: self.smtp.rset(timeout=self.step_timeout),
                                            expect={250}, fatal=False)
                if self.smtp.is_connected:
                    await self._quit()
        except TimeoutError:
            pass

    # -- TLS facts -------------------------------------------------------------------

    def _session_tls(self) -> TlsInfo:
        ssl_object = self.smtp.get_transport_info("ssl_object")
        verify_error = None if self.provider.tls_verify else "not verified (tls_verify: false)"
        return tlsinfo.describe_session(ssl_object, verified=self.provider.tls_verify,
                                        verify_error=verify_error)

    async def _port_speaks_tls(self) -> bool:
        """After a silent banner: is this an implicit-TLS port probed in plaintext?"""
        try:
            async with asyncio.timeout(self.step_timeout):
                _, writer = await asyncio.open_connection(
                    self.provider.host, self.provider.port, ssl=tlsinfo.inspection_context(),
                    server_hostname=self.provider.host)
                writer.close()
                return True
        except Exception:  # anything but a completed handshake means "no"
            return False

    async def _inspect_failed_tls(self, reason: str) -> TlsInfo:
        """A second, non-verifying handshake, only to report the certificate we refused."""
        p = self.provider
        inspector = aiosmtplib.SMTP(
            hostname=p.host, port=p.port, local_hostname=self.helo, timeout=self.step_timeout,
            use_tls=p.tls is TlsMode.IMPLICIT, start_tls=False,
            tls_context=tlsinfo.inspection_context())
        info = TlsInfo(verified=False, verify_error=reason)
        try:
            async with asyncio.timeout(self.step_timeout * 3):
                await inspector.connect()
                if p.tls is TlsMode.STARTTLS:
                    await inspector.ehlo()
                    await inspector.starttls(tls_context=tlsinfo.inspection_context())
                found = tlsinfo.describe_session(inspector.get_transport_info("ssl_object"),
                                                 verified=False, verify_error=reason)
                info = found
        except Exception:  # the certificate is a courtesy; the failure is already recorded
            pass
        finally:
            inspector.close()
        return info


def choose_mechanism(auth: AuthConfig, offered: tuple[str, ...]) -> str | None:
    """The configured mechanism if offered; for `auto` the strongest both sides support."""
    if auth.mechanism is not AuthMechanism.AUTO:
        return auth.mechanism.value if auth.mechanism.value in offered else None
    if auth.token is not None and auth.password is None:
        return "XOAUTH2" if "XOAUTH2" in offered else None
    return next((m for m in MECHANISM_PREFERENCE if m in offered), None)


def _credential_needles(auth: AuthConfig | None) -> tuple[str, ...]:
    if auth is None:
        return ()
    secrets = [s.get_secret_value() for s in (auth.password, auth.token) if s is not None]
    return tuple(n for secret in secrets for n in _auth_needles(auth.username, secret))


# Six base64 encodings per secret, the same on every probe of a provider.
_auth_needles = functools.lru_cache(maxsize=1024)(auth_needles)


def _secret(auth: AuthConfig, mechanism: str) -> str:
    secret = auth.token if mechanism == "XOAUTH2" else auth.password
    return secret.get_secret_value() if secret is not None else ""


__all__ = ["choose_mechanism", "run_probe"]
