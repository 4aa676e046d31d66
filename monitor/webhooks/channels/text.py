"""Words for people: one headline per event, and the facts a responder reads first.

Shared by the Slack and PagerDuty channels so the two say the same thing. Reads only
`Event` and the keys event detection puts in `data` (monitor/events/detect.py); a key
that is absent is simply left out, never rendered as "None".
"""

from __future__ import annotations

from typing import Any, TypeGuard

from monitor.events.model import Event, EventType


def clip(value: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when something was cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _get(data: dict[str, Any], key: str) -> Any:
    value = data.get(key)
    return None if value in (None, "", [], {}) else value


def reply(code: Any, enhanced: Any) -> str:
    """`550 5.1.1`, `421`, or `` when the step got no reply at all."""
    return " ".join(str(p) for p in (code, enhanced) if p not in (None, ""))


def _change(value: Any) -> str:
    if isinstance(value, dict):
        return reply(value.get("code"), value.get("enhanced_code")) or "no reply"
    return str(value)


def headline(event: Event) -> str:
    """What happened, in one line that starts with the provider."""
    d, who = event.data, event.provider or "delivery monitor"
    step, code = _get(d, "step"), reply(_get(d, "code"), _get(d, "enhanced_code"))
    at = f" at {step}" if step else ""
    with_code = f" with {code}" if code else ""
    match event.type:
        case EventType.PROBE_FAILED:
            return f"{who}: probe failing{at}{with_code}"
        case EventType.PROBE_RECOVERED:
            return f"{who}: probe recovered"
        case EventType.PROBE_CODE_CHANGED:
            before, after = d.get("previous"), d.get("current")
            change = (f" from {_change(before)} to {_change(after)}"
                      if before is not None and after is not None else "")
            return f"{who}: {step or 'a step'} reply changed{change}"
        case EventType.PROBE_CAPABILITIES_CHANGED:
            parts = [f"+{x}" for x in d.get("added") or ()]
            parts += [f"-{x}" for x in d.get("removed") or ()]
            return f"{who}: EHLO capabilities changed ({', '.join(parts) or 'see details'})"
        case EventType.PROBE_DEGRADED:
            took, limit = d.get("duration_ms"), d.get("threshold_ms")
            if _number(took) and _number(limit):
                return f"{who}: slow, {_ms(took)} against a {_ms(limit)} threshold"
            return f"{who}: slower than its latency threshold"
        case EventType.PROBE_LATENCY_RECOVERED:
            limit = d.get("threshold_ms")
            return f"{who}: latency back under " + (
                f"{_ms(limit)}" if _number(limit) else "its threshold")
        case EventType.TLS_CERTIFICATE_EXPIRING:
            days = d.get("days_left", d.get("threshold_days"))
            return f"{who}: TLS certificate expires {_days(days)}"
        case EventType.TLS_CERTIFICATE_RENEWED:
            return f"{who}: TLS certificate renewed, now expires {_days(d.get('days_left'))}"
        case EventType.DELIVERY_FAILED:
            return f"{who}: test message {d.get('message') or 'not delivered'}"
        case EventType.DELIVERY_RECOVERED:
            return f"{who}: test messages reach the inbox again"
        case EventType.CHECK_COMPLETED:
            return f"{who}: pre-campaign check {d.get('verdict') or 'completed'}"
        case EventType.WEBHOOK_TEST:
            return "Delivery Monitor test event: this subscription works"
    return f"{who}: {event.type.value}"  # pragma: no cover - every type is matched above


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _days(value: Any) -> str:
    if not _number(value):
        return "soon"
    return "within a day" if value < 1 else f"in {value:.0f} days"


def facts(event: Event) -> list[tuple[str, str]]:
    """Label/value pairs worth a glance, in reading order; empty values left out."""
    d = event.data
    pairs: list[tuple[str, Any]] = [
        ("Step", _get(d, "step")),
        ("Code", _get(d, "code")),
        ("Enhanced code", _get(d, "enhanced_code")),
        ("Class", _get(d, "class")),
        ("Mailbox", _get(d, "mailbox")),
        ("Placement", _get(d, "placement")),
        ("Slow steps", ", ".join(d.get("slow_steps") or ()) or None),
        ("Certificate", _get(d, "subject")),
        ("Expires", _get(d, "not_after")),
        ("Verdict", _get(d, "verdict")),
    ]
    return [(label, str(value)) for label, value in pairs if value is not None]


def diagnosis(event: Event) -> tuple[str | None, str | None]:
    """(summary, next step) from the probe's diagnosis, when the event carries one."""
    found = event.data.get("diagnosis")
    if not isinstance(found, dict):
        return None, None
    summary, action = found.get("summary"), found.get("action")
    return (str(summary) if summary else None, str(action) if action else None)


def details_link(event: Event, public_url: str | None) -> str | None:
    """A link back to this monitor's API for the provider (or the events list)."""
    if not public_url:
        return None
    base = public_url.rstrip("/")
    if event.provider:
        return f"{base}/v1/providers/{event.provider}"
    return f"{base}/v1/events"
