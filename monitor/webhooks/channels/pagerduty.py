"""PagerDuty Events API v2: failures trigger, recoveries resolve the same alert.

Shape (PagerDuty/api-schema, reference/events-v2/openapiv3.json): POST to
`https://events.pagerduty.com/v2/enqueue` (overridable: proxies, tests) with
`routing_key`, `event_action` (trigger | resolve), `dedup_key`, and for triggers a
`payload` with `summary` (≤ 1024 characters), `source`, `severity`
(critical | error | warning | info), `timestamp`, `component`, `group`, `class` and
`custom_details`. A resolve needs only the routing key and the dedup key.

`dedup_key` is `delivery-monitor/{provider}/{family}` (≤ 255 characters): deterministic,
so a `probe.recovered` resolves the incident its `probe.failed` opened even after a
restart, and a second failure while one is open updates it instead of paging again.

Which events page (everything else returns None: nothing is sent):

    probe.failed, delivery.failed     trigger, severity by failure class (below)
    probe.degraded                    trigger, warning
    tls.certificate_expiring          trigger, warning; error from one day before expiry
    probe.recovered, delivery.recovered, probe.latency_recovered
                                      resolve (EventType.resolves)
    webhook.test                      trigger, info, with its own dedup_key per event,
                                      so "test this subscription" visibly reaches PagerDuty
    probe.code_changed, probe.capabilities_changed, check.completed
                                      skipped: informational, nobody should be woken up;
                                      `PagerDutyChannel(page_on=...)` adds them (warning)

Severity by failure class: a person must fix it → `critical` (auth, tls, permanent,
protocol: retrying cannot help, DESIGN.md's table); it may pass on its own → `error`
(network, timeout, delivery); an SMTP 4xx → `warning` (transient: greylisting, rate
limits). Unknown class → `error`.

Responses: 202 accepted; 400 invalid event (permanent: our bug or a wrong routing key);
429 throttled and 5xx are retried (PagerDuty's "API Response Codes & Retry Logic").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor.events.model import Event, EventType, rfc3339
from monitor.webhooks.channels import text
from monitor.webhooks.channels.base import (
    Destination,
    OutgoingRequest,
    json_bytes,
    json_headers,
)
from monitor.webhooks.outcome import Outcome, OutcomeKind, classify_http

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX, DEDUP_MAX = 1024, 255
SOURCE = "delivery-monitor"

SEVERITY_BY_CLASS = {
    "auth": "critical", "tls": "critical", "permanent": "critical", "protocol": "critical",
    "network": "error", "timeout": "error", "delivery": "error",
    "transient": "warning",
}
_FIXED_SEVERITY = {EventType.PROBE_DEGRADED: "warning", EventType.WEBHOOK_TEST: "info"}
DEFAULT_PAGE_ON = frozenset({
    EventType.PROBE_FAILED, EventType.DELIVERY_FAILED, EventType.PROBE_DEGRADED,
    EventType.TLS_CERTIFICATE_EXPIRING, EventType.WEBHOOK_TEST,
})


def dedup_key(event: Event) -> str:
    if event.type is EventType.WEBHOOK_TEST:
        return f"{SOURCE}/test/{event.id}"[:DEDUP_MAX]
    return f"{SOURCE}/{event.provider or '-'}/{event.type.family}"[:DEDUP_MAX]


def severity(event: Event) -> str:
    if event.type in _FIXED_SEVERITY:
        return _FIXED_SEVERITY[event.type]
    if event.type is EventType.TLS_CERTIFICATE_EXPIRING:
        days = event.data.get("days_left")
        return "error" if isinstance(days, int | float) and days <= 1 else "warning"
    if event.type in (EventType.PROBE_FAILED, EventType.DELIVERY_FAILED):
        return SEVERITY_BY_CLASS.get(str(event.data.get("class")), "error")
    return "warning"  # opted-in informational types


def build_event(event: Event, routing_key: str, public_url: str | None = None,
                page_on: Iterable[EventType] = DEFAULT_PAGE_ON) -> dict[str, Any] | None:
    """The Events API v2 body for one event, or None when PagerDuty gets nothing for it."""
    key = dedup_key(event)
    if event.type.resolves:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    if event.type not in set(page_on):
        return None
    summary = text.headline(event)
    diagnosis, action = text.diagnosis(event)
    if diagnosis:
        summary += f": {diagnosis}"
    details: dict[str, Any] = {"event_type": event.type.value, "event_id": event.id,
                               "run_id": event.run_id, **dict(text.facts(event))}
    if event.data.get("message"):
        details["server_reply"] = str(event.data["message"])
    if diagnosis:
        details["diagnosis"] = diagnosis
    if action:
        details["next_step"] = action
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": text.clip(summary, SUMMARY_MAX),
            "source": event.provider or SOURCE,
            "severity": severity(event),
            "timestamp": rfc3339(event.timestamp),
            "component": str(event.data.get("step") or event.type.family),
            "group": SOURCE,
            "class": str(event.data.get("class") or event.type.value),
            "custom_details": {k: v for k, v in details.items() if v is not None},
        },
        "client": "Delivery Monitor",
    }
    link = text.details_link(event, public_url)
    if link:
        body["client_url"] = link
        body["links"] = [{"href": link,
                          "text": f"{event.provider or 'Events'} in Delivery Monitor"}]
    return body


class PagerDutyChannel:
    kind = "pagerduty"

    def __init__(self, page_on: Iterable[EventType] = DEFAULT_PAGE_ON) -> None:
        self.page_on = frozenset(page_on)

    def render(self, event: Event, destination: Destination) -> OutgoingRequest | None:
        if not destination.routing_key:
            raise ValueError(f"subscription {destination.name!r}: pagerduty needs routing_key")
        document = build_event(event, destination.routing_key, destination.public_url,
                               self.page_on)
        if document is None:
            return None
        return OutgoingRequest(url=destination.url or EVENTS_URL, headers=json_headers(),
                               body=json_bytes(document), channel=self.kind,
                               redact=(destination.routing_key, *destination.secrets))

    def classify(self, status: int, headers: Mapping[str, str], body_snippet: str
                 ) -> Outcome:
        outcome = classify_http(status, headers, body_snippet)
        if status == 400 and outcome.kind is OutcomeKind.PERMANENT:
            return Outcome(OutcomeKind.PERMANENT,
                           f"{outcome.reason} (PagerDuty rejected the event: check the "
                           "routing key; otherwise a bug here)")
        return outcome
