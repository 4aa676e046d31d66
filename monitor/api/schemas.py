"""Request and response bodies of the HTTP API (also the OpenAPI components)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ModelWrapValidatorHandler,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from monitor.webhooks import channels
from monitor.webhooks.channels import SubscriptionKind
from monitor.webhooks.channels.schema import (
    CreateBase,
    ProviderFilter,
    WebhookUrl,
    event_patterns,
)


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


class ProviderSettings(Out):
    """What the configuration says of a provider."""

    name: str
    host: str
    port: int
    tls: str
    mode: str
    interval_seconds: float


class ProviderView(ProviderSettings):
    state: ProviderState | None
    last_result: dict[str, Any] | None = Field(
        description="The last probe result (the model `monitor probe --json` prints)")


class LastRun(Out):
    run_id: str
    started_at: datetime
    duration_ms: float
    ok: bool
    failed_step: str | None
    code: int | None = Field(description="The failing step's reply code")
    enhanced_code: str | None
    failure_class: str | None
    diagnosis: str | None = Field(description="What went wrong, in one line (clipped)")
    tls_verified: bool | None
    certificate_not_after: datetime | None


class ProviderSummary(ProviderSettings):
    health: str
    delivery: str
    degraded: bool
    consecutive_failures: int
    codes: dict[str, int | None] = Field(
        description="The last reply code per step (`rcpt:<address>` per recipient)")
    last_run: LastRun | None = Field(
        description="The last run in brief; the whole result is at /v1/providers/{name}")


class ProviderList(Out):
    items: list[ProviderSummary]
    next_cursor: str | None


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


class SubscriptionCreate(In):
    """The body of `POST /v1/subscriptions`, as the handler reads it.

    It is validated as its kind's own schema (each channel's `create` model, joined by
    the channel registry), so errors name the fields the client sent and a kind gets only
    its own fields; OpenAPI shows that union (`oneOf`, discriminated on `kind`).
    """

    name: str
    kind: SubscriptionKind
    url: str | None = None
    routing_key: str | None = None
    secret: str | None = None
    events: list[str]
    providers: list[str]

    @model_validator(mode="wrap")
    @classmethod
    def _as_its_kind(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if isinstance(data, Mapping):
            data = _CREATE.validate_python(data).model_dump()
        return handler(data)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(_CREATE.core_schema)


_CREATE: TypeAdapter[CreateBase] = TypeAdapter(channels.SubscriptionCreate)


class SubscriptionUpdate(In):
    url: WebhookUrl | None = None
    routing_key: str | None = Field(default=None, max_length=256)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    providers: list[ProviderFilter] | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    rotate_secret: bool = Field(
        default=False,
        description="Generate a new secret; the old one keeps signing for `grace_hours`")
    grace_hours: int = Field(default=24, ge=0, le=720)

    _events = field_validator("events")(event_patterns)


class SubscriptionView(Out):
    id: str
    name: str
    kind: SubscriptionKind
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
