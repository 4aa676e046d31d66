"""Event detection: (previous state, new result, policy) -> (new state, events).

Pure functions, no I/O and no clock of their own: the caller stores the state
and the events in one transaction. Tested as literal sequences of ticks.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.config import Thresholds
from monitor.events.model import Event, EventType
from monitor.events.state import Health, ProviderState
from monitor.ids import new_id
from monitor.probe.result import Capabilities, ProbeResult, Step, StepResult

# Days before expiry at which tls.certificate_expiring fires, once each (DESIGN.md).
CERT_THRESHOLDS = (30, 14, 7, 1)


@dataclass(frozen=True)
class DeliveryObservation:
    """The receive side's verdict on one sent message."""

    run_id: str
    token: str
    mailbox: str
    arrived: bool
    placement: str | None  # inbox | junk | other
    ok: bool  # ReceiveResult.ok: in time and not in junk
    latency_ms: float | None = None
    failure_class: str | None = None
    message: str = ""


def _event(kind: EventType, provider: str, now: datetime, run_id: str | None,
           **data: Any) -> Event:
    return Event(id=new_id(), type=kind, timestamp=now, provider=provider,
                 run_id=run_id, data=data)


def step_key(step: StepResult) -> str:
    return f"{step.step.value}:{step.recipient}" if step.recipient else step.step.value


def capability_set(caps: Capabilities) -> tuple[str, ...]:
    """Extensions plus AUTH mechanisms and SIZE: what `capabilities_changed` compares."""
    items = {e for e in caps.extensions if e not in ("AUTH", "SIZE")}
    if caps.starttls:
        items.add("STARTTLS")
    items |= {f"AUTH {m}" for m in caps.auth_mechanisms}
    if caps.size is not None:
        items.add(f"SIZE {caps.size}")
    return tuple(sorted(items))


def _capabilities(previous: tuple[str, ...] | None,
                  result: ProbeResult) -> tuple[str, ...] | None:
    """What this run says the capabilities are, comparable with the last full set.

    A run that stopped between the first EHLO and the EHLO after STARTTLS (a 454, a
    refused certificate) only saw the pre-TLS list, where AUTH is usually absent: it
    says whether STARTTLS is offered and nothing else.
    """
    caps = result.capabilities
    if caps is None:
        return previous
    complete = (result.tls_mode != "starttls" or result.mode == "connect"
                or any(s.step is Step.EHLO_TLS and s.ok for s in result.steps))
    if complete:
        return capability_set(caps)
    if previous is None:
        return None
    others = {c for c in previous if c != "STARTTLS"}
    return tuple(sorted(others | ({"STARTTLS"} if caps.starttls else set())))


def failure_data(result: ProbeResult) -> dict[str, Any]:
    failure = result.failure
    data: dict[str, Any] = {"class": result.failure_class.value if result.failure_class else None}
    if failure is not None:
        data |= {"step": failure.step.value, "code": failure.code,
                 "enhanced_code": failure.enhanced_code, "message": failure.text}
    if result.diagnosis is not None:
        data["diagnosis"] = {"summary": result.diagnosis.summary,
                             "action": result.diagnosis.action}
    return data


