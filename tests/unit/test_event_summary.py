"""One line per event (`monitor events`, the demo): from what detection really emits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.events.detect import DeliveryObservation, detect, detect_delivery
from monitor.events.model import Event, EventType
from monitor.events.state import Health, ProviderState
from monitor.events.summary import failure, reply, summary
from tests.unit.test_detect import NOW, POLICY, run


def emitted(previous: ProviderState, *results: Any) -> list[Event]:
    state, events = previous, []
    for result in results:
        state, new = detect(state, result, POLICY, NOW)
        events += new
    return events


def only(events: list[Event], kind: EventType) -> Event:
    [event] = [e for e in events if e.type is kind]
    return event


def line(event: Event) -> str:
    return summary(event.type, event.data)


def test_failure_and_code_change_read_as_the_probe_says_them() -> None:
    events = emitted(ProviderState(), run(rcpt=(250, "2.1.5")), run(rcpt=(451, "4.3.0")),
                     run(rcpt=(550, "5.1.1")))
    assert line(only(events, EventType.PROBE_FAILED)) == "rcpt 550 5.1.1 (permanent)"
    changes = [line(e) for e in events if e.type is EventType.PROBE_CODE_CHANGED]
    assert changes == ["rcpt a@x.test: 250 2.1.5 -> 451 4.3.0",
                       "rcpt a@x.test: 451 4.3.0 -> 550 5.1.1"]


def test_a_probe_that_never_connected() -> None:
    events = emitted(ProviderState(), run(network=True), run(network=True))
    assert line(only(events, EventType.PROBE_FAILED)) == "connect (network)"


def test_recovery_capabilities_and_latency() -> None:
    down = ProviderState(health=Health.DOWN, consecutive_failures=3,
                         capabilities=("PIPELINING", "SIZE", "STARTTLS"))
    events = emitted(down, run(caps=("CHUNKING", "STARTTLS"), duration=1500),
                     run(caps=("CHUNKING", "STARTTLS"), duration=40))
    assert line(only(events, EventType.PROBE_RECOVERED)) == "ok in 1.5 s"
    assert line(only(events, EventType.PROBE_CAPABILITIES_CHANGED)) == \
        "+CHUNKING -PIPELINING -SIZE"
    assert line(only(events, EventType.PROBE_DEGRADED)) == "1.5 s against a 1.0 s threshold"
    assert line(only(events, EventType.PROBE_LATENCY_RECOVERED)) == \
        "40 ms under the 1.0 s threshold"


def test_certificate_expiring_then_renewed() -> None:
    events = emitted(ProviderState(), run(not_after=NOW + timedelta(days=6, hours=20)),
                     run(not_after=NOW + timedelta(days=90), fingerprint="bb"))
    assert line(only(events, EventType.TLS_CERTIFICATE_EXPIRING)) == \
        "certificate expires in 7 days"
    assert line(only(events, EventType.TLS_CERTIFICATE_RENEWED)) == \
        "certificate renewed, expires in 90 days"


def test_delivery_failed_and_recovered_name_the_mailbox() -> None:
    missing = DeliveryObservation(run_id="r", token="t", mailbox="seed-1", arrived=False,
                                  placement=None, ok=False)
    state, events = detect_delivery(ProviderState(), "p", missing, NOW)
    assert line(events[0]) == "seed-1: not seen before the deadline (delivery)"
    back = DeliveryObservation(run_id="r2", token="u", mailbox="seed-1", arrived=True,
                               placement="inbox", ok=True, latency_ms=1234.0)
    _, events = detect_delivery(state, "p", back, NOW)
    assert line(events[0]) == "seed-1 inbox after 1.2 s"


@pytest.mark.parametrize("kind", list(EventType))
def test_every_type_has_a_line_and_absent_keys_are_left_out(kind: EventType) -> None:
    text = summary(kind, {})
    assert "None" not in text and "{" not in text
    assert summary(kind.value, {}) == text  # as stored: the type is a string


def test_webhook_data_keys_are_ignored_and_unknown_types_still_show_their_data() -> None:
    envelope = {"provider": "p", "event_id": "e", "run_id": "r"}
    assert summary(EventType.PROBE_RECOVERED, {**envelope, "duration_ms": 12.0}) == "ok in 12 ms"
    assert summary("probe.from_the_future", {**envelope, "x": 1}) == "x=1"


def test_reply_and_failure() -> None:
    assert reply(550, "5.1.1") == "550 5.1.1" and reply(421, None) == "421"
    assert reply(None, None) == ""
    assert failure("rcpt", 451, "4.3.0", "transient") == "rcpt 451 4.3.0 (transient)"
    assert failure("connect", None, None, "network") == "connect (network)"
    assert failure(None, None, None, None) == "? (?)"
