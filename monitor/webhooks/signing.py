"""Standard Webhooks signatures: sign what we send, verify what a receiver got.

Follows the Standard Webhooks spec (github.com/standard-webhooks/standard-webhooks,
`spec/standard-webhooks.md`, "Signature scheme") as is:

- the signed content is `f"{webhook-id}.{webhook-timestamp}."` followed by the exact
  body bytes sent; nothing is re-serialised between signing and sending;
- the signature is `v1,` + base64(HMAC-SHA256(key, content)), where the key is the
  base64-decoded part of the secret after `whsec_`;
- several signatures are separated by spaces: during a secret rotation both the old
  and the new secret sign, so a receiver holding either one verifies;
- `webhook-timestamp` is integer Unix seconds of the *attempt*, so a retry hours later is
  re-signed and still passes the receiver's replay window (5 minutes by default).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from monitor.webhooks.errors import SignatureError, SignatureReason

SECRET_PREFIX = "whsec_"
# The spec asks for 24-64 random bytes; 32 matches the HMAC-SHA256 block of output.
SECRET_BYTES = 32
DEFAULT_TOLERANCE = timedelta(minutes=5)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def generate_secret() -> str:
    """A new subscriber secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret. Raises ValueError on a malformed one."""
    encoded = secret.removeprefix(SECRET_PREFIX).strip()
    # Some issuers drop the base64 padding (the reference library pads too).
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("webhook secret is not valid base64 after `whsec_`") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, content, hashlib.sha256).digest()


def _as_list(secret_or_secrets: str | Iterable[str]) -> list[str]:
    if isinstance(secret_or_secrets, str):
        return [secret_or_secrets]
    return list(secret_or_secrets)


def sign(secret_or_secrets: str | Iterable[str], msg_id: str, timestamp: int,
         body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret, space-separated."""
    secrets = _as_list(secret_or_secrets)
    # The spec: ids must not contain "." or `id.timestamp.body` becomes ambiguous.
    if "." in msg_id:
        raise ValueError("webhook-id must not contain '.'")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(
        "v1," + base64.b64encode(_signature(secret_key(s), msg_id, timestamp, body)).decode()
        for s in secrets
    )


def headers(msg_id: str, timestamp: int, body: bytes,
            secrets: str | Iterable[str]) -> dict[str, str]:
    """All Standard Webhooks headers for one attempt, plus the content type."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def active_secrets(secrets: Sequence[str], rotated_until: datetime | None,
                   now: datetime) -> list[str]:
    """Which of a subscriber's secrets (newest first) sign now.

    The newest always signs; older ones keep signing until the rotation grace period
    ends, so receivers can switch to the new secret at their own pace.
    """
    if not secrets:
        return []
    if rotated_until is not None and now < rotated_until:
        return list(secrets)
    return [secrets[0]]


def verify(body: bytes, headers: Mapping[str, str], secret: str | Iterable[str], *,
           tolerance: timedelta = DEFAULT_TOLERANCE, now: datetime | None = None) -> None:
    """Check a received webhook; return None when it is authentic, else raise SignatureError.

    `headers` may use any letter case. `secret` may be several secrets (a receiver in the
    middle of its own rotation): any one matching signature is enough.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not lowered.get(h)]
    if missing:
        raise SignatureError(SignatureReason.MISSING_HEADER,
                             f"missing header(s): {', '.join(missing)}")
    msg_id, raw_ts = lowered[ID_HEADER], lowered[TIMESTAMP_HEADER].strip()
    # The spec's timestamp is integer seconds; anything else is not ours.
    if not raw_ts.isascii() or not raw_ts.isdigit():
        raise SignatureError(SignatureReason.BAD_TIMESTAMP,
                             f"webhook-timestamp is not integer Unix seconds: {raw_ts[:40]!r}")
    timestamp = int(raw_ts)
    current = (now or datetime.now(UTC)).timestamp()
    # The replay window works in both directions: a far-future timestamp could be replayed later.
    if timestamp < current - tolerance.total_seconds():
        raise SignatureError(SignatureReason.TOO_OLD,
                             f"timestamp is {current - timestamp:.0f} s old "
                             f"(tolerance {tolerance.total_seconds():.0f} s)")
    if timestamp > current + tolerance.total_seconds():
        raise SignatureError(SignatureReason.TOO_NEW,
                             f"timestamp is {timestamp - current:.0f} s in the future "
                             f"(tolerance {tolerance.total_seconds():.0f} s)")

    expected = [_signature(secret_key(s), msg_id, timestamp, body) for s in _as_list(secret)]
    candidates = []
    for item in lowered[SIGNATURE_HEADER].split():
        version, _, encoded = item.partition(",")
        if version != "v1":  # e.g. v1a (asymmetric): not ours to check, not a failure either
            continue
        try:
            candidates.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    # Compare every pair without an early exit: time must not say which one was close.
    matched = False
    for want in expected:
        for got in candidates:
            matched |= hmac.compare_digest(want, got)
    if not matched:
        raise SignatureError(SignatureReason.NO_MATCH,
                             "no signature matches (wrong secret, or the body, id or "
                             "timestamp was changed)")
