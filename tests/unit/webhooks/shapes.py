"""Checkers for the documented shapes of Slack, PagerDuty, Teams and Discord payloads.

Written from the vendors' documentation, independently of the channel code, so both the
unit tests and the loopback stand-ins reject what Slack or PagerDuty would reject:

- Slack Block Kit (docs.slack.dev reference: blocks, composition objects): at most 50
  blocks; every block has a `type`; header text is `plain_text` ≤ 150; section `text` is
  a text object ≤ 3000, `fields` ≤ 10 items of ≤ 2000; context ≤ 10 elements; text
  objects are `{"type": "plain_text"|"mrkdwn", "text": str}`.
- PagerDuty Events API v2 (PagerDuty/api-schema events-v2 openapiv3.json): `routing_key`
  and `event_action` in {trigger, acknowledge, resolve} always; `dedup_key` ≤ 255
  (required unless trigger); a trigger's `payload` has `summary` (≤ 1024), `source`,
  `severity` in {critical, error, warning, info}.
- Microsoft Teams and Discord: see their sections below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SEVERITIES = {"critical", "error", "warning", "info"}


def _text_object(obj: Any, where: str, *, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return [f"{where}: not a text object"]
    allowed = {"plain_text"} if plain_only else {"plain_text", "mrkdwn"}
    problems = []
    if obj.get("type") not in allowed:
        problems.append(f"{where}: type {obj.get('type')!r} not in {sorted(allowed)}")
    if not obj["text"] or len(obj["text"]) > limit:
        problems.append(f"{where}: text length {len(obj['text'])} not in 1..{limit}")
    return problems


def slack_problems(message: Any) -> list[str]:
    """Everything wrong with an incoming-webhook message; [] when Slack would take it."""
    if not isinstance(message, dict):
        return ["message is not an object"]
    problems = []
    if not isinstance(message.get("text"), str) or not message["text"]:
        problems.append("no top-level `text` fallback")
    blocks = message.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return [*problems, "`blocks` must be a list of 1..50"]
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            problems += _text_object(block.get("text"), where, limit=150, plain_only=True)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: section without text or fields")
            if "text" in block:
                problems += _text_object(block["text"], f"{where}.text", limit=3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    problems.append(f"{where}.fields: 1..10 items")
                else:
                    for j, field in enumerate(fields):
                        problems += _text_object(field, f"{where}.fields[{j}]", limit=2000)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}.elements: 1..10 items")
            else:
                for j, element in enumerate(elements):
                    problems += _text_object(element, f"{where}.elements[{j}]", limit=3000)
        elif kind in ("divider",):
            pass
        else:
            problems.append(f"{where}: unexpected block type {kind!r}")
    return problems


def pagerduty_problems(event: Any) -> list[str]:
    """Everything wrong with an Events API v2 body; [] when PagerDuty would take it."""
    if not isinstance(event, dict):
        return ["event is not an object"]
    problems = []
    if not isinstance(event.get("routing_key"), str) or not event["routing_key"]:
        problems.append("routing_key missing")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append(f"event_action {action!r}")
    key = event.get("dedup_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 255):
        problems.append("dedup_key must be a string of 1..255")
    if action != "trigger" and key is None:
        problems.append(f"{action} needs a dedup_key")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*problems, "trigger without payload"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not 1 <= len(summary) <= 1024:
            problems.append("payload.summary must be 1..1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            problems.append("payload.source missing")
        if payload.get("severity") not in SEVERITIES:
            problems.append(f"payload.severity {payload.get('severity')!r}")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict):
            problems.append("payload.custom_details must be an object")
    return problems


# Microsoft Teams ------------------------------------------------------------------------
# "Create and send messages" (msteams-docs, webhooks-and-connectors/how-to/connectors-using):
# `type` "message", `attachments` of card objects whose `contentType` is the Adaptive Card
# type and whose `content` is the card; every native element except Action.Submit; a
# message of at most 28 KB. The card (adaptivecards.io schema): `type` "AdaptiveCard", a
# `version`, a `body` of elements, optional `actions`.

TEAMS_CARD = "application/vnd.microsoft.card.adaptive"
TEAMS_MAX_BYTES = 28 * 1024
_ELEMENTS = {"TextBlock", "FactSet", "Container", "ColumnSet", "Image", "RichTextBlock",
             "ActionSet", "Table"}
_ACTIONS = {"Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"}
_VERSIONS = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"}


def _card_element_problems(element: Any, where: str) -> list[str]:
    if not isinstance(element, dict) or element.get("type") not in _ELEMENTS:
        return [f"{where}: not an Adaptive Card element ({element!r:.60})"]
    if element["type"] == "TextBlock" and (
            not isinstance(element.get("text"), str) or not element["text"]):
        return [f"{where}: TextBlock without text"]
    if element["type"] == "FactSet":
        facts = element.get("facts")
        if not isinstance(facts, list) or not facts:
            return [f"{where}: FactSet without facts"]
        return [f"{where}.facts[{i}]: needs string title and value" for i, fact in
                enumerate(facts) if not isinstance(fact, dict) or not all(
                    isinstance(fact.get(k), str) and fact[k] for k in ("title", "value"))]
    return []


def teams_problems(message: Any, raw: bytes | None = None) -> list[str]:
    """Everything wrong with a Teams webhook message; [] when Teams would take it."""
    if not isinstance(message, dict):
        return ["message is not an object"]
    problems = []
    if raw is not None and len(raw) > TEAMS_MAX_BYTES:
        problems.append(f"{len(raw)} bytes: over the 28 KB message limit")
    if message.get("type") != "message":
        problems.append("`type` must be \"message\"")
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return [*problems, "`attachments` must be a non-empty list"]
    for i, attachment in enumerate(attachments):
        where = f"attachments[{i}]"
        if not isinstance(attachment, dict) or attachment.get("contentType") != TEAMS_CARD:
            problems.append(f"{where}.contentType must be {TEAMS_CARD}")
            continue
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            problems.append(f"{where}.content must be an AdaptiveCard")
            continue
        if card.get("version") not in _VERSIONS:
            problems.append(f"{where}.content.version {card.get('version')!r}")
        body = card.get("body")
        if not isinstance(body, list) or not body:
            problems.append(f"{where}.content.body must be a non-empty list")
        else:
            for j, element in enumerate(body):
                problems += _card_element_problems(element, f"{where}.content.body[{j}]")
        for j, action in enumerate(card.get("actions") or []):
            if not isinstance(action, dict) or action.get("type") not in _ACTIONS:
                problems.append(f"{where}.content.actions[{j}]: unsupported action")
            elif action["type"] == "Action.OpenUrl" and not str(
                    action.get("url", "")).startswith(("https://", "http://")):
                problems.append(f"{where}.content.actions[{j}]: Action.OpenUrl needs a url")
    return problems


# Discord --------------------------------------------------------------------------------
# "Execute Webhook" (discord-api-docs, resources/webhook): at least one of `content` (≤ 2000
# characters) or `embeds` (≤ 10); `allowed_mentions` an allowed-mention object. "Embed
# Limits" (resources/message): title 256, description 4096, ≤ 25 fields of name 256 and
# value 1024 (both required), footer text 2048, author name 256, and at most 6000 in all of
# these across the embeds; leading and trailing whitespace is trimmed, so a value of only
# spaces is empty. `color` an integer, `timestamp` ISO 8601.

DISCORD_MENTION_TYPES = {"roles", "users", "everyone"}


def _discord_text(value: Any, where: str, limit: int, *, required: bool = False) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, str) or (required and not value.strip()):
        return [f"{where}: must be a non-empty string"]
    return [f"{where}: {len(value)} characters, over {limit}"] if len(value) > limit else []


def discord_problems(message: Any) -> list[str]:
    """Everything wrong with an Execute Webhook body; [] when Discord would take it."""
    if not isinstance(message, dict):
        return ["message is not an object"]
    problems = _discord_text(message.get("content"), "content", 2000)
    embeds = message.get("embeds")
    if not message.get("content") and not embeds:
        problems.append("needs content or embeds")
    if embeds is not None and (not isinstance(embeds, list) or len(embeds) > 10):
        return [*problems, "`embeds` must be a list of at most 10"]
    total = 0
    for i, embed in enumerate(embeds or []):
        where = f"embeds[{i}]"
        if not isinstance(embed, dict):
            problems.append(f"{where}: not an object")
            continue
        for key, limit in (("title", 256), ("description", 4096)):
            problems += _discord_text(embed.get(key), f"{where}.{key}", limit)
            total += len(embed.get(key) or "")
        fields = embed.get("fields") or []
        if not isinstance(fields, list) or len(fields) > 25:
            problems.append(f"{where}.fields: at most 25")
            fields = []
        for j, field in enumerate(fields):
            if not isinstance(field, dict):
                problems.append(f"{where}.fields[{j}]: not an object")
                continue
            problems += _discord_text(field.get("name"), f"{where}.fields[{j}].name", 256,
                                      required=True)
            problems += _discord_text(field.get("value"), f"{where}.fields[{j}].value", 1024,
                                      required=True)
            if "inline" in field and not isinstance(field["inline"], bool):
                problems.append(f"{where}.fields[{j}].inline must be a boolean")
            total += len(str(field.get("name") or "")) + len(str(field.get("value") or ""))
        for key, limit in (("footer", 2048), ("author", 256)):
            part = embed.get(key)
            if part is not None:
                name = "text" if key == "footer" else "name"
                text = part.get(name) if isinstance(part, dict) else None
                problems += _discord_text(text, f"{where}.{key}.{name}", limit, required=True)
                total += len(text or "") if isinstance(text, str) else 0
        color = embed.get("color")
        if color is not None and (not isinstance(color, int) or not 0 <= color <= 0xFFFFFF):
            problems.append(f"{where}.color must be an integer 0..0xFFFFFF")
        if "timestamp" in embed:
            try:
                datetime.fromisoformat(str(embed["timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{where}.timestamp is not ISO 8601")
        if "url" in embed and not str(embed["url"]).startswith(("https://", "http://")):
            problems.append(f"{where}.url must be http(s)")
    if total > 6000:
        problems.append(f"embeds hold {total} characters, over 6000")
    mentions = message.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse") if isinstance(mentions, dict) else None
        if not isinstance(parse, list) or not set(parse) <= DISCORD_MENTION_TYPES:
            problems.append("allowed_mentions.parse must list roles/users/everyone")
    return problems
