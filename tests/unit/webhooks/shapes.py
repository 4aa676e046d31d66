"""Checkers for the documented shapes of Slack and PagerDuty payloads.

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
"""

from __future__ import annotations

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
