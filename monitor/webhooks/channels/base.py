"""The one small interface every channel implements, and the request it produces.

A channel turns an `Event` into the exact bytes to POST (`render`) and reads the
receiver's answer (`classify`). It does no I/O: `sender.send` posts, the outbox worker
decides. It also owns its config model (`config`), its API request schema (`create`, both
on the bases in `schema.py`) and its pacing (`pace_per_url`). Adding Opsgenie is one new
module, `channels/opsgenie.py` defining `CHANNEL`, and its name in `channels/__init__.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from pydantic import SecretStr

from monitor.events.model import Event, rfc3339
from monitor.webhooks import signing
from monitor.webhooks.channels.schema import CreateBase, SubscriptionBase
from monitor.webhooks.egress import host_of
from monitor.webhooks.outcome import Outcome

USER_AGENT = "delivery-monitor/0.1 (+https://www.standardwebhooks.com)"


@dataclass(frozen=True)
class Destination:
    """What a channel needs about one subscriber, independent of where it is stored.

    Secrets and the routing key are kept out of `repr` so that logging a destination
    cannot leak them.
    """

    kind: str  # a key of channels.CHANNELS
    url: str | None = field(default=None, repr=False)  # a Slack URL's path is a credential
    secrets: tuple[str, ...] = field(default=(), repr=False)  # whsec_..., signing ones only
    routing_key: str | None = field(default=None, repr=False)
    # Base URL of this monitor's API, for "view details" links in Slack and PagerDuty.
    public_url: str | None = None
    name: str = ""

    @classmethod
    def from_config(cls, sub: SubscriptionBase, *, public_url: str | None = None,
                    secrets: tuple[str, ...] | None = None) -> Destination:
        """From a config entry; `secrets` overrides the configured one (rotation, generated).

        Only some kinds have a `url` (PagerDuty's is an optional override) or a
        `routing_key` (PagerDuty only): what a kind lacks is None here.
        """
        if secrets is None:
            secrets = (sub.secret.get_secret_value(),) if sub.secret is not None else ()
        url: str | None = getattr(sub, "url", None)
        routing_key: SecretStr | None = getattr(sub, "routing_key", None)
        key = routing_key.get_secret_value() if routing_key is not None else None
        return cls(kind=sub.kind, url=url, secrets=secrets, routing_key=key,
                   public_url=public_url, name=sub.name)


@dataclass(frozen=True)
class OutgoingRequest:
    """One POST, ready to send: these exact body bytes are what is signed and sent."""

    url: str = field(repr=False)
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    channel: str = "generic"  # picks the `classify` that reads the answer, and the pacing
    # Strings that must never appear in what we record (the routing key, the Slack URL,
    # signing secrets): `sender` scrubs them from response snippets and error texts.
    redact: tuple[str, ...] = field(default=(), repr=False)

    @property
    def host(self) -> str:
        return host_of(self.url)

    def signed(self, msg_id: str, timestamp: int, secrets: tuple[str, ...] | list[str]
               ) -> OutgoingRequest:
        """This request with the Standard Webhooks headers of one attempt.

        `webhook-id` and `webhook-timestamp` are always set (receivers deduplicate on the
        id); `webhook-signature` only when there is a secret to sign with.
        """
        extra = {signing.ID_HEADER: msg_id, signing.TIMESTAMP_HEADER: str(timestamp)}
        if secrets:
            extra[signing.SIGNATURE_HEADER] = signing.sign(secrets, msg_id, timestamp,
                                                           self.body)
        return replace(self, headers={**self.headers, **extra},
                       redact=(*self.redact, *secrets))


class Channel(Protocol):
    kind: str
    config: type[SubscriptionBase]  # its entry in the config file's `subscriptions`
    create: type[CreateBase]  # its body for POST /v1/subscriptions
    # Seconds between two requests to one URL (Slack: one message a second), or None.
    pace_per_url: float | None

    def render(self, event: Event, destination: Destination) -> OutgoingRequest | None:
        """The request for this event, or None when this channel sends nothing for it."""
        ...

    def classify(self, status: int, headers: Mapping[str, str], body_snippet: str
                 ) -> Outcome:
        """What the receiver's answer means for this delivery."""
        ...


def _default(value: object) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def json_bytes(document: Any) -> bytes:
    """Compact UTF-8 JSON: serialised once, and these bytes are signed and sent."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False,
                      default=_default).encode("utf-8")


def json_headers() -> dict[str, str]:
    return {"content-type": "application/json", "user-agent": USER_AGENT}


def post_to_url(kind: str, destination: Destination, document: Any, *,
                url: str | None = None) -> OutgoingRequest:
    """A JSON POST to a chat webhook (Slack, Teams, Discord), whose URL is its credential
    (hooks.slack.com/services/T…/B…/secret): the URL is never recorded. `url`: the
    destination's, adjusted (a query parameter)."""
    if not destination.url:
        raise ValueError(f"subscription {destination.name!r}: {kind} needs the webhook url")
    return OutgoingRequest(url=url or destination.url, headers=json_headers(),
                           body=json_bytes(document), channel=kind,
                           redact=(destination.url, *destination.secrets))
