"""Discord webhooks: one embed that reads at a glance like the Slack message.

"Execute Webhook" (discord.com/developers/docs/resources/webhook), with `?wait=true`:
without it Discord answers 204 before the message is saved and "a message that is not
saved does not return an error". The body:

    {"embeds": [{"title": headline, "url": details link, "description": diagnosis,
                 next step and the server's reply in a code block, "color": by
                 `text.tone`, "fields": [{"name": "Step", "value": "rcpt",
                 "inline": true}, ...], "footer": {"text": "probe.failed · run …"},
                 "timestamp": RFC 3339}],
     "allowed_mentions": {"parse": []}}

Embed limits ("Embed Limits", resources/message): title 256 characters, description
4096, at most 25 fields of name 256 and value 1024, footer 2048, and 6000 in all: every
value is clipped within a budget that keeps the sum under 6000. Discord renders Markdown
in titles, descriptions and field values, and mentions (`<@id>`, `@everyone`): what we did
not write is escaped with backslashes, and `allowed_mentions: {"parse": []}` means that no
text can ping anyone even so.

Responses ("Rate Limits", topics/rate-limits; "JSON Error Codes", topics/opcodes-and-
status-codes): 2xx delivered; 429 is retried after the body's `retry_after` (seconds, a
float: more precise than the `Retry-After` header, used when the body has none); 404 with
code 10015 "Unknown Webhook" means the webhook was deleted and never comes back, like 410
Gone: the subscription is disabled (a bare 404, from a proxy say, stays a permanent
failure); 401 with 50027 "Invalid Webhook Token" and 400 (50035 "Invalid Form Body") are
permanent. Discord says not to hard-code its rate limits, so there is no pacing: its 429s
say when to come back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from monitor.events.model import Event, rfc3339
from monitor.webhooks.channels import text
from monitor.webhooks.channels.base import Destination, OutgoingRequest, post_to_url
from monitor.webhooks.channels.schema import UrlConfig, UrlCreate
from monitor.webhooks.outcome import Outcome, OutcomeKind, classify_http

TITLE_MAX, DESCRIPTION_MAX, FIELDS_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX = 256, 4096, 25, 256, 1024
FOOTER_MAX, TOTAL_MAX = 2048, 6000
# Ours, within Discord's: ten facts of 200 leave the description most of the 6000.
FACT_MAX, SAID_MAX = 200, 1500
FENCE = "`" * 3

COLOR = {text.Tone.GOOD: 0x2E7D32, text.Tone.BAD: 0xD32F2F, text.Tone.WARNING: 0xF9A825,
         text.Tone.INFO: 0x1976D2}

# Discord unescapes a backslash before any ASCII punctuation. Anywhere in a line these
# start formatting, masked links ([text](url)), mentions and other <...> tags (<@id>,
# <#channel>, <t:...>), @everyone and spoilers (||); at the start of a line, headings,
# subtext (-#), quotes and lists.
escape = text.markdown_escaper(r"\\*_~`|\[\]<@", r"#{1,3}|-#|>{1,3}|[-+]|\d+\.")

UNKNOWN_WEBHOOK, INVALID_TOKEN, INVALID_FORM = 10015, 50027, 50035
_HINTS = {
    INVALID_TOKEN: "the webhook URL's token is wrong: copy the URL again from Discord",
    INVALID_FORM: "Discord rejected the message (a bug here: please report it)",
}


def _said(value: str, limit: int) -> str:
    # Inside a code block nothing is rendered; only a fence would end it early.
    return text.clip(value.replace(FENCE, "'''"), limit)


def build_message(event: Event, public_url: str | None = None) -> dict[str, Any]:
    """The Execute Webhook JSON for one event (pure, for tests and previews)."""
    title = text.clip_escaped(text.headline(event), TITLE_MAX, escape)
    footer = text.clip(" · ".join([event.type.value, *(
        [f"run {event.run_id}"] if event.run_id else [])]), FOOTER_MAX)
    fields: list[dict[str, Any]] = [
        {"name": text.clip(label, FIELD_NAME_MAX),
         "value": text.clip_escaped(value, min(FACT_MAX, FIELD_VALUE_MAX), escape),
         "inline": len(value) <= 40}
        for label, value in text.facts(event)[:FIELDS_MAX]]
    used = len(title) + len(footer) + sum(len(f["name"]) + len(f["value"]) for f in fields)
    budget = min(DESCRIPTION_MAX, TOTAL_MAX - used)

    summary, action = text.diagnosis(event)
    parts = [f"**{label}:** {text.clip_escaped(value, budget // 3, escape)}"
             for label, value in (("Diagnosis", summary), ("Next step", action)) if value]
    said = event.data.get("message")
    if said and not event.type.quotes_message:
        room = budget - sum(len(p) + 1 for p in parts) - len("**Server said:**\n\n\n")
        room -= 2 * len(FENCE)
        if room > 20:
            parts.append(f"**Server said:**\n{FENCE}\n{_said(str(said), min(room, SAID_MAX))}"
                         f"\n{FENCE}")
    embed: dict[str, Any] = {"title": title, "color": COLOR[text.tone(event)],
                             "timestamp": rfc3339(event.timestamp), "footer": {"text": footer}}
    if parts:
        embed["description"] = text.clip("\n".join(parts), budget)
    if fields:
        embed["fields"] = fields
    link = text.details_link(event, public_url)
    if link:
        embed["url"] = link
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


def waiting(url: str) -> str:
    """`url` with `wait=true`, so that Discord reports a message it could not save."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key == "wait" for key, _ in query):
        query.append(("wait", "true"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _error(body_snippet: str) -> dict[str, Any]:
    try:
        document = json.loads(body_snippet)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


class DiscordConfig(UrlConfig):
    kind: Literal["discord"]


class DiscordSubscriptionCreate(UrlCreate):
    kind: Literal["discord"]


class DiscordChannel:
    kind = "discord"
    config = DiscordConfig
    create = DiscordSubscriptionCreate
    pace_per_url: float | None = None

    def render(self, event: Event, destination: Destination) -> OutgoingRequest | None:
        # The URL's last segment is the webhook's token.
        return post_to_url(self.kind, destination,
                           build_message(event, destination.public_url),
                           url=waiting(destination.url) if destination.url else None)

    def classify(self, status: int, headers: Mapping[str, str], body_snippet: str
                 ) -> Outcome:
        outcome = classify_http(status, headers, body_snippet)
        if outcome.kind is OutcomeKind.DELIVERED:
            return outcome
        error = _error(body_snippet)
        if status == 429:
            after = _seconds(error.get("retry_after"))
            scope = " (global)" if error.get("global") is True else ""
            return Outcome(OutcomeKind.TRANSIENT, f"HTTP 429: Discord's rate limit{scope}",
                           after if after is not None else outcome.retry_after)
        code = error.get("code")
        said = " ".join(str(error.get("message") or "").split())[:100]
        named = f"HTTP {status} {code} {said}".rstrip() if isinstance(code, int) else None
        if status == 404 and code == UNKNOWN_WEBHOOK:
            return Outcome(OutcomeKind.DISABLE, f"{named}: the webhook was deleted in Discord; "
                                                "create a new one and update the subscription")
        hint = _HINTS.get(code) if isinstance(code, int) else None
        if named is not None and outcome.kind is OutcomeKind.PERMANENT:
            return Outcome(outcome.kind, f"{named}: {hint}" if hint else named)
        return outcome


CHANNEL = DiscordChannel()