def detect(previous: ProviderState, result: ProbeResult, policy: Thresholds,
           now: datetime) -> tuple[ProviderState, list[Event]]:
    provider, run_id = result.provider, result.run_id
    events: list[Event] = []

    def emit(kind: EventType, **data: Any) -> None:
        events.append(_event(kind, provider, now, run_id, **data))

    # Code changes: every step both runs got a reply to, including between two failures.
    # A step without a reply (refused, timed out) is the failure's business, not a change.
    replied = {step_key(s): s for s in result.steps if s.code is not None}
    codes = {key: (s.code, s.enhanced_code) for key, s in replied.items()}
    for key, (code, enhanced) in codes.items():
        before = previous.codes.get(key)
        if before is not None and tuple(before) != (code, enhanced):
            emit(EventType.PROBE_CODE_CHANGED, step=replied[key].step.value,
                 recipient=replied[key].recipient,
                 previous={"code": before[0], "enhanced_code": before[1]},
                 current={"code": code, "enhanced_code": enhanced})

    capabilities = _capabilities(previous.capabilities, result)
    if previous.capabilities is not None and capabilities != previous.capabilities:
        assert capabilities is not None
        emit(EventType.PROBE_CAPABILITIES_CHANGED,
             added=sorted(set(capabilities) - set(previous.capabilities)),
             removed=sorted(set(previous.capabilities) - set(capabilities)))

    failures = 0 if result.ok else previous.consecutive_failures + 1
    successes = previous.consecutive_successes + 1 if result.ok else 0
    health = previous.health
    if not result.ok and health is not Health.DOWN and failures >= policy.failure:
        health = Health.DOWN
        emit(EventType.PROBE_FAILED, **failure_data(result))
    elif result.ok and health is Health.DOWN and successes >= policy.recovery:
        health = Health.UP
        emit(EventType.PROBE_RECOVERED, duration_ms=result.duration_ms)
    elif result.ok and health is Health.UNKNOWN:
        health = Health.UP

    degraded = previous.degraded
    if result.ok:  # a failed run's duration says nothing about latency
        slow = [s for s in result.steps if s.latency_ms > policy.latency_ms]
        over = result.duration_ms > policy.latency_ms
        if over and not degraded:
            degraded = True
            emit(EventType.PROBE_DEGRADED, duration_ms=result.duration_ms,
                 threshold_ms=policy.latency_ms, slow_steps=[step_key(s) for s in slow])
        elif not over and degraded:
            degraded = False
            emit(EventType.PROBE_LATENCY_RECOVERED, duration_ms=result.duration_ms,
                 threshold_ms=policy.latency_ms)

    fingerprint, alerted = previous.certificate_fingerprint, previous.certificate_alerted
    cert = result.tls.certificate if result.tls is not None else None
    if cert is not None and cert.not_after is not None:
        days_left = (cert.not_after - now).total_seconds() / 86400
        crossed = [t for t in CERT_THRESHOLDS if days_left <= t]
        if cert.fingerprint_sha256 != fingerprint:  # a new certificate starts afresh
            if alerted and not crossed:  # the one we warned about was replaced in time
                emit(EventType.TLS_CERTIFICATE_RENEWED, days_left=round(days_left, 2),
                     not_after=cert.not_after.isoformat(), subject=cert.subject,
                     issuer=cert.issuer)
            fingerprint, alerted = cert.fingerprint_sha256, ()
        if crossed and min(crossed) not in alerted:
            threshold = min(crossed)
            # Announce only the nearest threshold; the larger ones are implied.
            alerted = tuple(sorted(set(alerted) | set(crossed), reverse=True))
            emit(EventType.TLS_CERTIFICATE_EXPIRING, threshold_days=threshold,
                 days_left=round(days_left, 2), not_after=cert.not_after.isoformat(),
                 subject=cert.subject, issuer=cert.issuer)

    state = previous.model_copy(update={
        "health": health, "consecutive_failures": failures, "consecutive_successes": successes,
        "codes": {**previous.codes, **codes}, "capabilities": capabilities,
        "degraded": degraded, "certificate_fingerprint": fingerprint,
        "certificate_alerted": alerted, "last_run_id": run_id,
    })
    return state, events


def detect_delivery(previous: ProviderState, provider: str, observation: DeliveryObservation,
                    now: datetime, configured: Collection[str] | None = None,
                    ) -> tuple[ProviderState, list[Event]]:
    """Missing, late or junk-filed test messages fail delivery; it recovers when every
    seed mailbox's latest message arrived in the inbox again. `configured` (the
    provider's mailboxes now) drops the verdicts of mailboxes no longer sent to."""
    events: list[Event] = []
    delivery = previous.delivery
    mailboxes = {**previous.mailboxes, observation.mailbox: observation.ok}
    if configured is not None:
        keep = {*configured, observation.mailbox}
        mailboxes = {name: ok for name, ok in mailboxes.items() if name in keep}
    healthy = all(mailboxes.values())
    data: dict[str, Any] = {"mailbox": observation.mailbox, "token": observation.token,
                            "placement": observation.placement,
                            "latency_ms": observation.latency_ms}
    if not healthy and delivery is not Health.DOWN:
        delivery = Health.DOWN
        reason = observation.message or (
            "landed in junk" if observation.arrived else "not seen before the deadline")
        events.append(_event(EventType.DELIVERY_FAILED, provider, now, observation.run_id,
                             **data, step="delivery", code=None, enhanced_code=None,
                             message=reason, **{"class": observation.failure_class
                                                or "delivery"}))
    elif healthy and delivery is Health.DOWN:
        delivery = Health.UP
        events.append(_event(EventType.DELIVERY_RECOVERED, provider, now, observation.run_id,
                             **data))
    elif healthy:
        delivery = Health.UP
    return previous.model_copy(update={"delivery": delivery, "mailboxes": mailboxes}), events
