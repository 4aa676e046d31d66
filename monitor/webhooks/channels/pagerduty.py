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
Domain events have no provider: `delivery-monitor/{domain}/{family}[/{listing}]`, so
each block listing is its own incident and its delisting resolves it.

Which events page is declared by each event type (monitor/events/model.py), never by
name here; everything else returns None (nothing is sent):

    `pages`        trigger, with the event's severity (below); today probe.failed,
                   delivery.failed, probe.degraded, tls.certificate_expiring, webhook.test
    `resolves`     resolve the family's incident: probe.recovered, delivery.recovered,
                   probe.latency_recovered, tls.certificate_renewed
    `per_event`    its own dedup_key per event (webhook.test: "test this subscription"
                   visibly reaches PagerDuty every time)
    the others     skipped: informational, nobody should be woken up;
                   `PagerDutyChannel(page_on=...)` adds them

Severity is `Event.severity`: by failure class for failures (a person must fix it →
critical; it may pass on its own → error; an SMTP 4xx → warning; unknown → error), the
declared one otherwise, refined by the data (a certificate expiring within a day → error).

Responses: 202 accepted; 400 invalid event (permanent: our bug or a wrong routing key);
429 throttled and 5xx are retried (PagerDuty's "API Response Codes & Retry Logic").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr

from monitor.events.model import Event, EventType, rfc3339
from monitor.webhooks.channels import text
from monitor.webhooks.channels.base import (
    Destination,
    OutgoingRequest,
    json_bytes,
    json_headers,
)
from monitor.webhooks.channels.schema import CreateBase, SubscriptionBase, WebhookUrl
from monitor.webhooks.outcome import Outcome, OutcomeKind, classify_http

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX, DEDUP_MAX = 1024, 255
SOURCE = "delivery-monitor"

DEFAULT_PAGE_ON = frozenset(t for t in EventType if t.pages)


class PagerDutyConfig(SubscriptionBase):
    kind: Literal["pagerduty"]
    routing_key: SecretStr
    url: str | None = None  # instead of EVENTS_URL: proxies, tests


class PagerDutySubscriptionCreate(CreateBase):
    kind: Literal["pagerduty"]
    routing_key: str = Field(min_length=1, max_length=256)
    url: WebhookUrl | None = None


def dedup_key(event: Event) -> str:
    if event.type.per_event:
        return f"{SOURCE}/test/{event.id}"[:DEDUP_MAX]
    # Domain events have no provider: the domain, and for a listing which one, instead.
    who = event.provider or event.data.get("domain") or "-"
    listing = event.data.get("listing")
    return f"{SOURCE}/{who}/{event.type.family}{f'/{listing}' if listing else ''}"[:DEDUP_MAX]


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
            "severity": event.severity.value,
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
    config = PagerDutyConfig
    create = PagerDutySubscriptionCreate
    pace_per_url: float | None = None

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


CHANNEL = PagerDutyChannel()
