"""run_check in-process: sandbox SMTP, Maildir seeds, a loopback DNS server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from monitor.checks import (
    CheckError,
    CheckReport,
    CheckRequest,
    CheckStatus,
    Stage,
    Verdict,
    completed_event,
    run_check,
)
from monitor.events.model import EventType
from monitor.probe.result import FailureClass
from monitor.receive import ReceiveStatus
from monitor.receive.result import Placement
from monitor.sandbox import Sandbox
from tests.unit.checks.conftest import DOMAIN, SENDER, SteeredMaildir, check_config
from tests.unit.checks.dnsserver import DnsServer, domain_records


def request(*seeds: str, **fields: Any) -> CheckRequest:
    return CheckRequest.model_validate({"provider": "sandbox", "from": SENDER,
                                        "seeds": list(seeds), **fields})


async def check(box: Sandbox, dns_server: DnsServer, req: CheckRequest,
                steer: SteeredMaildir | None = None, *, deliver_within: str = "20s",
                progress: list[CheckReport] | None = None, **provider: Any) -> CheckReport:
    config = check_config(box, *req.seeds, deliver_within=deliver_within, **provider)
    steer = steer or SteeredMaildir()

    async def on_progress(report: CheckReport) -> None:
        if progress is not None:
            progress.append(report)

    return await run_check(config, req, check_id="chk_test", dns_nameserver=dns_server.address,
                           receive_backends=steer.backends(), on_progress=on_progress,
                           dns_lifetime=2.0)


async def test_two_seeds_pass_with_codes_placement_and_progress(
        sandbox: Sandbox, dns_server: DnsServer) -> None:
    steer, progress = SteeredMaildir(), []
    started = time.monotonic()
    report = await check(sandbox, dns_server, request(
        "seed-1", "seed-2", subject="May newsletter", html="<p>Hello</p>"), steer,
        progress=progress)
    took = time.monotonic() - started
    assert (report.status, report.verdict, report.reasons) == (
        CheckStatus.DONE, Verdict.PASSED, []), report.reasons
    assert took < 10, f"a local check took {took:.1f}s"
    for seed, address in zip(report.seeds, ("seed-1@seeds.test", "seed-2@seeds.test"),
                             strict=True):
        assert seed.address == address and seed.accepted and seed.arrived
        assert [seed.code(s) for s in ("mail", "rcpt", "data", "message")] == [
            (250, "2.1.0"), (250, "2.1.5"), (354, None), (250, "2.0.0")]
        assert next(s for s in seed.smtp if s.step.value == "rcpt").recipient == address
        assert (seed.receive_status, seed.placement, seed.folder) == (
            ReceiveStatus.ARRIVED, Placement.INBOX, "INBOX")
        assert seed.latency_ms is not None and seed.latency_ms >= 0
        assert seed.stage is Stage.DONE and seed.error is None
    # One message per seed, each with its own token, carrying the campaign's content.
    assert sandbox.handler is not None and sandbox.handler.received == 2
    assert report.seeds[0].token != report.seeds[1].token
    assert steer.found["seed-1"]["Subject"] == "May newsletter"
    assert steer.found["seed-1"]["From"] == SENDER
    assert steer.found["seed-2"]["To"] == "seed-2@seeds.test"
    assert report.dns is not None and report.dns.domain == DOMAIN and report.dns.mx.present
    # Progress: a first snapshot, one per seed when its message is accepted (its token on
    # record, so another replica could resume the check), one per seed done, the report.
    assert progress[0].status is CheckStatus.RUNNING and progress[0].progress.seeds_done == 0
    done = [p.progress.seeds_done for p in progress]
    assert done == sorted(done) and done[-1] == 2 and len(progress) == 6
    accepted = [p for p in progress[1:-1] if p.progress.stage is Stage.WAITING
                and any(s.stage is Stage.WAITING and s.token for s in p.seeds)]
    assert accepted, "no snapshot recorded a token before its wait"
    assert progress[-1] == report and report.progress.stage is Stage.DONE
    assert report.finished_at is not None and report.started_at is not None


async def test_junk_seed_and_missing_dmarc_fail_with_exactly_those_reasons(
        sandbox: Sandbox) -> None:
    steer = SteeredMaildir(junk={"seed-2"})
    async with DnsServer(domain_records(DOMAIN, dmarc=None)) as server:
        report = await check(sandbox, server, request("seed-1", "seed-2"), steer)
    assert report.verdict is Verdict.FAILED
    assert report.reasons == ["seed-2: landed in Junk",
                              "check.test has no DMARC record (_dmarc.check.test)"]
    assert report.seeds[1].placement is Placement.JUNK and report.seeds[1].arrived
    assert report.seeds[0].placement is Placement.INBOX
    assert any("organizational-domain" in w for w in report.warnings)


async def test_a_refused_recipient_is_not_accepted_and_not_waited_for(
        sandbox: Sandbox, dns_server: DnsServer) -> None:
    sandbox.faults["rcpt"] = "550 5.1.1 No such user here"
    started = time.monotonic()
    report = await check(sandbox, dns_server, request("seed-1"), deliver_within="30s")
    assert time.monotonic() - started < 10  # no waiting on the receive side
    seed = report.seeds[0]
    assert not seed.accepted and not seed.arrived and seed.receive_status is None
    assert (seed.failed_step, seed.failure_class) == ("rcpt", FailureClass.PERMANENT)
    assert seed.code("rcpt") == (550, "5.1.1")
    assert report.reasons == [
        "seed-1: not accepted at RCPT 550 5.1.1 (permanent): No such user here"]


async def test_a_message_that_never_arrives(sandbox: Sandbox, dns_server: DnsServer) -> None:
    report = await check(sandbox, dns_server, request("seed-1", "seed-2"),
                         SteeredMaildir(lost={"seed-1"}), deliver_within="1s")
    assert report.seeds[0].receive_status is ReceiveStatus.MISSING
    assert report.seeds[1].arrived
    assert report.reasons == ["seed-1: did not arrive (not seen in INBOX, Junk within 1s of "
                              "DATA being accepted)"]


async def test_an_unreachable_provider_is_reported_not_raised(
        sandbox: Sandbox, dns_server: DnsServer, unused_tcp_port: int) -> None:
    report = await check(sandbox, dns_server, request("seed-1"), port=unused_tcp_port)
    assert report.status is CheckStatus.DONE and report.verdict is Verdict.FAILED
    assert report.seeds[0].failed_step == "connect"
    assert report.reasons[0].startswith("seed-1: not accepted at CONNECT (network)")
    assert report.dns is not None and report.dns.mx.present


async def test_unknown_provider_or_seed_raises_before_sending(
        sandbox: Sandbox, dns_server: DnsServer) -> None:
    config = check_config(sandbox, "seed-1")
    with pytest.raises(CheckError) as info:
        await run_check(config, request("seed-1").model_copy(update={"provider": "nope"}),
                        check_id="c")
    assert info.value.code == "unknown_provider" and "known: sandbox" in info.value.message
    with pytest.raises(CheckError) as info:
        await run_check(config, request("seed-1", "seed-9"), check_id="c")
    assert info.value.code == "unknown_seed" and info.value.details == {"seeds": ["seed-9"]}
    assert sandbox.handler is not None and sandbox.handler.received == 0


async def test_a_failing_progress_callback_does_not_fail_the_check(
        sandbox: Sandbox, dns_server: DnsServer) -> None:
    calls = 0

    async def broken(report: CheckReport) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("observer is down")

    report = await run_check(check_config(sandbox, "seed-1"), request("seed-1"), check_id="c",
                             dns_nameserver=dns_server.address, on_progress=broken,
                             receive_backends=SteeredMaildir().backends())
    assert report.verdict is Verdict.PASSED and calls == 4  # start, accepted, done, final


async def test_completed_event(sandbox: Sandbox, dns_server: DnsServer, tmp_path: Path) -> None:
    report = await check(sandbox, dns_server, request("seed-1"))
    event = completed_event(report)
    assert event.type is EventType.CHECK_COMPLETED and event.provider == "sandbox"
    body = event.envelope()
    assert body["type"] == "check.completed"
    assert body["data"]["check_id"] == "chk_test" and body["data"]["verdict"] == "passed"
    assert body["data"]["seeds_arrived"] == 1 and body["data"]["seeds_inbox"] == 1
    with pytest.raises(ValueError, match="not finished"):
        completed_event(report.model_copy(update={"status": CheckStatus.RUNNING}))
