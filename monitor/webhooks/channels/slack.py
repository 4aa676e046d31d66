"""Slack incoming webhooks: a Block Kit message a person reads at a glance.

    header   ":red_circle: sendgrid-relay: probe failing at rcpt with 550 5.1.1"
    section  diagnosis summary and the next step (when the probe diagnosed one)
    section  fields: Step | Code | Enhanced code | Class (| Mailbox | ...)
    section  what the server said, in a code block
    context  event type · time · run id · "Details" link back to the API

Plus a top-level `text`, the fallback Slack shows in notifications and to clients that
cannot draw blocks (docs.slack.dev, "Sending messages using incoming webhooks").
Slack's documented limits are enforced by clipping, never by failing: header text 150
characters, section text 3000, at most 10 fields of at most 2000 each, context at most
10 elements, at most 50 blocks. mrkdwn treats `&`, `<` and `>` as control characters
("Formatting text for app surfaces": escape them), and SMTP replies are full of
`<user@example.com>`, so everything we did not write ourselves is escaped.

Errors (api.slack.com changelog 2016-05-17, "Improving error conditions for Incoming
Webhooks"): 400 invalid_payload/user_not_found, 403 action_prohibited (and
invalid_token), 404 channel_not_found/no_service/no_team are permanent; 410
channel_is_archived disables; 429 is retried after Retry-After; 500 rollup_error is
transient. Slack accepts about one message per second per webhook URL: `pace_per_url`,
which the sender's `DeliveryLimiter` keeps to.

The emoji follows `text.tone`, from the event type's declared attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from monitor.events.model import Event, rfc3339
from monitor.webhooks.channels import text
from monitor.webhooks.channels.base import Destination, OutgoingRequest, post_to_url
from monitor.webhooks.channels.schema import UrlConfig, UrlCreate
from monitor.webhooks.outcome import Outcome, OutcomeKind, classify_http

HEADER_MAX, SECTION_MAX, FIELD_MAX, FIELDS_MAX, BLOCKS_MAX = 150, 3000, 2000, 10, 50
FENCE = "`" * 3
TEXT_MAX = 3000  # Slack truncates longer top-level text; notifications show far less

EMOJI = {text.Tone.GOOD: ":large_green_circle:", text.Tone.BAD: ":red_circle:",
         text.Tone.WARNING: ":warning:", text.Tone.INFO: ":information_source:"}

# The error strings Slack answers with, and what a person should do about each.
_ERRORS = {
    "invalid_payload": "Slack could not parse the message (a bug here: please report it)",
    "invalid_blocks": "Slack rejected the blocks (a bug here: please report it)",
    "user_not_found": "the user the webhook posts as no longer exists",
    "action_prohibited": "the workspace forbids posting with this webhook",
    "invalid_token": "the webhook URL's token was revoked: create a new webhook",
    "channel_not_found": "the channel no longer exists: create a new webhook",
    "no_service": "the webhook was removed or disabled in Slack: create a new one",
    "no_team": "the Slack workspace no longer exists",
    "channel_is_archived": "the channel was archived",
    "rate_limited": "Slack's rate limit (1 message per second per webhook)",
}


def escape(value: str) -> str:
    """Slack mrkdwn control characters; nothing else is escaped (Slack docs)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": value}


def build_message(event: Event, public_url: str | None = None) -> dict[str, Any]:
    """The incoming-webhook JSON for one event (pure, for tests and previews)."""
    headline = text.headline(event)
    title = text.clip(f"{EMOJI[text.tone(event)]} {headline}", HEADER_MAX)
    blocks: list[dict[str, Any]] = [{
        "type": "header", "text": {"type": "plain_text", "text": title, "emoji": True},
    }]
    summary, action = text.diagnosis(event)
    lines = []
    if summary:
        lines.append(f"*Diagnosis:* {escape(summary)}")
    if action:
        lines.append(f"*Next step:* {escape(action)}")
    if lines:
        joined = text.clip("\n".join(lines), SECTION_MAX)
        blocks.append({"type": "section", "text": _mrkdwn(joined)})
    facts = text.facts(event)[:FIELDS_MAX]
    if facts:
        fields = [_mrkdwn(text.clip(f"*{label}*\n{escape(value)}", FIELD_MAX))
                  for label, value in facts]
        blocks.append({"type": "section", "fields": fields})
    said = event.data.get("message")
    if said and not event.type.quotes_message:
        # A fence inside the reply would end our code block early.
        quoted = text.clip(escape(str(said)).replace(FENCE, "'''"), SECTION_MAX - 40)
        blocks.append({"type": "section",
                       "text": _mrkdwn(f"*Server said:*\n{FENCE}{quoted}{FENCE}")})
    context = [f"`{event.type.value}`", f"<!date^{int(event.timestamp.timestamp())}"
               f"^{{date_short_pretty}} {{time_secs}}|{rfc3339(event.timestamp)}>"]
    if event.run_id:
        context.append(f"run `{escape(event.run_id)}`")
    link = text.details_link(event, public_url)
    if link:
        context.append(f"<{escape(link)}|Details>")
    blocks.append({"type": "context", "elements": [_mrkdwn(" · ".join(context))]})

    fallback = headline
    summary_line = summary or event.data.get("message")
    if summary_line and not event.type.quotes_message:
        fallback += f": {summary_line}"
    return {"text": text.clip(escape(fallback), TEXT_MAX), "blocks": blocks[:BLOCKS_MAX]}


class SlackConfig(UrlConfig):
    kind: Literal["slack"]


class SlackSubscriptionCreate(UrlCreate):
    kind: Literal["slack"]


class SlackChannel:
    kind = "slack"
    config = SlackConfig
    create = SlackSubscriptionCreate
    pace_per_url: float | None = 1.0

    def render(self, event: Event, destination: Destination) -> OutgoingRequest | None:
        return post_to_url(self.kind, destination,
                           build_message(event, destination.public_url))

    def classify(self, status: int, headers: Mapping[str, str], body_snippet: str
                 ) -> Outcome:
        outcome = classify_http(status, headers, body_snippet)
        error = body_snippet.strip().strip('"')
        meaning = _ERRORS.get(error)
        if outcome.kind is OutcomeKind.DELIVERED or meaning is None:
            return outcome
        return Outcome(outcome.kind, f"HTTP {status} {error}: {meaning}", outcome.retry_after)


CHANNEL = SlackChannel()
