"""Channel payloads, field by field, against the documented Slack and PagerDuty shapes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter
from standardwebhooks import Webhook

from monitor.config.models import SubscriptionConfig
from monitor.events.model import Event, EventType
from monitor.webhooks.channels import CHANNELS, Destination, channel_for, render
from monitor.webhooks.channels.pagerduty import PagerDutyChannel
from monitor.webhooks.channels.text import headline
from monitor.webhooks.outcome import OutcomeKind
from monitor.webhooks.signing import generate_secret, verify
from tests.unit.webhooks.shapes import pagerduty_problems, slack_problems

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SLACK = Destination(kind="slack", url="https://hooks.slack.com/services/T1/B2/SeCrEt123",
                    public_url="https://monitor.example.com/")
PD = Destination(kind="pagerduty", routing_key="R0UT1NGKEY0000000000000000000000")


def event(kind: EventType, provider: str = "sendgrid-relay", **data: Any) -> Event:
    return Event(id=f"evt{kind.value.replace('.', '')}", type=kind, timestamp=WHEN,
                 provider=provider, run_id="run42", data=data)


FAILED = event(
    EventType.PROBE_FAILED, step="rcpt", code=550, enhanced_code="5.1.1",
    message="<nobody@example.net>: Recipient address rejected: User unknown & gone",
    diagnosis={"summary": "the mailbox does not exist",
               "action": "check the seed address in `to`"},
    **{"class": "permanent"})
RECOVERED = event(EventType.PROBE_RECOVERED, duration_ms=812.0)


def body_of(kind: EventType | Event, destination: Destination) -> dict[str, Any]:
    ev = kind if isinstance(kind, Event) else event(kind)
    request = render(ev, destination)
    assert request is not None
    parsed: dict[str, Any] = json.loads(request.body)
    return parsed


# Generic -------------------------------------------------------------------------------

def test_generic_body_is_the_envelope_and_what_is_signed_is_what_is_sent() -> None:
    secret = generate_secret()
    dest = Destination(kind="generic", url="https://ops.example.com/hook", secrets=(secret,))
    request = render(FAILED, dest)
    assert request is not None
    assert json.loads(request.body) == FAILED.envelope()
    assert json.loads(request.body)["data"]["class"] == "permanent"
    assert request.headers["content-type"] == "application/json"
    signed = request.signed(FAILED.id, int(time.time()), [secret])
    assert signed.body is request.body  # signing never re-serialises
    assert signed.headers["webhook-id"] == FAILED.id
    Webhook(secret).verify(signed.body, dict(signed.headers))
    verify(signed.body, signed.headers, secret)


def test_generic_without_secret_still_carries_id_and_timestamp() -> None:
    request = render(FAILED, Destination(kind="generic", url="https://ops.example.com/h"))
    assert request is not None
    signed = request.signed(FAILED.id, 1_800_000_000, [])
    assert signed.headers["webhook-id"] == FAILED.id
    assert signed.headers["webhook-timestamp"] == "1800000000"
    assert "webhook-signature" not in signed.headers


def test_destination_from_config_keeps_secrets_out_of_repr() -> None:
    sub = TypeAdapter(SubscriptionConfig).validate_python({
        "name": "ops", "kind": "generic", "url": "https://ops.example.com/x",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    dest = Destination.from_config(sub, public_url="https://m.example.com")
    assert dest.secrets == ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",)
    assert "whsec_" not in repr(dest)
    request = render(FAILED, dest)
    assert request is not None
    assert "whsec_" not in repr(request.signed("id", 1, list(dest.secrets)))


def test_unknown_kind_is_named() -> None:
    with pytest.raises(ValueError, match="unknown subscription kind 'carrier-pigeon'"):
        channel_for("carrier-pigeon")
    assert set(CHANNELS) == {"generic", "slack", "pagerduty", "teams", "discord"}


# Slack ---------------------------------------------------------------------------------

def test_slack_failure_message_field_by_field() -> None:
    message = body_of(FAILED, SLACK)
    assert slack_problems(message) == []
    header, diagnosis, fields, said, context = message["blocks"]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == (
        ":red_circle: sendgrid-relay: probe failing at rcpt with 550 5.1.1")
    assert diagnosis["text"] == {"type": "mrkdwn", "text": (
        "*Diagnosis:* the mailbox does not exist\n"
        "*Next step:* check the seed address in `to`")}
    assert [f["text"] for f in fields["fields"]] == [
        "*Step*\nrcpt", "*Code*\n550", "*Enhanced code*\n5.1.1", "*Class*\npermanent"]
    # mrkdwn control characters from the server's reply are escaped (Slack docs).
    assert said["text"]["text"] == (
        "*Server said:*\n```&lt;nobody@example.net&gt;: Recipient address rejected: "
        "User unknown &amp; gone```")
    line = context["elements"][0]["text"]
    assert "`probe.failed`" in line and "run `run42`" in line
    assert f"<!date^{int(WHEN.timestamp())}^" in line and "|2026-03-04T05:06:07Z>" in line
    assert "<https://monitor.example.com/v1/providers/sendgrid-relay|Details>" in line
    assert message["text"].startswith("sendgrid-relay: probe failing at rcpt with 550 5.1.1: ")


def test_slack_recovery_is_green_and_short() -> None:
    message = body_of(RECOVERED, SLACK)
    assert slack_problems(message) == []
    assert message["blocks"][0]["text"]["text"] == (
        ":large_green_circle: sendgrid-relay: probe recovered")
    assert [b["type"] for b in message["blocks"]] == ["header", "context"]


@pytest.mark.parametrize(("ev", "emoji"), [
    (event(EventType.PROBE_FAILED, **{"class": "transient"}), ":red_circle:"),  # any class
    (event(EventType.DELIVERY_FAILED), ":red_circle:"),
    (event(EventType.CHECK_COMPLETED, verdict="failed"), ":red_circle:"),
    (event(EventType.CHECK_COMPLETED, verdict="passed"), ":information_source:"),
    (event(EventType.PROBE_CODE_CHANGED), ":warning:"),
    (event(EventType.PROBE_CAPABILITIES_CHANGED), ":warning:"),
    (event(EventType.PROBE_DEGRADED), ":warning:"),
    # Still a warning within a day of expiry, when PagerDuty already says error.
    (event(EventType.TLS_CERTIFICATE_EXPIRING, days_left=0.5), ":warning:"),
    (event(EventType.WEBHOOK_TEST), ":information_source:"),
    (event(EventType.PROBE_LATENCY_RECOVERED), ":large_green_circle:"),
    (event(EventType.TLS_CERTIFICATE_RENEWED), ":large_green_circle:"),
], ids=lambda v: v if isinstance(v, str) else v.type.value)
def test_slack_emoji_follows_the_declared_event_type(ev: Event, emoji: str) -> None:
    assert body_of(ev, SLACK)["blocks"][0]["text"]["text"].startswith(f"{emoji} ")


@pytest.mark.parametrize("kind", list(EventType))
def test_slack_renders_every_event_type_within_limits(kind: EventType) -> None:
    assert slack_problems(body_of(kind, SLACK)) == []


def test_slack_clips_huge_values_to_the_documented_limits() -> None:
    huge = event(EventType.PROBE_FAILED, provider="p" * 60, step="s" * 400, code=421,
                 message="<x>" * 5000, diagnosis={"summary": "y" * 5000, "action": "z"},
                 **{"class": "c" * 3000})
    message = body_of(huge, SLACK)
    assert slack_problems(message) == []
    assert len(message["blocks"][0]["text"]["text"]) == 150
    assert len(message["text"]) <= 3000


def test_slack_classify_explains_documented_errors() -> None:
    slack = channel_for("slack")
    assert slack.classify(200, {}, "ok").kind is OutcomeKind.DELIVERED
    for status, error in [(404, "channel_not_found"), (404, "no_service"),
                          (403, "invalid_token"), (403, "action_prohibited"),
                          (400, "invalid_payload")]:
        outcome = slack.classify(status, {}, error)
        assert outcome.kind is OutcomeKind.PERMANENT, error
        assert error in outcome.reason
    assert slack.classify(410, {}, "channel_is_archived").kind is OutcomeKind.DISABLE
    limited = slack.classify(429, {"retry-after": "30"}, "rate_limited")
    assert (limited.kind, limited.retry_after) == (OutcomeKind.TRANSIENT, 30.0)
    assert slack.classify(500, {}, "rollup_error").kind is OutcomeKind.TRANSIENT


def test_slack_request_redacts_its_url() -> None:
    request = render(FAILED, SLACK)
    assert request is not None
    assert SLACK.url in request.redact
    assert "SeCrEt" not in repr(request)


# PagerDuty -----------------------------------------------------------------------------

def test_pagerduty_trigger_field_by_field() -> None:
    body = body_of(FAILED, PD)
    assert pagerduty_problems(body) == []
    assert body["routing_key"] == PD.routing_key
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "delivery-monitor/sendgrid-relay/probe"
    payload = body["payload"]
    assert payload["summary"] == ("sendgrid-relay: probe failing at rcpt with 550 5.1.1: "
                                  "the mailbox does not exist")
    assert payload["source"] == "sendgrid-relay"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2026-03-04T05:06:07Z"
    assert payload["component"] == "rcpt"
    assert payload["class"] == "permanent"
    assert payload["custom_details"] == {
        "event_type": "probe.failed", "event_id": FAILED.id, "run_id": "run42",
        "Step": "rcpt", "Code": "550", "Enhanced code": "5.1.1", "Class": "permanent",
        "server_reply": FAILED.data["message"],
        "diagnosis": "the mailbox does not exist",
        "next_step": "check the seed address in `to`",
    }


def test_certificate_renewed_resolves_the_expiring_incident() -> None:
    expiring = event(EventType.TLS_CERTIFICATE_EXPIRING, days_left=6.5, threshold_days=7)
    renewed = event(EventType.TLS_CERTIFICATE_RENEWED, days_left=89.9)
    trigger, resolve = body_of(expiring, PD), body_of(renewed, PD)
    assert [trigger["event_action"], resolve["event_action"]] == ["trigger", "resolve"]
    # The key an earlier version used for the expiring incident, so it still resolves.
    assert resolve["dedup_key"] == trigger["dedup_key"] == (
        "delivery-monitor/sendgrid-relay/tls.certificate_expiring")
    assert pagerduty_problems(resolve) == []
    assert headline(renewed) == "sendgrid-relay: TLS certificate renewed, now expires in 90 days"


def test_fail_then_recover_is_trigger_then_resolve_with_one_dedup_key() -> None:
    trigger, resolve = body_of(FAILED, PD), body_of(RECOVERED, PD)
    assert [trigger["event_action"], resolve["event_action"]] == ["trigger", "resolve"]
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert pagerduty_problems(resolve) == []
    # Deterministic: a new process (new event ids) computes the same key.
    again = event(EventType.PROBE_FAILED, step="connect", **{"class": "network"})
    assert body_of(again, PD)["dedup_key"] == trigger["dedup_key"]
    # Families do not cross: delivery and latency incidents are separate.
    keys = {body_of(k, PD)["dedup_key"] for k in (EventType.DELIVERY_RECOVERED,
                                                  EventType.PROBE_LATENCY_RECOVERED)}
    assert trigger["dedup_key"] not in keys and len(keys) == 2


@pytest.mark.parametrize(("klass", "severity"), [
    ("auth", "critical"), ("tls", "critical"), ("permanent", "critical"),
    ("protocol", "critical"), ("network", "error"), ("timeout", "error"),
    ("delivery", "error"), ("transient", "warning"), ("mystery", "error"),
])
def test_pagerduty_severity_by_failure_class(klass: str, severity: str) -> None:
    body = body_of(event(EventType.PROBE_FAILED, **{"class": klass}), PD)
    assert body["payload"]["severity"] == severity


def test_pagerduty_severity_of_other_paging_types() -> None:
    assert body_of(EventType.PROBE_DEGRADED, PD)["payload"]["severity"] == "warning"
    soon = event(EventType.TLS_CERTIFICATE_EXPIRING, days_left=12.5, threshold_days=14)
    assert body_of(soon, PD)["payload"]["severity"] == "warning"
    today = event(EventType.TLS_CERTIFICATE_EXPIRING, days_left=0.4, threshold_days=1)
    assert body_of(today, PD)["payload"]["severity"] == "error"
    test = body_of(EventType.WEBHOOK_TEST, PD)
    assert test["payload"]["severity"] == "info"
    assert test["dedup_key"].startswith("delivery-monitor/test/")


@pytest.mark.parametrize("kind", [EventType.PROBE_CODE_CHANGED,
                                  EventType.PROBE_CAPABILITIES_CHANGED,
                                  EventType.CHECK_COMPLETED])
def test_pagerduty_skips_informational_events_unless_configured(kind: EventType) -> None:
    assert render(event(kind), PD) is None
    opted_in = PagerDutyChannel(page_on={kind}).render(event(kind), PD)
    assert opted_in is not None
    assert pagerduty_problems(json.loads(opted_in.body)) == []


@pytest.mark.parametrize("kind", list(EventType))
def test_pagerduty_every_type_is_valid_or_skipped(kind: EventType) -> None:
    request = render(event(kind), PD)
    assert request is None or pagerduty_problems(json.loads(request.body)) == []


def test_pagerduty_summary_is_clipped_to_1024() -> None:
    long = event(EventType.PROBE_FAILED, diagnosis={"summary": "x" * 5000, "action": "y"})
    assert len(body_of(long, PD)["payload"]["summary"]) == 1024


def test_pagerduty_url_default_override_and_classify() -> None:
    request = render(FAILED, PD)
    assert request is not None
    assert request.url == "https://events.pagerduty.com/v2/enqueue"
    assert PD.routing_key in request.redact
    proxied = render(FAILED, Destination(kind="pagerduty", routing_key="k" * 32,
                                         url="http://127.0.0.1:9/v2/enqueue"))
    assert proxied is not None and proxied.url == "http://127.0.0.1:9/v2/enqueue"
    pd = channel_for("pagerduty")
    assert pd.classify(202, {}, '{"status":"success"}').kind is OutcomeKind.DELIVERED
    bad = pd.classify(400, {}, '{"status":"invalid event"}')
    assert bad.kind is OutcomeKind.PERMANENT and "routing key" in bad.reason
    throttled = pd.classify(429, {"Retry-After": "5"}, "")
    assert (throttled.kind, throttled.retry_after) == (OutcomeKind.TRANSIENT, 5.0)


def test_pagerduty_needs_a_routing_key() -> None:
    with pytest.raises(ValueError, match="routing_key"):
        render(FAILED, Destination(kind="pagerduty", name="oncall"))
