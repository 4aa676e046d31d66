"""The event types of the public contract, what each one declares, and the event record.

A webhook body is `{"type", "timestamp", "data"}` (DESIGN.md); `data` always
holds `provider`, `event_id` and `run_id`, and for failures the failing
`step`, `code`, `enhanced_code`, `message` and `class`.

Every type declares itself in one table, `TYPES`, and channels read only these
attributes, never type names:

    family          trigger/resolve pairs share one (PagerDuty dedup_key)
    resolves        it closes what its family opened (PagerDuty resolve, green in chat)
    severity        info | warning | error | critical, or None: by the failure's class;
                    `refine` may raise it from the data (`Event.severity`)
    pages           PagerDuty triggers an incident for it by default
    per_event       each event is its own incident (a test), never deduplicated
    quotes_message  its headline already says `data["message"]`
    headline        one line for people, starting with the provider

A new event type is a member of `EventType`, its headline function and its row
here (plus the detector that raises it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeGuard

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    """PagerDuty's four levels (Events API v2 `payload.severity`), used by every channel."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


# By the class of a failure (DESIGN.md's table): a person must fix it → critical (retrying
# cannot help); it may pass on its own → error; an SMTP 4xx (greylisting, rate limits) →
# warning. An unknown class → error.
SEVERITY_BY_CLASS: Mapping[str, Severity] = {
    "auth": Severity.CRITICAL, "tls": Severity.CRITICAL, "permanent": Severity.CRITICAL,
    "protocol": Severity.CRITICAL,
    "network": Severity.ERROR, "timeout": Severity.ERROR, "delivery": Severity.ERROR,
    "transient": Severity.WARNING,
}


class EventType(StrEnum):
    PROBE_FAILED = "probe.failed"
    PROBE_RECOVERED = "probe.recovered"
    PROBE_CODE_CHANGED = "probe.code_changed"
    PROBE_CAPABILITIES_CHANGED = "probe.capabilities_changed"
    PROBE_DEGRADED = "probe.degraded"
    PROBE_LATENCY_RECOVERED = "probe.latency_recovered"
    TLS_CERTIFICATE_EXPIRING = "tls.certificate_expiring"
    TLS_CERTIFICATE_RENEWED = "tls.certificate_renewed"
    DELIVERY_FAILED = "delivery.failed"
    DELIVERY_RECOVERED = "delivery.recovered"
    CHECK_COMPLETED = "check.completed"
    DOMAIN_POSTURE_CHANGED = "domain.posture_changed"
    DOMAIN_BLOCKLISTED = "domain.blocklisted"
    DOMAIN_DELISTED = "domain.delisted"
    WEBHOOK_TEST = "webhook.test"

    @property
    def family(self) -> str:
        """Trigger/resolve pairs share a family (PagerDuty dedup_key)."""
        return TYPES[self].family

    @property
    def resolves(self) -> bool:
        return TYPES[self].resolves

    @property
    def severity(self) -> Severity | None:
        """The declared severity; None: by the failure's class (`Event.severity` says which)."""
        return TYPES[self].severity

    @property
    def pages(self) -> bool:
        return TYPES[self].pages

    @property
    def quotes_message(self) -> bool:
        """Its headline already quotes `data["message"]` (the server's words)."""
        return TYPES[self].quotes_message

    @property
    def per_event(self) -> bool:
        """Each event stands alone (a test): nothing to deduplicate it against."""
        return TYPES[self].per_event


class Event(BaseModel):
    """One event, as stored and as sent. `id` doubles as the webhook-id."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: EventType
    timestamp: datetime
    provider: str | None
    run_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def envelope(self) -> dict[str, Any]:
        """The generic webhook body."""
        data = {"provider": self.provider, "event_id": self.id, "run_id": self.run_id,
                **self.data}
        return {"type": self.type.value, "timestamp": rfc3339(self.timestamp), "data": data}

    @property
    def severity(self) -> Severity:
        """The type's severity, refined by this event's data (its class, days left...)."""
        info = TYPES[self.type]
        refined = info.refine(self.data) if info.refine is not None else None
        if refined is not None:
            return refined
        if info.severity is None:
            return SEVERITY_BY_CLASS.get(str(self.data.get("class")), Severity.ERROR)
        return info.severity

    def headline(self) -> str:
        """What happened, in one line that starts with the provider."""
        return TYPES[self.type].headline(self)


def rfc3339(when: datetime) -> str:
    """UTC with a Z, as the envelope's `timestamp` (DESIGN.md)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


