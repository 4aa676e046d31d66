"""Generic webhooks: the DESIGN.md envelope, signed per the Standard Webhooks spec.

The body is `Event.envelope()` (`{"type", "timestamp", "data"}`), JSON-encoded once;
`OutgoingRequest.signed` then signs those exact bytes for each attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from monitor.events.model import Event
from monitor.webhooks.channels.base import Destination, OutgoingRequest, json_bytes, json_headers
from monitor.webhooks.channels.schema import UrlConfig, UrlCreate
from monitor.webhooks.outcome import Outcome, classify_http


class GenericConfig(UrlConfig):
    kind: Literal["generic"]


class GenericSubscriptionCreate(UrlCreate):
    kind: Literal["generic"]


class GenericChannel:
    kind = "generic"
    config = GenericConfig
    create = GenericSubscriptionCreate
    pace_per_url: float | None = None

    def render(self, event: Event, destination: Destination) -> OutgoingRequest | None:
        if not destination.url:
            raise ValueError(f"subscription {destination.name!r}: a generic webhook needs a url")
        return OutgoingRequest(url=destination.url, headers=json_headers(),
                               body=json_bytes(event.envelope()), channel=self.kind,
                               redact=destination.secrets)

    def classify(self, status: int, headers: Mapping[str, str], body_snippet: str
                 ) -> Outcome:
        return classify_http(status, headers, body_snippet)


CHANNEL = GenericChannel()
