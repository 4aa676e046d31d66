"""Signed webhook delivery: the storage-agnostic parts the outbox worker calls.

    render(event, destination)            → OutgoingRequest | None   (channels/)
    request.signed(msg_id, ts, secrets)   → OutgoingRequest           (signing.py)
    check_destination(url, ...)           → None | raises EgressRefused (egress.py)
    send_limited(client, limiter, req)    → AttemptResult             (sender.py, limits.py)
    policy.next_attempt_at(n, now, ra)    → datetime | None (dead letter)  (retry.py)

The outcome tree is in `outcome.py`, the exception tree in `errors.py`.
"""

from __future__ import annotations

from monitor.webhooks.channels import CHANNELS, Channel, channel_for, render
from monitor.webhooks.channels.base import Destination, OutgoingRequest
from monitor.webhooks.egress import check_destination
from monitor.webhooks.errors import (
    EgressReason,
    EgressRefused,
    SignatureError,
    SignatureReason,
    WebhookError,
)
from monitor.webhooks.limits import DeliveryLimiter, RateLimiter
from monitor.webhooks.outcome import Outcome, OutcomeKind, classify_http, parse_retry_after
from monitor.webhooks.retry import DEFAULT_POLICY, RetryPolicy
from monitor.webhooks.sender import AttemptResult, make_client, send, send_limited
from monitor.webhooks.signing import active_secrets, generate_secret, headers, sign, verify

__all__ = [
    "CHANNELS",
    "DEFAULT_POLICY",
    "AttemptResult",
    "Channel",
    "DeliveryLimiter",
    "Destination",
    "EgressReason",
    "EgressRefused",
    "Outcome",
    "OutcomeKind",
    "OutgoingRequest",
    "RateLimiter",
    "RetryPolicy",
    "SignatureError",
    "SignatureReason",
    "WebhookError",
    "active_secrets",
    "channel_for",
    "check_destination",
    "classify_http",
    "generate_secret",
    "headers",
    "make_client",
    "parse_retry_after",
    "render",
    "send",
    "send_limited",
    "sign",
    "verify",
]
