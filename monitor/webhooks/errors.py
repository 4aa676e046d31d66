"""Exceptions of the webhooks package, in one place.

    WebhookError
    ├── SignatureError(reason)      a body or its headers fail Standard Webhooks verification
    └── EgressRefused(reason)       a destination URL we will not post to (SSRF guard)
          .permanent                False only when the host could not be resolved right now

Delivery failures (HTTP statuses, network errors, timeouts) are not exceptions:
`sender.send` translates them once into an `Outcome` (see `outcome.py`).
"""

from __future__ import annotations

from enum import StrEnum


class WebhookError(Exception):
    """Base class: catch this to handle anything the webhooks package raises."""


class SignatureReason(StrEnum):
    MISSING_HEADER = "missing_header"
    BAD_TIMESTAMP = "bad_timestamp"
    TOO_OLD = "too_old"
    TOO_NEW = "too_new"
    NO_MATCH = "no_matching_signature"


class SignatureError(WebhookError, ValueError):
    """Verification failed; `reason` says which check, `message` says it to a person."""

    def __init__(self, reason: SignatureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EgressReason(StrEnum):
    SCHEME = "scheme"
    CREDENTIALS = "credentials"
    NO_HOST = "no_host"
    UNRESOLVABLE = "unresolvable"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link_local"
    METADATA = "metadata"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    NOT_GLOBAL = "not_global"


class EgressRefused(WebhookError):
    """We will not send to this URL. The message names the host and address, never the path
    (a Slack webhook URL's path is its credential)."""

    def __init__(self, reason: EgressReason, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.permanent = permanent