Headline = Callable[[Event], str]
Refine = Callable[[dict[str, Any]], Severity | None]


@dataclass(frozen=True)
class TypeInfo:
    family: str
    headline: Headline
    # None: by the failure's class (`SEVERITY_BY_CLASS`); such types are failures.
    severity: Severity | None = Severity.INFO
    resolves: bool = False
    pages: bool = False
    per_event: bool = False
    # The headline already quotes `data["message"]`: channels do not repeat it.
    quotes_message: bool = False
    # A more precise severity from the event's data, or None to keep the declared one.
    refine: Refine | None = None


# Headlines ------------------------------------------------------------------------------
# Read only the keys event detection puts in `data` (monitor/events/detect.py); a key that
# is absent is left out, never rendered as "None".

def present(data: dict[str, Any], key: str) -> Any:
    """`data[key]`, or None when it is absent or empty."""
    value = data.get(key)
    return None if value in (None, "", [], {}) else value


def reply(code: Any, enhanced: Any) -> str:
    """`550 5.1.1`, `421`, or `` when the step got no reply at all."""
    return " ".join(str(p) for p in (code, enhanced) if p not in (None, ""))


def _who(event: Event) -> str:
    return event.provider or "delivery monitor"


def is_number(value: Any) -> TypeGuard[float]:
    """A real number in event data (a bool is an int, and not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_ms(value: float) -> str:
    """`850 ms`, `1.2 s`."""
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def as_days(value: Any) -> str:
    """`in 12 days`, `within a day`, `soon` when unknown."""
    if not is_number(value):
        return "soon"
    return "within a day" if value < 1 else f"in {value:.0f} days"


def reply_of(value: Any) -> str:
    """A stored {code, enhanced_code} as `550 5.1.1`; `?` when it is absent."""
    if isinstance(value, dict):
        return reply(value.get("code"), value.get("enhanced_code")) or "no reply"
    return "?" if value is None else str(value)


def _probe_failed(event: Event) -> str:
    d = event.data
    step, code = present(d, "step"), reply(present(d, "code"), present(d, "enhanced_code"))
    at = f" at {step}" if step else ""
    with_code = f" with {code}" if code else ""
    return f"{_who(event)}: probe failing{at}{with_code}"


def _code_changed(event: Event) -> str:
    d = event.data
    before, after = d.get("previous"), d.get("current")
    change = (f" from {reply_of(before)} to {reply_of(after)}"
              if before is not None and after is not None else "")
    return f"{_who(event)}: {present(d, 'step') or 'a step'} reply changed{change}"


def _capabilities_changed(event: Event) -> str:
    parts = [f"+{x}" for x in event.data.get("added") or ()]
    parts += [f"-{x}" for x in event.data.get("removed") or ()]
    return f"{_who(event)}: EHLO capabilities changed ({', '.join(parts) or 'see details'})"


def _degraded(event: Event) -> str:
    took, limit = event.data.get("duration_ms"), event.data.get("threshold_ms")
    if is_number(took) and is_number(limit):
        return f"{_who(event)}: slow, {as_ms(took)} against a {as_ms(limit)} threshold"
    return f"{_who(event)}: slower than its latency threshold"


def _latency_recovered(event: Event) -> str:
    limit = event.data.get("threshold_ms")
    return f"{_who(event)}: latency back under " + (
        f"{as_ms(limit)}" if is_number(limit) else "its threshold")


def _expiring(event: Event) -> str:
    days = event.data.get("days_left", event.data.get("threshold_days"))
    return f"{_who(event)}: TLS certificate expires {as_days(days)}"


def _renewed(event: Event) -> str:
    return (f"{_who(event)}: TLS certificate renewed, now expires "
            f"{as_days(event.data.get('days_left'))}")


def _delivery_failed(event: Event) -> str:
    return f"{_who(event)}: test message {event.data.get('message') or 'not delivered'}"


def _check_completed(event: Event) -> str:
    return f"{_who(event)}: pre-campaign check {event.data.get('verdict') or 'completed'}"


def _domain(event: Event) -> str:
    """Domain events have no provider: they start with the sending domain."""
    return str(event.data.get("domain") or event.provider or "a sending domain")


def change_list(data: dict[str, Any]) -> str:
    """`+dmarc.policy_none, -dmarc.ok, spf.lookup_limit warning→error`."""
    parts = [f"+{f.get('id')}" for f in data.get("added") or () if isinstance(f, dict)]
    parts += [f"-{f.get('id')}" for f in data.get("removed") or () if isinstance(f, dict)]
    parts += [f"{f.get('id')} {f.get('previous')}→{f.get('current')}"
              for f in data.get("changed") or () if isinstance(f, dict)]
    return ", ".join(parts)


def _posture_changed(event: Event) -> str:
    changes = change_list(event.data)
    return f"{_domain(event)}: posture changed" + (f" ({changes})" if changes else "")


def _listing(event: Event) -> str:
    target, zone = present(event.data, "target"), present(event.data, "zone")
    return " in ".join(str(p) for p in (target, zone) if p) or "a block list"


def _blocklisted(event: Event) -> str:
    return f"{_domain(event)}: {_listing(event)} listed"


def _delisted(event: Event) -> str:
    return f"{_domain(event)}: {_listing(event)} no longer listed"


# Refinements ----------------------------------------------------------------------------

def _expiry_severity(data: dict[str, Any]) -> Severity | None:
    """From one day before expiry a certificate is an error, not a warning."""
    days = data.get("days_left")
    return Severity.ERROR if is_number(days) and days <= 1 else None


def _posture_severity(data: dict[str, Any]) -> Severity | None:
    """As bad as the worst finding it adds or changes to; info when only some went away."""
    now = [f.get("severity") for f in (*(data.get("added") or ()), *(
        {"severity": c.get("current")} for c in data.get("changed") or ()
        if isinstance(c, dict))) if isinstance(f, dict)]
    if "error" in now:
        return Severity.ERROR
    return Severity.WARNING if "warning" in now else Severity.INFO


def _verdict_severity(data: dict[str, Any]) -> Severity | None:
    return Severity.ERROR if data.get("verdict") == "failed" else None


WARNING, INFO = Severity.WARNING, Severity.INFO

TYPES: Mapping[EventType, TypeInfo] = {
    EventType.PROBE_FAILED: TypeInfo("probe", _probe_failed, severity=None, pages=True),
    EventType.PROBE_RECOVERED: TypeInfo(
        "probe", lambda e: f"{_who(e)}: probe recovered", resolves=True),
    EventType.PROBE_CODE_CHANGED: TypeInfo("probe.code_changed", _code_changed, severity=WARNING),
    EventType.PROBE_CAPABILITIES_CHANGED: TypeInfo(
        "probe.capabilities_changed", _capabilities_changed, severity=WARNING),
    EventType.PROBE_DEGRADED: TypeInfo("latency", _degraded, severity=WARNING, pages=True),
    EventType.PROBE_LATENCY_RECOVERED: TypeInfo("latency", _latency_recovered, resolves=True),
    EventType.TLS_CERTIFICATE_EXPIRING: TypeInfo(
        "tls.certificate_expiring", _expiring, severity=WARNING, pages=True,
        refine=_expiry_severity),
    # The expiring type's own name as family, as before renewals resolved it: PagerDuty
    # incidents opened by an earlier version keep their dedup_key.
    EventType.TLS_CERTIFICATE_RENEWED: TypeInfo(
        "tls.certificate_expiring", _renewed, resolves=True),
    EventType.DELIVERY_FAILED: TypeInfo("delivery", _delivery_failed, severity=None,
                                        pages=True, quotes_message=True),
    EventType.DELIVERY_RECOVERED: TypeInfo(
        "delivery", lambda e: f"{_who(e)}: test messages reach the inbox again",
        resolves=True),
    EventType.CHECK_COMPLETED: TypeInfo("check.completed", _check_completed, severity=INFO,
                                        refine=_verdict_severity),
    EventType.DOMAIN_POSTURE_CHANGED: TypeInfo(
        "domain.posture_changed", _posture_changed, severity=WARNING,
        refine=_posture_severity),
    # One incident per listing (dedup_key names the domain and the listing), resolved by
    # its delisting.
    EventType.DOMAIN_BLOCKLISTED: TypeInfo("domain.blocklist", _blocklisted,
                                           severity=Severity.ERROR, pages=True),
    EventType.DOMAIN_DELISTED: TypeInfo("domain.blocklist", _delisted, resolves=True),
    # Pages, so "test this subscription" visibly reaches PagerDuty (with its own dedup_key).
    EventType.WEBHOOK_TEST: TypeInfo(
        "webhook.test", lambda e: "Delivery Monitor test event: this subscription works",
        severity=INFO, pages=True, per_event=True),
}
