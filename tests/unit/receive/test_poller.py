"""Matching and measurement against a scripted backend: statuses, latencies, errors."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import MailboxConfig
from monitor.probe.result import FailureClass
from monitor.receive import BACKENDS, ReceiveOptions, ReceiveResult, ReceiveStatus, poll_pending
from monitor.receive.backend import Scan, ScanAbandoned, Trace
from monitor.receive.errors import ReceiveError
from monitor.receive.poller import pending_tokens, wait_for_arrival
from monitor.receive.result import AuthVerdict, Placement
from tests.unit.receive.fakes import FakeBackend, backends, found, mailbox_config, pending

T0 = datetime(2026, 11, 30, 12, 0, 0, 250_000, tzinfo=UTC)
AR = "Authentication-Results: mx.test; spf=pass smtp.mailfrom=a; dkim=fail header.d=a\r\n"


async def test_arrival_measured_from_data_accepted() -> None:
    fake = FakeBackend({"t1": found("t1", T0 + timedelta(seconds=4), extra=AR,
                                    received=T0.replace(microsecond=0) + timedelta(seconds=2))})
    [result] = await poll_pending(mailbox_config("m"), [pending("t1", "m", T0)],
                                   T0 + timedelta(seconds=4), backends=backends(fake))
    assert result.status is ReceiveStatus.ARRIVED and result.ok and result.arrived
    assert result.latency_ms == 1750.0  # to the Received timestamp
    assert result.seen_latency_ms == 4000.0  # to when the poller saw it
    assert (result.folder, result.placement, result.deleted) == ("INBOX", Placement.INBOX, True)
    assert (result.spf, result.dkim, result.dmarc) == (AuthVerdict.PASS, AuthVerdict.FAIL, None)
    assert result.authserv_id == "mx.test" and result.failure_class is None


async def test_received_within_its_resolution_is_clamped_without_a_note() -> None:
    # Received says 12:00:00, DATA was accepted at 12:00:00.250: the same second.
    fake = FakeBackend({"t": found("t", T0 + timedelta(seconds=1),
                                   received=T0.replace(microsecond=0))})
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                   backends=backends(fake))
    assert result.latency_ms == 0.0
    assert not any("clock" in note for note in result.notes)


async def test_skewed_receiver_clock_is_noted() -> None:
    fake = FakeBackend({"t": found("t", T0 + timedelta(seconds=1),
                                   received=T0 - timedelta(minutes=5))})
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                   backends=backends(fake))
    assert result.latency_ms == 0.0
    assert any("clock is off" in note for note in result.notes)


async def test_a_receiver_clock_running_ahead_does_not_make_it_late() -> None:
    fake = FakeBackend({"t": found("t", T0 + timedelta(seconds=2),
                                   received=T0 + timedelta(hours=2))})
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                   backends=backends(fake))
    assert result.status is ReceiveStatus.ARRIVED and result.latency_ms == 2000.0
    assert any("clock is off" in note for note in result.notes)


async def test_without_received_latency_is_time_to_seen() -> None:
    fake = FakeBackend({"t": found("t", T0 + timedelta(seconds=3))})
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                   backends=backends(fake))
    assert result.latency_ms == result.seen_latency_ms == 3000.0
    assert result.received_at is None


async def test_junk_arrival_is_a_delivery_failure_with_a_diagnosis() -> None:
    fake = FakeBackend({"t": found("t", T0, folder="Junk", placement=Placement.JUNK)})
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                   backends=backends(fake))
    assert result.status is ReceiveStatus.ARRIVED and result.arrived and not result.ok
    assert result.placement is Placement.JUNK
    assert result.failure_class is FailureClass.DELIVERY
    assert result.error == "landed in the junk folder 'Junk', not the inbox"
    assert result.diagnosis is not None and "junk folder" in result.diagnosis.summary
    assert "SPF/DKIM/DMARC" in result.diagnosis.action


async def test_late_and_missing_carry_a_diagnosis_with_a_next_step() -> None:
    late_fake = FakeBackend({"t": found("t", T0 + timedelta(minutes=10))})
    [late] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)],
                                 T0 + timedelta(minutes=10), backends=backends(late_fake))
    [missing] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)],
                                    T0 + timedelta(minutes=10), backends=backends(FakeBackend()))
    assert late.status is ReceiveStatus.LATE and missing.status is ReceiveStatus.MISSING
    assert late.diagnosis is not None and "after the deadline" in late.diagnosis.summary
    assert missing.diagnosis is not None and "not seen" in missing.diagnosis.summary
    assert late.diagnosis.action and missing.diagnosis.action


async def test_not_found_is_pending_before_the_deadline_and_missing_from_it() -> None:
    config, fake = mailbox_config("m"), FakeBackend()
    token = pending("t", "m", T0, timedelta(seconds=60))
    [before] = await poll_pending(config, [token], token.deadline - timedelta(microseconds=1),
                                   backends=backends(fake))
    assert before.status is ReceiveStatus.PENDING and not before.settled
    [at] = await poll_pending(config, [token], token.deadline, backends=backends(fake))
    assert at.status is ReceiveStatus.MISSING and at.settled and not at.ok
    assert at.failure_class is FailureClass.DELIVERY
    assert at.error == "not seen in INBOX, Junk within 60s of DATA being accepted"


async def test_found_after_the_deadline_is_late() -> None:
    fake = FakeBackend({"t": found("t", T0 + timedelta(seconds=90))})
    token = pending("t", "m", T0, timedelta(seconds=60))
    [result] = await poll_pending(mailbox_config("m"), [token], T0 + timedelta(seconds=90),
                                   backends=backends(fake))
    assert result.status is ReceiveStatus.LATE and result.arrived and not result.ok
    assert result.failure_class is FailureClass.DELIVERY
    assert result.error == "arrived 30.0s after the deadline"


async def test_one_scan_per_mailbox_for_tokens_of_any_earlier_send() -> None:
    fake = FakeBackend({"old": found("old", T0), "new": found("new", T0)})
    items = [pending("old", "a", T0 - timedelta(minutes=3), timedelta(minutes=5)),
             pending("new", "a", T0),
             pending("other", "b", T0)]
    results = await poll_pending(mailbox_config("a", "b"), items, T0, backends=backends(fake))
    assert sorted(fake.calls, key=len) == [frozenset({"other"}), frozenset({"old", "new"})]
    assert [(r.token, r.mailbox, r.status) for r in results] == [
        ("old", "a", ReceiveStatus.ARRIVED), ("new", "a", ReceiveStatus.ARRIVED),
        ("other", "b", ReceiveStatus.PENDING)]
    assert results[0].seen_latency_ms == 180_000.0


async def test_mailbox_errors_are_classified_with_context_never_raised() -> None:
    cases = [
        (ConnectionRefusedError(111, "Connection refused"), "connect", FailureClass.NETWORK),
        (socket.gaierror(-2, "Name or service not known"), "connect", FailureClass.NETWORK),
        (ReceiveError(FailureClass.TLS, "server does not offer STARTTLS"), "starttls",
         FailureClass.TLS),
        (ValueError("bad literal"), "fetch", FailureClass.PROTOCOL),
    ]
    for exc, step, failure_class in cases:
        fake = FakeBackend(error=exc, step=step)
        [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                       backends=backends(fake))
        assert result.status is ReceiveStatus.ERROR, exc
        assert (result.failure_class, result.step) == (failure_class, step)
        assert result.error is not None
        assert result.error.startswith(f"mailbox m (maildir) at {step}")
        assert not result.settled  # before the deadline: keep the token
    [late] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)],
                                 T0 + timedelta(hours=1), backends=backends(fake))
    assert late.status is ReceiveStatus.ERROR and late.settled


async def test_a_hung_backend_is_cut_at_check_timeout() -> None:
    fake = FakeBackend(delay=30, step="search")
    started = time.monotonic()
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                   options=ReceiveOptions(scan_timeout=0.2),
                                   backends=backends(fake))
    assert time.monotonic() - started < 2
    assert (result.failure_class, result.step) == (FailureClass.TIMEOUT, "search")


async def test_unknown_mailbox_is_a_permanent_error() -> None:
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "gone", T0)], T0,
                                   backends=backends(FakeBackend()))
    assert result.failure_class is FailureClass.PERMANENT and result.status is ReceiveStatus.ERROR


@dataclass
class FakeTime:
    """The clock wait_for_arrival reads and the sleep it waits with: sleeping moves
    the clock, so polling schedules are checked exactly and take no wall time."""

    now: datetime
    slept: list[float] = field(default_factory=list)
    on_sleep: Callable[[datetime], None] | None = None

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            self.on_sleep(self.now)
        await asyncio.sleep(0)


async def test_wait_for_arrival_polls_until_found() -> None:
    fake = FakeBackend()
    token = pending("t", "m", T0, timedelta(seconds=10))
    progress: list[float] = []
    clock = FakeTime(T0)

    def deliver_at_half_a_second(now: datetime) -> None:
        if now >= T0 + timedelta(seconds=0.5) and "t" not in fake.messages:
            fake.messages["t"] = found("t", now)

    clock.on_sleep = deliver_at_half_a_second
    result = await wait_for_arrival(mailbox_config("m"), token, progress.append,
                                    backends=backends(fake), first_interval=0.1,
                                    clock=clock, sleep=clock.sleep)
    assert result.status is ReceiveStatus.ARRIVED
    # 0.1, 0.15, 0.225 then 0.3375 s: the fourth sleep passes 0.5 s, the fifth check finds it.
    assert clock.slept == [0.1, 0.15, 0.225, 0.3375]
    assert len(fake.calls) == 5
    assert progress == [0.0, 0.1, 0.25, 0.475]


async def test_wait_for_arrival_ends_missing_at_the_deadline() -> None:
    token = pending("t", "m", T0, timedelta(seconds=1))
    clock = FakeTime(T0)
    result = await wait_for_arrival(mailbox_config("m"), token, backends=backends(FakeBackend()),
                                    max_interval=0.3, clock=clock, sleep=clock.sleep)
    assert result.status is ReceiveStatus.MISSING
    assert result.checked_at == token.deadline  # the last check starts at the deadline
    assert clock.slept == [0.2, 0.3, 0.3, 0.2]
    assert clock.now == token.deadline


async def test_wait_for_arrival_gives_up_at_once_on_auth_but_retries_network() -> None:
    token = pending("t", "m", T0, timedelta(seconds=0.6))
    refused = ReceiveError(FailureClass.AUTH, "login refused")
    fake = FakeBackend(error=refused, step="login")
    clock = FakeTime(T0)
    result = await wait_for_arrival(mailbox_config("m"), token, backends=backends(fake),
                                    clock=clock, sleep=clock.sleep)
    assert result.failure_class is FailureClass.AUTH and len(fake.calls) == 1
    assert clock.slept == []

    fake = FakeBackend(error=ConnectionRefusedError(111, "refused"))
    clock = FakeTime(T0)
    result = await wait_for_arrival(mailbox_config("m"), token, backends=backends(fake),
                                    first_interval=0.05, max_interval=0.1,
                                    clock=clock, sleep=clock.sleep)
    assert result.failure_class is FailureClass.NETWORK and result.settled
    # Retried every 0.05, 0.075, then 0.1 s up to the deadline, which ends it.
    assert len(fake.calls) == len(clock.slept) + 1 and clock.now == token.deadline


def test_result_json_round_trips() -> None:
    result = ReceiveResult(token="t", run_id="r", provider="p", mailbox="m", backend="imap",
                           status=ReceiveStatus.ARRIVED, checked_at=T0, accepted_at=T0,
                           deadline=T0, placement=Placement.JUNK)
    data = result.model_dump(mode="json")
    assert (data["arrived"], data["ok"], data["settled"]) == (True, False, True)
    assert ReceiveResult.model_validate(data) == result
    assert ReceiveResult.model_validate_json(result.model_dump_json()) == result


def test_pending_tokens_for_mailboxes_named_or_addressed() -> None:
    from monitor.config import Config, ProviderConfig
    from monitor.probe.result import ProbeResult

    base = mailbox_config("a", "b", deliver_within="2m")
    provider = ProviderConfig.model_validate({
        "name": "p", "host": "h", "mode": "send", "from": "x@example.test",
        "to": ["a", "b@example.test", "stranger@example.org"]})
    config = Config(providers=(provider,), mailboxes=base.mailboxes)
    result = ProbeResult(run_id="r1", provider="p", host="h", port=587, tls_mode="starttls",
                         mode="send", started_at=T0, duration_ms=1, ok=True, steps=(),
                         token="dm-1", accepted_at=T0)
    tokens = pending_tokens(result, config)
    assert [(t.mailbox, t.deadline - t.accepted_at) for t in tokens] == [
        ("a", timedelta(minutes=2)), ("b", timedelta(minutes=2))]
    assert pending_tokens(result.model_copy(update={"accepted_at": None}), config) == []


@dataclass
class CommittedThenSlow:
    """A backend that has begun deleting (committed) when scan_timeout strikes."""

    async def scan(self, mailbox: MailboxConfig, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        trace.step = "delete"
        trace.commit()
        await asyncio.sleep(0.5)  # slow deletions
        return Scan(found={t: found(t, T0) for t in tokens}, folders=("INBOX",))


async def test_a_scan_already_deleting_at_check_timeout_is_waited_for() -> None:
    [result] = await poll_pending(mailbox_config("m"), [pending("t", "m", T0)], T0,
                                   options=ReceiveOptions(scan_timeout=0.1),
                                   backends=dict.fromkeys(BACKENDS, CommittedThenSlow()))
    # What it deleted is reported, not lost to a timeout (then "missing" next time).
    assert (result.status, result.deleted) == (ReceiveStatus.ARRIVED, True)


def test_trace_abandon_and_commit_exclude_each_other() -> None:
    abandoned = Trace(step="fetch")
    assert abandoned.abandon()
    with pytest.raises(ScanAbandoned):
        abandoned.checkpoint()
    with pytest.raises(ScanAbandoned):
        abandoned.commit()  # the backend must not delete now
    committed = Trace()
    committed.commit()
    assert not committed.abandon()  # the poller must wait for the result
    committed.checkpoint()  # and the backend carries on
