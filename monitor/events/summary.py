"""One line per event: what happened, without the event's type or provider.

`summary(type, data)` is the detail column of `monitor events` and of the demo's
webhook lines, where the type and the provider have columns of their own. It reads
only the keys event detection puts in `data` (monitor/events/detect.py; a webhook's
`data` adds `provider`, `event_id` and `run_id`, which are ignored); an absent key is
left out, never shown as "None". `failure` is the one way a probe failure is written
("rcpt 550 5.1.1 (permanent)"), also by the probe's step table and the demo's runs.

Plain text, not escaped: a caller printing to a terminal applies `terminal_safe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.events.model import (
    EventType,
    as_days,
    as_ms,
    change_list,
    is_number,
    reply,
    reply_of,
)


def failure(step: Any, code: Any, enhanced: Any, failure_class: Any) -> str:
    """`rcpt 550 5.1.1 (permanent)`; `?` stands for a missing step or class."""
    return " ".join(p for p in (str(step or "?"), reply(code, enhanced),
                                f"({failure_class or '?'})") if p)


def summary(event_type: EventType | str, data: Mapping[str, Any]) -> str:
    """The facts of one event on one line ("" when it has none worth a line)."""
    try:
        kind = EventType(event_type)
    except ValueError:  # a type written by a newer version: show what it carries
        return ", ".join(f"{k}={v}" for k, v in data.items()
                         if k not in ("provider", "event_id", "run_id"))
    d = data
    match kind:
        case EventType.PROBE_FAILED:
            return failure(d.get("step"), d.get("code"), d.get("enhanced_code"), d.get("class"))
        case EventType.PROBE_RECOVERED:
            return f"ok in {as_ms(d['duration_ms'])}" if is_number(d.get("duration_ms")) else ""
        case EventType.PROBE_CODE_CHANGED:
            where = " ".join(str(p) for p in (d.get("step") or "?", d.get("recipient")) if p)
            return f"{where}: {reply_of(d.get('previous'))} -> {reply_of(d.get('current'))}"
        case EventType.PROBE_CAPABILITIES_CHANGED:
            parts = [f"+{x}" for x in d.get("added") or ()]
            parts += [f"-{x}" for x in d.get("removed") or ()]
            return " ".join(parts)
        case EventType.PROBE_DEGRADED | EventType.PROBE_LATENCY_RECOVERED:
            took, limit = d.get("duration_ms"), d.get("threshold_ms")
            line = as_ms(took) if is_number(took) else ""
            if is_number(limit):
                line += (" against a " if kind is EventType.PROBE_DEGRADED
                         else " under the ") + f"{as_ms(limit)} threshold"
            slow = ", ".join(d.get("slow_steps") or ())
            return line.strip() + (f" (slow: {slow})" if slow else "")
        case EventType.TLS_CERTIFICATE_EXPIRING:
            return f"certificate expires {as_days(d.get('days_left', d.get('threshold_days')))}"
        case EventType.TLS_CERTIFICATE_RENEWED:
            return f"certificate renewed, expires {as_days(d.get('days_left'))}"
        case EventType.DELIVERY_FAILED:
            what = f"{d.get('message') or 'not delivered'} ({d.get('class') or 'delivery'})"
            return f"{d['mailbox']}: {what}" if d.get("mailbox") else what
        case EventType.DELIVERY_RECOVERED:
            where = " ".join(str(p) for p in (d.get("mailbox"), d.get("placement") or "inbox")
                             if p)
            took = d.get("latency_ms")
            return where + (f" after {as_ms(took)}" if is_number(took) else "")
        case EventType.CHECK_COMPLETED:
            verdict = d.get("verdict") or d.get("status") or "completed"
            counts = (f", {d['seeds_inbox']}/{d['seeds_total']} seeds in the inbox"
                      if is_number(d.get("seeds_inbox")) and is_number(d.get("seeds_total"))
                      else "")
            return f"{verdict}{counts}" + (f": {d['error']}" if d.get("error") else "")
        case EventType.DOMAIN_POSTURE_CHANGED:
            return change_list(dict(d)) or "posture changed"
        case EventType.DOMAIN_BLOCKLISTED | EventType.DOMAIN_DELISTED:
            what = "listed in" if kind is EventType.DOMAIN_BLOCKLISTED else "delisted from"
            return " ".join(str(p) for p in (d.get("target"), what, d.get("zone")) if p)
        case EventType.WEBHOOK_TEST:
            return str(d.get("message") or "test event")
    return ""  # pragma: no cover - every type is matched above
