"""What one delivery attempt came to, and what the outbox worker should do next.

    Outcome of an attempt
    ├── delivered   2xx                                       → done
    ├── transient   408, 429, 5xx; network error; timeout      → retry by the RetryPolicy,
    │                                                            after Retry-After on 429/503
    ├── permanent   3xx (redirects are not followed),          → dead letter now; a person
    │               other 4xx, an unusable URL                   must fix the subscription
    └── disable     410 Gone, or the response header           → disable the subscription,
                    `webhook-delivery: disable`                  send it nothing more

Why 3xx is permanent: following redirects would let a receiver bounce our signed POST to
an address the egress check never saw (SSRF), and the Standard Webhooks spec ("Delivery
success and failure") counts 3xx as a failure and recommends updating the URL instead.
A redirect is a configuration mistake (http:// redirected to https://, a moved endpoint)
that retrying cannot fix, so we stop at once and say where it points.

The `disable` header is honoured whatever the status, 2xx included: the receiver has
said it wants nothing more.

Channels refine this (Slack's and PagerDuty's documented errors) in their `classify`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    DISABLE = "disable"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str
    # Seconds the receiver asked us to wait (429/503 Retry-After), already parsed.
    retry_after: float | None = None

    @property
    def retry(self) -> bool:
        return self.kind is OutcomeKind.TRANSIENT


DISABLE_HEADER = "webhook-delivery"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for plain dicts and httpx.Headers alike."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Unparseable values are ignored (the retry schedule applies), never trusted.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_http(status: int, headers: Mapping[str, str], body_snippet: str = "", *,
                  now: datetime | None = None) -> Outcome:
    """The generic classification every channel starts from."""
    snippet = " ".join(body_snippet.split())[:200]
    said = f": {snippet}" if snippet else ""
    if (header(headers, DISABLE_HEADER) or "").strip().lower() == "disable":
        return Outcome(OutcomeKind.DISABLE, f"HTTP {status} with `webhook-delivery: disable`")
    if 200 <= status < 300:
        return Outcome(OutcomeKind.DELIVERED, f"HTTP {status}")
    if status == 410:
        return Outcome(OutcomeKind.DISABLE, f"HTTP 410 Gone: the receiver was removed{said}")
    if 300 <= status < 400:
        where = header(headers, "location")
        target = f" to {where[:200]}" if where else ""
        return Outcome(OutcomeKind.PERMANENT,
                       f"HTTP {status} redirect{target} not followed: update the URL")
    if status in (408, 429) or 500 <= status < 600:
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(header(headers, "retry-after"), now=now)
        return Outcome(OutcomeKind.TRANSIENT, f"HTTP {status}{said}", retry_after)
    return Outcome(OutcomeKind.PERMANENT, f"HTTP {status}{said}")
