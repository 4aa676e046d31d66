"""The generic classification of a receiver's answer (see the tree in outcome.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.webhooks.outcome import OutcomeKind, classify_http, parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "kind"), [
    (200, OutcomeKind.DELIVERED), (202, OutcomeKind.DELIVERED), (204, OutcomeKind.DELIVERED),
    (301, OutcomeKind.PERMANENT), (302, OutcomeKind.PERMANENT), (307, OutcomeKind.PERMANENT),
    (400, OutcomeKind.PERMANENT), (401, OutcomeKind.PERMANENT), (404, OutcomeKind.PERMANENT),
    (408, OutcomeKind.TRANSIENT), (429, OutcomeKind.TRANSIENT),
    (410, OutcomeKind.DISABLE),
    (500, OutcomeKind.TRANSIENT), (502, OutcomeKind.TRANSIENT), (503, OutcomeKind.TRANSIENT),
    (504, OutcomeKind.TRANSIENT),
])
def test_status_classes(status: int, kind: OutcomeKind) -> None:
    assert classify_http(status, {}).kind is kind


def test_redirect_says_where_it_points() -> None:
    outcome = classify_http(301, {"Location": "https://new.example/hook"})
    assert "https://new.example/hook" in outcome.reason
    assert "not followed" in outcome.reason


@pytest.mark.parametrize("status", [200, 202, 400, 500])
def test_disable_header_wins_whatever_the_status(status: int) -> None:
    outcome = classify_http(status, {"Webhook-Delivery": "Disable"})
    assert outcome.kind is OutcomeKind.DISABLE


def test_retry_after_seconds_on_429_and_503_only() -> None:
    assert classify_http(429, {"retry-after": "2"}).retry_after == 2.0
    assert classify_http(503, {"Retry-After": "120"}).retry_after == 120.0
    assert classify_http(500, {"retry-after": "2"}).retry_after is None


def test_retry_after_http_date() -> None:
    value = "Thu, 01 Jan 2026 12:01:30 GMT"
    assert parse_retry_after(value, now=NOW) == 90.0
    assert classify_http(429, {"retry-after": value}, now=NOW).retry_after == 90.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=NOW) == 0.0  # past


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e9", "Thu, 99 Foo 2026"])
def test_unparseable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_reason_quotes_the_body_briefly() -> None:
    outcome = classify_http(500, {}, "internal\n  error " + "x" * 500)
    assert outcome.reason.startswith("HTTP 500: internal error x")
    assert len(outcome.reason) < 250
