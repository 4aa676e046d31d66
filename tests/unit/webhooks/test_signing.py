"""Signatures checked by the independent `standardwebhooks` verifier, and by ours."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from monitor.webhooks.errors import SignatureError, SignatureReason
from monitor.webhooks.signing import active_secrets, generate_secret, headers, sign, verify

BODY = b'{"type":"probe.failed","timestamp":"2026-01-02T03:04:05Z","data":{"provider":"p"}}'


def test_generated_secret_has_the_standard_shape() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_secret() != secret


def test_reference_library_accepts_our_signature() -> None:
    secret, now = generate_secret(), int(time.time())
    sent = headers("evt_1", now, BODY, secret)
    assert sent["content-type"] == "application/json"
    assert sent["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, sent)["type"] == "probe.failed"


def test_reference_library_agrees_byte_for_byte() -> None:
    secret = generate_secret()
    theirs = Webhook(secret).sign("evt_1", datetime.fromtimestamp(1_700_000_000, UTC),
                                  BODY.decode())
    assert sign(secret, "evt_1", 1_700_000_000, BODY) == theirs


def test_rotation_both_old_and_new_secret_verify() -> None:
    old, new, now = generate_secret(), generate_secret(), int(time.time())
    sent = headers("evt_2", now, BODY, [new, old])
    assert len(sent["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, sent)
        verify(BODY, sent, secret)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, sent)


@pytest.mark.parametrize("change", ["body", "timestamp", "id"])
def test_tampering_is_rejected_by_both(change: str) -> None:
    secret, now = generate_secret(), int(time.time())
    sent = headers("evt_3", now, BODY, secret)
    body = BODY
    if change == "body":
        body = BODY.replace(b"probe.failed", b"probe.recovered")
    elif change == "timestamp":
        sent["webhook-timestamp"] = str(now - 1)
    else:
        sent["webhook-id"] = "evt_4"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, sent)
    with pytest.raises(SignatureError) as caught:
        verify(body, sent, secret)
    assert caught.value.reason is SignatureReason.NO_MATCH


def test_verify_reports_why() -> None:
    secret, now = generate_secret(), datetime(2026, 1, 1, tzinfo=UTC)
    ts = int(now.timestamp())
    good = headers("evt_5", ts, BODY, secret)

    def reason(hdrs: dict[str, str], **kw: object) -> SignatureReason:
        with pytest.raises(SignatureError) as caught:
            verify(BODY, hdrs, secret, now=kw.get("at", now))  # type: ignore[arg-type]
        return caught.value.reason

    assert reason({k: v for k, v in good.items() if k != "webhook-id"}) is (
        SignatureReason.MISSING_HEADER)
    assert reason({**good, "webhook-timestamp": "12.5"}) is SignatureReason.BAD_TIMESTAMP
    assert reason(good, at=now + timedelta(minutes=5, seconds=1)) is SignatureReason.TOO_OLD
    assert reason(good, at=now - timedelta(minutes=5, seconds=1)) is SignatureReason.TOO_NEW
    assert reason({**good, "webhook-signature": "v1,!!notbase64"}) is SignatureReason.NO_MATCH
    # Inside the window, in any header case, with an unknown scheme alongside: valid.
    verify(BODY, {k.title(): v for k, v in good.items()}, secret,
           now=now + timedelta(minutes=4))
    verify(BODY, {**good, "webhook-signature": "v1a,xyz " + good["webhook-signature"]},
           secret, now=now)


def test_verify_accepts_a_receiver_holding_several_secrets() -> None:
    mine, ts = generate_secret(), int(time.time())
    verify(BODY, headers("evt_6", ts, BODY, mine), [generate_secret(), mine])


def test_ids_with_a_dot_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        sign(generate_secret(), "a.b", 1, BODY)


def test_unpadded_secret_from_another_issuer_is_accepted() -> None:
    key = b"0123456789abcdef012345678"  # 25 bytes: base64 needs "==" padding
    secret = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    sent = headers("evt_7", int(time.time()), BODY, secret)
    Webhook(secret).verify(BODY, sent)


def test_active_secrets_follow_the_grace_period() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert active_secrets(["new", "old"], now + timedelta(hours=1), now) == ["new", "old"]
    assert active_secrets(["new", "old"], now, now) == ["new"]
    assert active_secrets(["new", "old"], None, now) == ["new"]
    assert active_secrets([], None, now) == []
