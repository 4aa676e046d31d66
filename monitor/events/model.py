"""The event types of the public contract and the event record itself.

A webhook body is `{"type", "timestamp", "data"}` (DESIGN.md); `data` always
holds `provider`, `event_id` and `run_id`, and for failures the failing
`step`, `code`, `enhanced_code`, `message` and `class`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    WEBHOOK_TEST = "webhook.test"

    @property
    def family(self) -> str:
        """Trigger/resolve pairs share a family (PagerDuty dedup_key, Slack colour)."""
        return _FAMILY.get(self, self.value)

    @property
    def resolves(self) -> bool:
        return self in (EventType.PROBE_RECOVERED, EventType.PROBE_LATENCY_RECOVERED,
                        EventType.DELIVERY_RECOVERED, EventType.TLS_CERTIFICATE_RENEWED)


_FAMILY = {
    EventType.PROBE_FAILED: "probe", EventType.PROBE_RECOVERED: "probe",
    EventType.PROBE_DEGRADED: "latency", EventType.PROBE_LATENCY_RECOVERED: "latency",
    EventType.DELIVERY_FAILED: "delivery", EventType.DELIVERY_RECOVERED: "delivery",
    # The expiring type's own name, as before renewals resolved it: PagerDuty incidents
    # opened by an earlier version keep their dedup_key.
    EventType.TLS_CERTIFICATE_RENEWED: "tls.certificate_expiring",
}


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


def rfc3339(when: datetime) -> str:
    """UTC with a Z, as the envelope's `timestamp` (DESIGN.md)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
