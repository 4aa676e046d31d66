"""Event detection as literal sequences of ticks, with an assertion after each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.config import Thresholds
from monitor.events.detect import DeliveryObservation, detect, detect_delivery
from monitor.events.model import EventType
from monitor.events.state import Health, ProviderState
from monitor.probe.result import (
    Capabilities,
    Certificate,
    FailureClass,
    ProbeResult,
    Step,
    StepResult,
    TlsInfo,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = Thresholds(failure=2, recovery=1, latency_ms=1000)
OK_RCPT = StepResult(step=Step.RCPT, command="RCPT", code=250, enhanced_code="2.1.5",
                     recipient="a@x.test")


def run(*, rcpt: tuple[int, str] | None = None, ok: bool | None = None, duration: float = 50,
        caps: tuple[str, ...] = ("PIPELINING", "STARTTLS"), not_after: datetime | None = None,
        fingerprint: str = "aa", network: bool = False) -> ProbeResult:
    steps = [StepResult(step=Step.CONNECT, command="connect", code=220)]
    failure_class = None
    if network:
        steps = [StepResult(step=Step.CONNECT, command="connect", ok=False,
                            failure_class=FailureClass.NETWORK, text="connection refused")]
        failure_class = FailureClass.NETWORK
    elif rcpt is not None:
        code, enhanced = rcpt
        bad = code >= 400
        failure_class = (FailureClass.TRANSIENT if code < 500 else FailureClass.PERMANENT) \
            if bad else None
        steps.append(OK_RCPT.model_copy(update={
            "code": code, "enhanced_code": enhanced, "ok": not bad,
            "failure_class": failure_class}))
    tls = None
    if not_after is not None:
        tls = TlsInfo(verified=True, certificate=Certificate(
            subject="CN=x", issuer="CN=ca", not_after=not_after, fingerprint_sha256=fingerprint))
    passed = failure_class is None if ok is None else ok
    return ProbeResult(
        run_id="r", provider="p", host="h", port=465, tls_mode="implicit", mode="send",
        started_at=NOW, duration_ms=duration, ok=passed, steps=tuple(steps),
        capabilities=None if network else Capabilities(extensions=caps), tls=tls,
        failure_class=failure_class,
        failed_step=steps[-1].step if failure_class else None)


class Ticks:
    """Feeds results one by one, keeping state like the service does."""

    def __init__(self, state: ProviderState | None = None, policy: Thresholds = POLICY) -> None:
        self.state = state or ProviderState()
        self.policy = policy
        self.now = NOW

    def tick(self, result: ProbeResult) -> list[str]:
        self.now += timedelta(minutes=1)
        self.state, events = detect(self.state, result, self.policy, self.now)
        return [e.type.value for e in events]


def test_failure_after_threshold_then_recovery() -> None:
    t = Ticks()
    assert t.tick(run(rcpt=(250, "2.1.5"))) == []
    assert t.state.health is Health.UP
    assert t.tick(run(network=True)) == []
    assert t.tick(run(network=True)) == ["probe.failed"]
    assert t.state.health is Health.DOWN
    assert t.tick(run(network=True)) == []  # still down: no repeat
    assert t.tick(run(rcpt=(250, "2.1.5"))) == ["probe.recovered"]
    assert t.tick(run(rcpt=(250, "2.1.5"))) == []


def test_flapping_below_threshold_raises_nothing() -> None:
    t = Ticks()
    for result in (run(), run(network=True), run(), run(network=True), run()):
        assert t.tick(result) == []
    assert t.state.health is Health.UP


def test_recovery_threshold_counts_successes() -> None:
    t = Ticks(policy=Thresholds(failure=1, recovery=3))
    assert t.tick(run(network=True)) == ["probe.failed"]
    assert t.tick(run()) == []
    assert t.tick(run()) == []
    assert t.tick(run()) == ["probe.recovered"]


def test_first_failures_from_unknown_state_alert() -> None:
    t = Ticks()
    assert t.tick(run(network=True)) == []
    assert t.tick(run(network=True)) == ["probe.failed"]


def test_code_changed_between_success_and_failure_and_between_failures() -> None:
    t = Ticks()
    assert t.tick(run(rcpt=(250, "2.1.5"))) == []
    assert t.tick(run(rcpt=(451, "4.3.0"))) == ["probe.code_changed"]
    events = t.tick(run(rcpt=(550, "5.1.1")))
    assert events == ["probe.code_changed", "probe.failed"]
    assert t.tick(run(rcpt=(550, "5.1.1"))) == []
    # 250 -> 251 is a change too, and the recovery.
    assert t.tick(run(rcpt=(251, "2.1.5"))) == ["probe.code_changed", "probe.recovered"]


def test_code_changed_carries_step_previous_current() -> None:
    state = ProviderState()
    state, _ = detect(state, run(rcpt=(451, "4.3.0")), POLICY, NOW)
    _, events = detect(state, run(rcpt=(550, "5.1.1")), POLICY, NOW)
    changed = events[0]
    assert changed.type is EventType.PROBE_CODE_CHANGED
    assert changed.data == {"step": "rcpt", "recipient": "a@x.test",
                            "previous": {"code": 451, "enhanced_code": "4.3.0"},
                            "current": {"code": 550, "enhanced_code": "5.1.1"}}


def test_enhanced_code_change_alone_counts() -> None:
    t = Ticks()
    t.tick(run(rcpt=(550, "5.1.1")))
    assert t.tick(run(rcpt=(550, "5.7.1"))) == ["probe.code_changed", "probe.failed"]


def test_failure_event_carries_the_failing_step() -> None:
    state = ProviderState(consecutive_failures=1, health=Health.UP)
    _, events = detect(state, run(rcpt=(550, "5.1.1")), POLICY, NOW)
    failed = next(e for e in events if e.type is EventType.PROBE_FAILED)
    assert failed.data["step"] == "rcpt" and failed.data["code"] == 550
    assert failed.data["enhanced_code"] == "5.1.1" and failed.data["class"] == "permanent"
    envelope = failed.envelope()
    assert envelope["type"] == "probe.failed"
    assert envelope["data"]["provider"] == "p" and envelope["data"]["event_id"] == failed.id
    assert envelope["data"]["run_id"] == "r" and envelope["timestamp"].endswith("Z")


def test_capabilities_changed() -> None:
    t = Ticks()
    assert t.tick(run(caps=("PIPELINING", "STARTTLS"))) == []
    assert t.tick(run(caps=("PIPELINING",))) == ["probe.capabilities_changed"]
    assert t.tick(run(caps=("PIPELINING",))) == []
    # A run that never reached EHLO says nothing about capabilities.
    assert t.tick(run(network=True)) == []
    assert t.tick(run(caps=("PIPELINING",))) == []


def test_degraded_and_latency_recovered() -> None:
    t = Ticks()
    assert t.tick(run(duration=200)) == []
    assert t.tick(run(duration=1500)) == ["probe.degraded"]
    assert t.tick(run(duration=1700)) == []
    assert t.tick(run(network=True, duration=5000)) == []
    assert t.tick(run(duration=300)) == ["probe.latency_recovered"]


def test_certificate_expiring_once_per_threshold_and_after_restart() -> None:
    t = Ticks()
    not_after = NOW + timedelta(days=5, hours=12)
    assert t.tick(run(not_after=not_after)) == ["tls.certificate_expiring"]
    assert t.tick(run(not_after=not_after)) == []
    # A restart reloads the stored state (JSON round trip) and stays quiet.
    t.state = ProviderState.model_validate_json(t.state.model_dump_json())
    assert t.tick(run(not_after=not_after)) == []
    t.now = not_after - timedelta(hours=20)  # under a day left: the 1-day threshold
    assert t.tick(run(not_after=not_after)) == ["tls.certificate_expiring"]
    assert t.tick(run(not_after=not_after)) == []


def test_certificate_renewal_resolves_the_warning_and_resets_thresholds() -> None:
    t = Ticks()
    assert t.tick(run(not_after=NOW + timedelta(days=10), fingerprint="old")) == [
        "tls.certificate_expiring"]
    assert t.tick(run(not_after=NOW + timedelta(days=90), fingerprint="new")) == [
        "tls.certificate_renewed"]
    assert t.tick(run(not_after=NOW + timedelta(days=90), fingerprint="new")) == []
    t.now += timedelta(days=70)
    assert t.tick(run(not_after=NOW + timedelta(days=90), fingerprint="new")) == [
        "tls.certificate_expiring"]


def test_a_new_certificate_nobody_was_warned_about_is_no_renewal() -> None:
    t = Ticks()
    assert t.tick(run(not_after=NOW + timedelta(days=90), fingerprint="a")) == []
    assert t.tick(run(not_after=NOW + timedelta(days=80), fingerprint="b")) == []
    # Replaced by one that expires soon too: still expiring, not renewed.
    assert t.tick(run(not_after=NOW + timedelta(days=6), fingerprint="c")) == [
        "tls.certificate_expiring"]
    assert t.tick(run(not_after=NOW + timedelta(days=5), fingerprint="d")) == [
        "tls.certificate_expiring"]


def test_expiring_event_names_the_nearest_threshold() -> None:
    _, events = detect(ProviderState(), run(not_after=NOW + timedelta(days=5)), POLICY, NOW)
    assert events[0].data["threshold_days"] == 7


def test_restart_resumes_counting_without_realerting() -> None:
    t = Ticks()
    t.tick(run(network=True))
    t.state = ProviderState.model_validate_json(t.state.model_dump_json())
    assert t.tick(run(network=True)) == ["probe.failed"]
    t.state = ProviderState.model_validate_json(t.state.model_dump_json())
    assert t.tick(run(network=True)) == []


def obs(arrived: bool, placement: str | None = "inbox") -> DeliveryObservation:
    return DeliveryObservation(run_id="r", token="t", mailbox="m", arrived=arrived,
                               placement=placement if arrived else None,
                               ok=arrived and placement != "junk")


def test_delivery_failed_recovered_and_junk() -> None:
    state = ProviderState()
    kinds = []
    for observation in (obs(True), obs(False), obs(False), obs(True), obs(True, "junk"),
                        obs(True, "inbox")):
        state, events = detect_delivery(state, "p", observation, NOW)
        kinds.append([e.type.value for e in events])
    assert kinds == [[], ["delivery.failed"], [], ["delivery.recovered"], ["delivery.failed"],
                     ["delivery.recovered"]]


def test_junk_delivery_event_says_why() -> None:
    _, events = detect_delivery(ProviderState(delivery=Health.UP), "p", obs(True, "junk"), NOW)
    assert events[0].data["message"] == "landed in junk"
    assert events[0].data["class"] == "delivery"


def test_two_seed_mailboxes_one_in_junk_does_not_flap() -> None:
    state = ProviderState()
    kinds = []
    for mailbox, placement in (("gmail", "junk"), ("outlook", "inbox"), ("gmail", "junk"),
                               ("outlook", "inbox"), ("gmail", "inbox"), ("outlook", "inbox")):
        observation = DeliveryObservation(run_id="r", token="t", mailbox=mailbox, arrived=True,
                                          placement=placement, ok=placement == "inbox")
        state, events = detect_delivery(state, "p", observation, NOW)
        kinds.append([e.type.value for e in events])
    assert kinds == [["delivery.failed"], [], [], [], ["delivery.recovered"], []]


def test_late_arrival_fails_delivery_with_its_reason() -> None:
    late = DeliveryObservation(run_id="r", token="t", mailbox="m", arrived=True,
                               placement="inbox", ok=False, failure_class="delivery",
                               message="arrived 4.0s after the deadline")
    _, events = detect_delivery(ProviderState(delivery=Health.UP), "p", late, NOW)
    assert [e.type.value for e in events] == ["delivery.failed"]
    assert events[0].data["message"] == "arrived 4.0s after the deadline"


def test_a_mailbox_removed_from_the_config_no_longer_holds_delivery_down() -> None:
    state = ProviderState()
    for mailbox, ok in (("gone", False), ("kept", True)):
        observation = DeliveryObservation(run_id="r", token="t", mailbox=mailbox, arrived=ok,
                                          placement="inbox" if ok else None, ok=ok)
        state, events = detect_delivery(state, "p", observation, NOW)
    assert state.delivery is Health.DOWN  # "gone" is still configured: its miss counts
    observation = DeliveryObservation(run_id="r", token="t", mailbox="kept", arrived=True,
                                      placement="inbox", ok=True)
    state, events = detect_delivery(state, "p", observation, NOW, configured=["kept"])
    assert [e.type.value for e in events] == ["delivery.recovered"]
    assert state.mailboxes == {"kept": True}


def tls_run(*, starttls_offered: bool, tls_ok: bool, auth: tuple[str, ...]) -> ProbeResult:
    """A tls-mode run: pre-TLS EHLO, then STARTTLS (ok or 454) and EHLO again."""
    steps = [StepResult(step=Step.CONNECT, command="c", code=220),
             StepResult(step=Step.EHLO, command="e", code=250)]
    failure = None
    if not starttls_offered:
        failure = FailureClass.TLS
        steps.append(StepResult(step=Step.STARTTLS, command=None, ok=False,
                                failure_class=failure, text="not offered"))
    elif not tls_ok:
        failure = FailureClass.TRANSIENT
        steps.append(StepResult(step=Step.STARTTLS, command="STARTTLS", code=454, ok=False,
                                failure_class=failure))
    else:
        steps += [StepResult(step=Step.STARTTLS, command="STARTTLS", code=220),
                  StepResult(step=Step.EHLO_TLS, command="e", code=250)]
    caps = Capabilities(extensions=("PIPELINING", "AUTH") if auth else ("PIPELINING",),
                        auth_mechanisms=auth, starttls=starttls_offered)
    return ProbeResult(run_id="r", provider="p", host="h", port=587, tls_mode="starttls",
                       mode="tls", started_at=NOW, duration_ms=5, ok=failure is None,
                       steps=tuple(steps), capabilities=caps, failure_class=failure)


def test_a_run_stopped_before_ehlo_after_tls_changes_no_capability() -> None:
    t = Ticks()
    assert t.tick(tls_run(starttls_offered=True, tls_ok=True, auth=("PLAIN",))) == []
    # 454 at STARTTLS: the pre-TLS EHLO lacks AUTH, which is not a change.
    assert "probe.capabilities_changed" not in t.tick(
        tls_run(starttls_offered=True, tls_ok=False, auth=()))
    assert "probe.capabilities_changed" not in t.tick(
        tls_run(starttls_offered=True, tls_ok=True, auth=("PLAIN",)))


def test_starttls_withdrawn_is_a_capability_change() -> None:
    t = Ticks()
    t.tick(tls_run(starttls_offered=True, tls_ok=True, auth=("PLAIN",)))
    t.tick(tls_run(starttls_offered=False, tls_ok=False, auth=()))
    changed = [e for e in detect(t.state, tls_run(starttls_offered=True, tls_ok=True,
                                                  auth=("PLAIN",)), POLICY, NOW)[1]
               if e.type is EventType.PROBE_CAPABILITIES_CHANGED]
    assert changed and changed[0].data == {"added": ["STARTTLS"], "removed": []}
