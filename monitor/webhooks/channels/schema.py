"""What every channel's config entry and API request share, and the unions made of them.

Each channel module declares two small models on these bases, next to its rendering:

    <Kind>Config(SubscriptionBase)   an entry under `subscriptions:` in the YAML file
    <Kind>Create(CreateBase)         the body of `POST /v1/subscriptions` for that kind

and `channels/__init__.py` joins them with `by_kind` into unions discriminated on `kind`:
the config's `subscriptions` items, and the API's request schema (OpenAPI `oneOf`).

`by_kind` validates an item as the model its `kind` names, so an error names the keys the
user wrote (`subscriptions[1].url`), not pydantic's union internals (`subscriptions.1.
slack.url`); an unknown or missing `kind` is an error at `kind` listing the known ones.

Nothing here, nor in any channel module, imports `monitor.config`: config/models.py
imports the channels' union, so the channels cannot import it back. `NAME_PATTERN` is the
config's `Name` rule (tests/unit/webhooks/test_registry.py checks they agree).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self, Union, cast, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    field_validator,
    model_validator,
)

from monitor.webhooks.signing import SECRET_PREFIX, secret_key

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def is_webhook_secret(value: str) -> bool:
    """`whsec_` and the base64 of at least 24 bytes (Standard Webhooks)."""
    if not value.startswith(SECRET_PREFIX):
        return False
    encoded = value[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return False
    return len(key) >= 24


# The config file ------------------------------------------------------------------------

class SubscriptionBase(BaseModel):
    """The keys of every subscription entry; a channel adds its `kind` and its own keys."""

    # As config.models.Strict: unknown keys rejected, frozen, secrets never in a repr.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Name
    kind: str
    secret: SecretStr | None = None
    events: tuple[str, ...] = ("*",)
    providers: tuple[str, ...] = ("*",)

    @model_validator(mode="after")
    def _secret_is_standard(self) -> Self:
        if self.secret is not None and not is_webhook_secret(self.secret.get_secret_value()):
            raise ValueError("`secret` must be whsec_ followed by base64 of at least 24 bytes "
                             "(Standard Webhooks)")
        return self


class UrlConfig(SubscriptionBase):
    """A channel that posts to the webhook URL it is given (generic, Slack, Teams, Discord)."""

    url: str = Field(min_length=1)


# The HTTP API ---------------------------------------------------------------------------

EVENT_PATTERN = re.compile(r"^(\*|[a-z]+\.\*|[a-z]+\.[a-z_]+)$")
URL_PATTERN = r"^https?://[^\s/?#]+([/?#]\S*)?$"
WebhookUrl = Annotated[str, Field(max_length=2048, pattern=URL_PATTERN)]
ProviderFilter = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,62})$")]


def event_patterns(value: list[str] | None) -> list[str] | None:
    bad = [v for v in value or () if not EVENT_PATTERN.match(v)]
    if bad:
        raise ValueError(f"not event types or patterns: {', '.join(bad)}")
    return value


class CreateBase(BaseModel):
    """The fields of every `POST /v1/subscriptions` body; a channel adds `kind` and its own."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: str
    secret: str | None = Field(default=None, pattern=r"^whsec_[A-Za-z0-9+/=]{32,}$")
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=50)
    providers: list[ProviderFilter] = Field(default_factory=lambda: ["*"], min_length=1,
                                            max_length=200)

    _events = field_validator("events")(event_patterns)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and len(secret_key(value)) < 24:
            raise ValueError("a secret needs at least 24 bytes after whsec_")
        return value


class UrlCreate(CreateBase):
    url: WebhookUrl


# Unions ---------------------------------------------------------------------------------

def kind_of(model: type[BaseModel]) -> str:
    """The one value of a channel model's `kind: Literal[...]`."""
    (kind,) = get_args(model.model_fields["kind"].annotation)
    return str(kind)


def by_kind(models: Sequence[type[BaseModel]]) -> Any:
    """A union of `models` discriminated on `kind`, whose errors name the user's keys.

    The discriminator stays declared (JSON schema `oneOf` with a `discriminator` mapping);
    validation of a mapping goes straight to the model its kind names, so the error
    locations carry no union tag.
    """
    members = {kind_of(m): m for m in models}
    known = create_model("Kind", kind=(cast(Any, Literal[tuple(members)]), ...))

    def dispatch(data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)  # a model instance, or an error of the union's own
        kind = data.get("kind")
        model = members.get(kind) if isinstance(kind, str) else None
        if model is None:  # raises: "kind: Input should be 'generic', 'slack' or ..."
            known.model_validate({"kind": kind} if "kind" in data else {})
            return handler(data)  # pragma: no cover - `known` refused it above
        return model.model_validate(data)

    return Annotated[Union[tuple(members.values())],  # noqa: UP007 - built at run time
                     Field(discriminator="kind"), WrapValidator(dispatch)]
