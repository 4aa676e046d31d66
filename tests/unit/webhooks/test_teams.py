"""Teams: the Adaptive Card field by field, its escaping and limits, and Teams' answers,
against the documented shape (shapes.teams_problems) and a real loopback receiver."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from monitor.events.model import Event, EventType
from monitor.webhooks.channels import Destination, channel_for, render
from monitor.webhooks.channels.teams import build_message
from monitor.webhooks.outcome import OutcomeKind
from monitor.webhooks.sender import send
from tests.unit.webhooks.receiver import Receiver
from tests.unit.webhooks.shapes import TEAMS_CARD, teams_problems
from tests.unit.webhooks.test_channels import FAILED, RECOVERED, event

URL = "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=S1GNATURE"
TEAMS = Destination(kind="teams", url=URL, public_url="https://monitor.example.com/")


def card_of(ev: Event, destination: Destination = TEAMS) -> dict[str, Any]:
    request = render(ev, destination)
    assert request is not None
    message = json.loads(request.body)
    assert teams_problems(message, request.body) == []
    [attachment] = message["attachments"]
    card: dict[str, Any] = attachment["content"]
    return card


def test_failure_card_field_by_field() -> None:
    request = render(FAILED, TEAMS)
    assert request is not None
    message = json.loads(request.body)
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == TEAMS_CARD and attachment["contentUrl"] is None
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    headline, diagnosis, facts, said_label, said, context = card["body"]
    assert headline == {"type": "TextBlock", "wrap": True, "size": "Large",
                        "weight": "Bolder", "style": "heading", "color": "Attention",
                        "text": "sendgrid-relay: probe failing at rcpt with 550 5.1.1"}
    # The backticks are the probe's, but escaped all the same: the card renders Markdown.
    assert diagnosis["text"] == ("**Diagnosis:** the mailbox does not exist\n\n"
                                 "**Next step:** check the seed address in \\`to\\`")
    assert facts == {"type": "FactSet", "facts": [
        {"title": "Step", "value": "rcpt"}, {"title": "Code", "value": "550"},
        {"title": "Enhanced code", "value": "5.1.1"}, {"title": "Class", "value": "permanent"}]}
    assert said_label["text"] == "**Server said:**"
    assert said["fontType"] == "Monospace"
    assert said["text"] == ("<nobody@example.net>: Recipient address rejected: "
                            "User unknown & gone")
    assert context["text"] == ("probe.failed · {{DATE(2026-03-04T05:06:07Z, SHORT)}} "
                               "{{TIME(2026-03-04T05:06:07Z)}} · run run42")
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Details",
                                "url": "https://monitor.example.com/v1/providers/sendgrid-relay"}]
    assert card["fallbackText"] == "sendgrid-relay: probe failing at rcpt with 550 5.1.1"


def test_recovery_is_green_and_short() -> None:
    card = card_of(RECOVERED)
    assert [b["type"] for b in card["body"]] == ["TextBlock", "TextBlock"]
    assert card["body"][0]["text"] == "sendgrid-relay: probe recovered"
    assert card["body"][0]["color"] == "Good"


@pytest.mark.parametrize(("kind", "color"), [
    (EventType.PROBE_CODE_CHANGED, "Warning"), (EventType.TLS_CERTIFICATE_EXPIRING, "Warning"),
    (EventType.WEBHOOK_TEST, "Default"), (EventType.DELIVERY_FAILED, "Attention"),
    (EventType.DELIVERY_RECOVERED, "Good"),
])
def test_colour_follows_the_event_type(kind: EventType, color: str) -> None:
    assert card_of(event(kind))["body"][0]["color"] == color
    failed_check = event(EventType.CHECK_COMPLETED, verdict="failed")
    assert card_of(failed_check)["body"][0]["color"] == "Attention"


@pytest.mark.parametrize("kind", list(EventType))
def test_every_event_type_is_a_valid_card(kind: EventType) -> None:
    card_of(event(kind))


def test_server_text_cannot_format_link_or_list() -> None:
    hostile = event(EventType.PROBE_FAILED, step="rcpt", code=550,
                    message="**urgent** [fix it](https://evil.example/) _now_ `x` \\o/\n"
                            "- step one\n2. step two\n# heading",
                    diagnosis={"summary": "see [docs](https://evil.example/)"})
    body = card_of(hostile)["body"]
    said = body[4]["text"]
    assert said == ("\\*\\*urgent\\*\\* \\[fix it\\](https://evil.example/) \\_now\\_ \\`x\\` "
                    "\\\\o/\n\\- step one\n2\\. step two\n\\# heading")
    assert body[1]["text"] == "**Diagnosis:** see \\[docs\\](https://evil.example/)"
    capabilities = event(EventType.PROBE_CAPABILITIES_CHANGED, added=["[X](https://e.x/)"])
    assert "\\[X\\](https://e.x/)" in card_of(capabilities)["body"][0]["text"]


def test_huge_values_are_clipped_within_28_kb() -> None:
    wide = "\U0001d54f"  # four bytes in UTF-8
    huge = event(EventType.PROBE_FAILED, provider="p" * 60, step=wide * 5000, code=421,
                 message="*" * 20_000, diagnosis={"summary": wide * 9000, "action": "z" * 9000},
                 mailbox=wide * 3000, placement=wide * 3000, subject=wide * 3000,
                 not_after=wide * 3000, verdict=wide * 3000, slow_steps=[wide * 3000],
                 enhanced_code=wide * 3000, **{"class": wide * 3000})
    request = render(huge, TEAMS)
    assert request is not None
    assert teams_problems(json.loads(request.body), request.body) == []
    said = json.loads(request.body)["attachments"][0]["content"]["body"][4]["text"]
    assert said.endswith("…") and not said.endswith("\\…")  # never a split escape


def test_render_needs_the_url_and_redacts_it() -> None:
    request = render(FAILED, TEAMS)
    assert request is not None and URL in request.redact and "S1GNATURE" not in repr(request)
    with pytest.raises(ValueError, match="teams needs the webhook url"):
        render(FAILED, Destination(kind="teams", name="chat"))
    assert build_message(FAILED)["attachments"][0]["content"].get("actions") is None


def test_classify_workflows_and_connector_answers() -> None:
    teams = channel_for("teams")
    assert teams.classify(202, {}, "").kind is OutcomeKind.DELIVERED  # Workflows
    assert teams.classify(200, {}, "1").kind is OutcomeKind.DELIVERED  # a legacy connector
    throttled = teams.classify(200, {}, "Microsoft Teams endpoint returned HTTP error 429")
    assert throttled.kind is OutcomeKind.TRANSIENT and "429" in throttled.reason
    too_big = teams.classify(200, {}, "Webhook message delivery failed with error: Microsoft "
                                      "Teams endpoint returned HTTP error 413")
    assert too_big.kind is OutcomeKind.PERMANENT
    limited = teams.classify(429, {"Retry-After": "7"}, "")
    assert (limited.kind, limited.retry_after) == (OutcomeKind.TRANSIENT, 7.0)
    rejected = teams.classify(400, {}, '{"error":{"code":"TriggerInputSchemaMismatch",'
                                       '"message":"..."}}')
    assert rejected.kind is OutcomeKind.PERMANENT
    assert "TriggerInputSchemaMismatch" in rejected.reason and "card" in rejected.reason
    for status, words in [(401, "signature"), (403, "workflow is off"), (404, "deleted")]:
        outcome = teams.classify(status, {}, "")
        assert outcome.kind is OutcomeKind.PERMANENT and words in outcome.reason, status
    assert teams.classify(410, {}, "").kind is OutcomeKind.DISABLE
    assert teams.classify(502, {}, "bad gateway").kind is OutcomeKind.TRANSIENT


async def test_workflows_and_connector_stand_ins_accept_our_cards(
        rx: Receiver, client: httpx.AsyncClient) -> None:
    for path, status in (("/teams", 202), ("/teams-connector", 200)):
        for ev in (FAILED, RECOVERED, event(EventType.WEBHOOK_TEST)):
            request = render(ev, Destination(kind="teams", url=rx.url(path)))
            assert request is not None
            result = await send(client, request)
            assert (result.status, result.outcome.kind) == (status, OutcomeKind.DELIVERED), (
                result.response_snippet)
    assert len(rx.on("/teams")) == len(rx.on("/teams-connector")) == 3


async def test_refusals_from_a_real_receiver(rx: Receiver, client: httpx.AsyncClient) -> None:
    throttled = render(FAILED, Destination(kind="teams", url=rx.url("/teams-throttled")))
    gone = render(FAILED, Destination(kind="teams", url=rx.url("/teams-gone")))
    assert throttled is not None and gone is not None
    result = await send(client, throttled)
    assert (result.status, result.outcome.kind) == (200, OutcomeKind.TRANSIENT)
    result = await send(client, gone)
    assert (result.status, result.outcome.kind) == (404, OutcomeKind.PERMANENT)
