"""Request and response bodies of the HTTP API (also the OpenAPI components)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.config.models import Name
from monitor.webhooks.signing import secret_key


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderState(Out):
    health: str
    delivery: str
    consecutive_failures: int
    consecutive_successes: int
    degraded: bool
    last_run_id: str | None


class ProviderView(Out):
    name: str
    host: str
    port: int
    tls: str
    mode: str
    interval_seconds: float
    state: ProviderState | None
    last_result: dict[str, Any] | None = Field(
        description="The last probe result (the model `monitor probe --json` prints)")


class ProviderList(Out):
    items: list[ProviderView]


class ResultPage(Out):
    items: list[dict[str, Any]] = Field(description="Probe results, newest first")
    next_cursor: str | None


class ProbeRun(Out):
    result: dict[str, Any]
    events: list[str] = Field(description="Types of the events this run raised")


class EventView(Out):
    id: str
    type: str
    provider: str | None
    timestamp: datetime
    run_id: str | None
    data: dict[str, Any]


class EventPage(Out):
    items: list[EventView]
    next_cursor: str | None


EVENT_PATTERN = re.compile(r"^(\*|[a-z]+\.\*|[a-z]+\.[a-z_]+)$")


def _event_patterns(value: list[str] | None) -> list[str] | None:
    bad = [v for v in value or () if not EVENT_PATTERN.match(v)]
    if bad:
        raise ValueError(f"not event types or patterns: {', '.join(bad)}")
    return value


URL = Field(default=None, max_length=2048, pattern=r"^https?://[^\s/?#]+([/?#]\S*)?$")
ProviderFilter = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,62})$")]


class SubscriptionCreate(In):
    name: Name
    kind: Literal["generic", "slack", "pagerduty"]
    url: str | None = URL
    routing_key: str | None = Field(default=None, max_length=256)
    secret: str | None = Field(default=None, pattern=r"^whsec_[A-Za-z0-9+/=]{32,}$")
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=50)
    providers: list[ProviderFilter] = Field(default_factory=lambda: ["*"], min_length=1,
                                            max_length=200)

    _events = field_validator("events")(_event_patterns)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and len(secret_key(value)) < 24:
            raise ValueError("a secret needs at least 24 bytes after whsec_")
        return value


class SubscriptionUpdate(In):
    url: str | None = URL
    routing_key: str | None = Field(default=None, max_length=256)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    providers: list[ProviderFilter] | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    rotate_secret: bool = Field(
        default=False,
        description="Generate a new secret; the old one keeps signing for `grace_hours`")
    grace_hours: int = Field(default=24, ge=0, le=720)

    _events = field_validator("events")(_event_patterns)


class SubscriptionView(Out):
    id: str
    name: str
    kind: str
    url: str | None = Field(description="Scheme and host only: a Slack URL's path is a "
                                        "credential")
    events: list[str]
    providers: list[str]
    enabled: bool
    disabled_reason: str | None
    source: str
    created_at: datetime
    secret_hint: str | None = Field(description="A fingerprint of the current signing secret "
                                                "(sha256 prefix), never the secret")
    rotating_until: datetime | None


class SubscriptionCreated(SubscriptionView):
    secret: str = Field(description="Shown once: keep it to verify signatures")


class SubscriptionUpdated(SubscriptionView):
    secret: str | None = Field(default=None,
                               description="Only after `rotate_secret`: the new secret, shown once")


class SubscriptionList(Out):
    items: list[SubscriptionView]


class AttemptView(Out):
    attempt: int
    at: datetime
    status: int | None
    latency_ms: float
    outcome: str
    response: str | None


class DeliveryView(Out):
    id: str
    event_id: str
    event_type: str | None
    subscription_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptView]


class DeliveryPage(Out):
    items: list[DeliveryView]
    next_cursor: str | None


class Accepted(Out):
    id: str
    status: str
