"""A probe's TLS connections read into 4 KiB, not asyncio's 256 KiB; nothing else's do."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
from asyncio import sslproto

import aiosmtplib
import pytest

from monitor.probe import Step, run_probe, tls_buffer
from monitor.sandbox import CertificateFiles
from tests.unit.conftest import make_config
from tests.unit.scripted_smtp import DEFAULT_EHLO, HANG, ScriptedServer
from tests.waiting import until

SEND = {"mode": "send", "auth": {"username": "u", "password": "hunter2"},
        "from": "probe@example.test", "to": ["seed@example.test"],
        # The server hangs at MAIL; the test inspects the session, then cancels it.
        "timeout": "30s", "step_timeout": "20s"}


def _live_tls_protocols() -> list[sslproto.SSLProtocol]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, sslproto.SSLProtocol)
            and o._state is sslproto.SSLProtocolState.WRAPPED]


def _probe_side(protocol: sslproto.SSLProtocol) -> bool:
    return isinstance(protocol._app_protocol, aiosmtplib.protocol.SMTPProtocol)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_a_probe_reads_tls_into_the_cap_and_the_server_keeps_the_default(
        tls: str, server_ctx: ssl.SSLContext, good_certs: CertificateFiles) -> None:
    assert tls_buffer.applies(), "CPython's asyncio.sslproto has max_size from 3.11 on"
    contexts = {"starttls_context": server_ctx} if tls == "starttls" else \
        {"implicit_context": server_ctx}
    async with ScriptedServer(replies={"MAIL": HANG}, **contexts) as server:  # type: ignore[arg-type]
        config = make_config(port=server.port, tls=tls, ca_file=str(good_certs.ca_file), **SEND)
        probe = asyncio.create_task(run_probe(config.providers[0], config))
        try:
            await until(lambda: any(c.startswith("MAIL") for c in server.commands),
                        "the probe to reach MAIL over TLS", within=15)
            live = _live_tls_protocols()
            ours = [p for p in live if _probe_side(p)]
            theirs = [p for p in live if not _probe_side(p)]
            assert len(ours) == 1 and theirs, live
            assert ours[0].max_size == tls_buffer.READ_BUFFER
            assert len(ours[0]._ssl_buffer) == tls_buffer.READ_BUFFER
            # The server in this process built its TLS outside a probe: the default stays.
            default = sslproto.SSLProtocol.max_size
            assert default == 256 * 1024
            assert all(len(p._ssl_buffer) == default for p in theirs)
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe


async def test_a_reply_larger_than_the_buffer_arrives_whole(
        server_ctx: ssl.SSLContext, good_certs: CertificateFiles) -> None:
    # About 30 KiB after STARTTLS, under aiosmtplib's 32 KiB cap: many buffers' worth.
    extra = [f"250-X-PADDING-{n:04d} {'x' * 80}" for n in range(320)]
    ehlo = DEFAULT_EHLO.replace("250-PIPELINING", "\r\n".join(["250-STARTTLS", *extra,
                                                                "250-PIPELINING"]))
    assert len(ehlo) > 28 * 1024 > 2 * tls_buffer.READ_BUFFER
    async with ScriptedServer(replies={"EHLO": ehlo}, starttls_context=server_ctx) as server:
        config = make_config(port=server.port, tls="starttls", mode="send",
                             ca_file=str(good_certs.ca_file),
                             auth={"username": "u", "password": "hunter2"},
                             **{"from": "probe@example.test", "to": ["seed@example.test"]})
        result = await run_probe(config.providers[0], config)
    assert result.ok, result.failure
    ehlo_tls = next(s for s in result.steps if s.step is Step.EHLO_TLS)
    assert ehlo_tls.code == 250 and ehlo_tls.text.startswith("scripted.test")
    assert result.capabilities is not None
    assert sum(k.startswith("X-PADDING-") for k in result.capabilities.extensions) == 320
    assert result.capabilities.auth_mechanisms == ("PLAIN", "LOGIN")


def test_without_the_attribute_the_cap_stands_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    class OtherSSLProtocol:  # an asyncio whose SSL has no max_size
        def __init__(self) -> None:
            self.built = True

    monkeypatch.setattr(sslproto, "SSLProtocol", OtherSSLProtocol)
    assert not tls_buffer.applies()
    assert tls_buffer.install() is False
    assert OtherSSLProtocol.__init__.__name__ == "__init__"
    assert not hasattr(OtherSSLProtocol.__init__, "__wrapped__")
