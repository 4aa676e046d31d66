"""Signed webhook delivery: the storage-agnostic parts the outbox worker calls.

The exception tree is in `errors.py`; signing and verification in `signing.py`.
"""

from __future__ import annotations

from monitor.webhooks.errors import SignatureError, SignatureReason, WebhookError
from monitor.webhooks.signing import active_secrets, generate_secret, headers, sign, verify

__all__ = [
    "SignatureError",
    "SignatureReason",
    "WebhookError",
    "active_secrets",
    "generate_secret",
    "headers",
    "sign",
    "verify",
]
