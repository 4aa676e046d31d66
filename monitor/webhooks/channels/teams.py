"""Microsoft Teams: an Adaptive Card that reads at a glance like the Slack message.

Posted to a Workflows ("When a Teams webhook request is received", Power Automate) URL or
a legacy incoming-webhook connector URL, as Teams documents for both ("Create and send
messages", learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/
connectors-using):

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {"type": "AdaptiveCard", "version": "1.4", "body": [...],
                                  "actions": [...]}}]}

    body     TextBlock   headline, large, coloured by `text.tone` (Attention/Warning/Good)
             TextBlock   diagnosis and next step (when the probe diagnosed one)
             FactSet     Step | Code | Enhanced code | Class (| Mailbox | ...)
             TextBlock   what the server said, monospace
             TextBlock   event type · time (DATE/TIME functions: the reader's locale) · run
    actions  Action.OpenUrl "Details", back to this monitor (settings.public_url)

Adaptive Card TextBlocks and facts render a Markdown subset (bold, italic, lists, links),
so everything we did not write ourselves is escaped (`escape`): a server's reply cannot
turn into a link or a list. A message is at most 28 KB: every value is clipped.

Responses: Workflows answers 202 Accepted; a legacy connector 200 with the body "1", and
200 also when Teams refused the message, naming the error in the body ("Microsoft Teams
endpoint returned HTTP error 429": connectors do not answer 429 themselves). 429 and 5xx
are retried (after Retry-After); 400 (a card Teams or the workflow rejects), 401/403 (the
URL's signature refused, the workflow turned off) and 404 (the workflow or connector was
deleted) are permanent: a person must fix the subscription. Teams allows a webhook 4
requests a second and 60 in 30 seconds ("Rate limiting for connectors"): `pace_per_url`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from monitor.events.model import Event, rfc3339
from monitor.webhooks.channels import text
from monitor.webhooks.channels.base import Destination, OutgoingRequest, post_to_url
from monitor.webhooks.channels.schema import UrlConfig, UrlCreate
from monitor.webhooks.outcome import Outcome, OutcomeKind, classify_http

CARD = "application/vnd.microsoft.card.adaptive"
VERSION = "1.4"
# Within 28 KB even when every character takes four bytes in UTF-8.
HEADLINE_MAX, LINE_MAX, FACT_MAX, SAID_MAX = 300, 600, 200, 1500

COLOR = {text.Tone.GOOD: "Good", text.Tone.BAD: "Attention", text.Tone.WARNING: "Warning",
         text.Tone.INFO: "Default"}

# Markdown that Adaptive Cards render, made literal: emphasis, links ([text](url)) and
# code anywhere; lists (and, for renderers that follow CommonMark further, headings and
# quotes) at the start of a line.
escape = text.markdown_escaper(r"\\*_\[\]`", r"#{1,6}|>|[-+]|\d+\.")

_CONNECTOR_ERROR = re.compile(r"HTTP error (\d{3})")


def _text(value: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, "wrap": True, **style}


def build_card(event: Event, public_url: str | None = None) -> dict[str, Any]:
    """The Adaptive Card for one event (pure, for tests and previews)."""
    headline = text.headline(event)
    body: list[dict[str, Any]] = [_text(
        text.clip_escaped(headline, HEADLINE_MAX, escape), size="Large", weight="Bolder",
        style="heading", color=COLOR[text.tone(event)])]
    summary, action = text.diagnosis(event)
    lines = [f"**{label}:** {text.clip_escaped(value, LINE_MAX, escape)}"
             for label, value in (("Diagnosis", summary), ("Next step", action)) if value]
    if lines:
        # Two line breaks: one is not a new line in Adaptive Card Markdown.
        body.append(_text("\n\n".join(lines)))
    facts = text.facts(event)
    if facts:
        body.append({"type": "FactSet", "facts": [
            {"title": label, "value": text.clip_escaped(value, FACT_MAX, escape)}
            for label, value in facts]})
    said = event.data.get("message")
    if said and not event.type.quotes_message:
        body.append(_text("**Server said:**", spacing="Medium"))
        body.append(_text(text.clip_escaped(str(said), SAID_MAX, escape), fontType="Monospace"))
    # The DATE/TIME functions take RFC 3339 to the second, without a fraction.
    when = rfc3339(event.timestamp.replace(microsecond=0))
    context = [escape(event.type.value), f"{{{{DATE({when}, SHORT)}}}} {{{{TIME({when})}}}}"]
    if event.run_id:
        context.append(f"run {escape(event.run_id)}")
    body.append(_text(" · ".join(context), size="Small", isSubtle=True, spacing="Medium"))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": VERSION, "body": body,
        "fallbackText": text.clip(headline, HEADLINE_MAX),
        "msteams": {"width": "Full"},
    }
    link = text.details_link(event, public_url)
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Details", "url": link}]
    return card


def build_message(event: Event, public_url: str | None = None) -> dict[str, Any]:
    """The webhook body: a message with the card as its one attachment."""
    return {"type": "message", "attachments": [
        {"contentType": CARD, "contentUrl": None, "content": build_card(event, public_url)}]}


def _error_code(body_snippet: str) -> str | None:
    """`error.code` of a Workflows (Logic Apps) error body, when there is one."""
    try:
        document = json.loads(body_snippet)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:100] if code else None


_HINTS = {
    400: "Teams rejected the card (a bug here, or a workflow that expects another shape)",
    401: "Teams refused the URL's signature: copy the workflow's URL again",
    403: "Teams refused the post (the workflow is off, or its owner lost access)",
    404: "no such workflow or webhook: it was deleted; create one and update the "
         "subscription",
}


class TeamsConfig(UrlConfig):
    kind: Literal["teams"]


class TeamsSubscriptionCreate(UrlCreate):
    kind: Literal["teams"]


class TeamsChannel:
    kind = "teams"
    config = TeamsConfig
    create = TeamsSubscriptionCreate
    pace_per_url: float | None = 0.5  # 60 requests in 30 s (and under 4 a second)

    def render(self, event: Event, destination: Destination) -> OutgoingRequest | None:
        # The URL carries its credential (a Workflows `sig=`, a connector's path).
        return post_to_url(self.kind, destination,
                           build_message(event, destination.public_url))

    def classify(self, status: int, headers: Mapping[str, str], body_snippet: str
                 ) -> Outcome:
        outcome = classify_http(status, headers, body_snippet)
        if outcome.kind is OutcomeKind.DELIVERED:
            refused = _CONNECTOR_ERROR.search(body_snippet)
            if refused is None:
                return outcome
            code = int(refused[1])  # a legacy connector's 200 that is not a success
            kind = OutcomeKind.TRANSIENT if code == 429 or code >= 500 else \
                OutcomeKind.PERMANENT
            return Outcome(kind, f"HTTP {status}, but Teams answered HTTP error {code}")
        hint = _HINTS.get(status)
        if hint is None or outcome.kind is not OutcomeKind.PERMANENT:
            return outcome
        error = _error_code(body_snippet)
        return Outcome(outcome.kind, f"HTTP {status}{f' {error}' if error else ''}: {hint}")


CHANNEL = TeamsChannel()
