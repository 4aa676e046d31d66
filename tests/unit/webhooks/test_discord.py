"""Discord: the embed field by field, escaping, mentions and limits, and Discord's answers
(429 retry_after, Unknown Webhook), against the documented shape (shapes.discord_problems)
and a real loopback receiver."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from monitor.events.model import Event, EventType
from monitor.webhooks.channels import Destination, channel_for, render
from monitor.webhooks.channels.discord import waiting
from monitor.webhooks.outcome import OutcomeKind
from monitor.webhooks.sender import send
from tests.unit.webhooks.receiver import Receiver
from tests.unit.webhooks.shapes import discord_problems
from tests.unit.webhooks.test_channels import FAILED, RECOVERED, event

URL = "https://discord.com/api/webhooks/123456789/T0KEN-d1sc0rd-S3CRET"
DISCORD = Destination(kind="discord", url=URL, public_url="https://monitor.example.com/")


def message_of(ev: Event, destination: Destination = DISCORD) -> dict[str, Any]:
    request = render(ev, destination)
    assert request is not None
    message: dict[str, Any] = json.loads(request.body)
    assert discord_problems(message) == []
    return message


def embed_of(ev: Event) -> dict[str, Any]:
    [embed] = message_of(ev)["embeds"]
    return embed  # type: ignore[no-any-return]


def test_failure_embed_field_by_field() -> None:
    message = message_of(FAILED)
    assert message["allowed_mentions"] == {"parse": []}  # no text can ping anyone
    assert "content" not in message
    [embed] = message["embeds"]
    assert embed["title"] == "sendgrid-relay: probe failing at rcpt with 550 5.1.1"
    assert embed["url"] == "https://monitor.example.com/v1/providers/sendgrid-relay"
    assert embed["color"] == 0xD32F2F
    assert embed["timestamp"] == "2026-03-04T05:06:07Z"
    assert embed["footer"] == {"text": "probe.failed · run run42"}
    assert embed["fields"] == [
        {"name": "Step", "value": "rcpt", "inline": True},
        {"name": "Code", "value": "550", "inline": True},
        {"name": "Enhanced code", "value": "5.1.1", "inline": True},
        {"name": "Class", "value": "permanent", "inline": True}]
    # The reply sits in a code block, where Discord renders nothing: it stays as said.
    assert embed["description"] == (
        "**Diagnosis:** the mailbox does not exist\n"
        "**Next step:** check the seed address in \\`to\\`\n"
        "**Server said:**\n```\n<nobody@example.net>: Recipient address rejected: "
        "User unknown & gone\n```")


def test_recovery_is_green_and_short() -> None:
    embed = embed_of(RECOVERED)
    assert embed["title"] == "sendgrid-relay: probe recovered"
    assert embed["color"] == 0x2E7D32
    assert "description" not in embed and "fields" not in embed


@pytest.mark.parametrize(("kind", "color"), [
    (EventType.PROBE_DEGRADED, 0xF9A825), (EventType.WEBHOOK_TEST, 0x1976D2),
    (EventType.DELIVERY_FAILED, 0xD32F2F), (EventType.TLS_CERTIFICATE_RENEWED, 0x2E7D32),
])
def test_colour_follows_the_event_type(kind: EventType, color: int) -> None:
    assert embed_of(event(kind))["color"] == color


@pytest.mark.parametrize("kind", list(EventType))
def test_every_event_type_is_a_valid_message(kind: EventType) -> None:
    message_of(event(kind))


def test_server_text_cannot_mention_format_or_link() -> None:
    hostile = event(EventType.PROBE_FAILED, step="rcpt @here", code=550,
                    message="@everyone ``` <@&123> done",
                    diagnosis={"summary": "@everyone <@123> **now** [fix](https://evil.x/) "
                                          "||hidden|| ~~gone~~\n# big\n> quoted\n-# small"})
    embed = embed_of(hostile)
    assert embed["fields"][0]["value"] == "rcpt \\@here"
    assert embed["title"] == "sendgrid-relay: probe failing at rcpt \\@here with 550"
    diagnosis, *_, fence_end = embed["description"].split("\n")
    assert diagnosis == ("**Diagnosis:** \\@everyone \\<\\@123> \\*\\*now\\*\\* "
                         "\\[fix\\](https://evil.x/) \\|\\|hidden\\|\\| \\~\\~gone\\~\\~")
    lines = embed["description"].split("\n")
    assert lines[1:4] == ["\\# big", "\\> quoted", "\\-# small"]
    # In the code block nothing renders; only a fence of the server's is defused.
    assert "@everyone ''' <@&123> done" in embed["description"] and fence_end == "```"
    assert embed["description"].count("```") == 2


def test_huge_values_stay_within_every_embed_limit() -> None:
    huge = event(EventType.PROBE_FAILED, provider="p" * 60, step="s" * 5000, code=421,
                 message="x" * 20_000, diagnosis={"summary": "*" * 9000, "action": "z" * 9000},
                 mailbox="m" * 3000, placement="q" * 3000, subject="r" * 3000,
                 not_after="t" * 3000, verdict="v" * 3000, slow_steps=["a" * 3000],
                 enhanced_code="e" * 3000, **{"class": "c" * 3000})
    embed = embed_of(huge)  # discord_problems checks 256/4096/25/256/1024/2048 and 6000
    assert len(embed["title"]) <= 256 and len(embed["fields"]) == 10
    assert embed["fields"][0]["value"].endswith("…")


def test_url_waits_for_the_message_and_is_redacted() -> None:
    request = render(FAILED, DISCORD)
    assert request is not None
    assert request.url == URL + "?wait=true"
    assert URL in request.redact and "S3CRET" not in repr(request)
    assert waiting(URL + "?thread_id=77") == URL + "?thread_id=77&wait=true"
    assert waiting(URL + "?wait=false") == URL + "?wait=false"  # the user's choice stands
    with pytest.raises(ValueError, match="discord needs the webhook url"):
        render(FAILED, Destination(kind="discord", name="chat"))


def test_classify_discord_answers() -> None:
    discord = channel_for("discord")
    assert discord.classify(200, {}, '{"id": "1"}').kind is OutcomeKind.DELIVERED
    assert discord.classify(204, {}, "").kind is OutcomeKind.DELIVERED
    body = '{"message": "You are being rate limited.", "retry_after": 64.57, "global": false}'
    limited = discord.classify(429, {"Retry-After": "65"}, body)
    assert (limited.kind, limited.retry_after) == (OutcomeKind.TRANSIENT, 64.57)
    assert discord.classify(429, {"Retry-After": "3"}, "").retry_after == 3.0
    for bad in ("-1", '"soon"', "1e999", "true"):
        odd = discord.classify(429, {"Retry-After": "3"}, f'{{"retry_after": {bad}}}')
        assert odd.retry_after == 3.0, bad
    everywhere = discord.classify(429, {}, '{"retry_after": 1.5, "global": true}')
    assert "global" in everywhere.reason and everywhere.retry_after == 1.5
    gone = discord.classify(404, {}, '{"message": "Unknown Webhook", "code": 10015}')
    assert gone.kind is OutcomeKind.DISABLE and "10015" in gone.reason
    assert discord.classify(404, {}, "404 page not found").kind is OutcomeKind.PERMANENT
    token = discord.classify(401, {}, '{"message": "Invalid Webhook Token", "code": 50027}')
    assert token.kind is OutcomeKind.PERMANENT and "token" in token.reason
    form = discord.classify(400, {}, '{"message": "Invalid Form Body", "code": 50035}')
    assert form.kind is OutcomeKind.PERMANENT and "bug here" in form.reason
    assert discord.classify(502, {}, "").kind is OutcomeKind.TRANSIENT


async def test_stand_in_accepts_our_messages(rx: Receiver, client: httpx.AsyncClient) -> None:
    for ev in (FAILED, RECOVERED, event(EventType.WEBHOOK_TEST)):
        request = render(ev, Destination(kind="discord", url=rx.url("/discord")))
        assert request is not None
        result = await send(client, request)
        # 200 and the message: `?wait=true` made Discord confirm that it saved it.
        assert (result.status, result.outcome.kind) == (200, OutcomeKind.DELIVERED), (
            result.response_snippet)
    assert len(rx.on("/discord")) == 3


async def test_429_and_unknown_webhook_from_a_real_receiver(
        rx: Receiver, client: httpx.AsyncClient) -> None:
    limited = render(FAILED, Destination(kind="discord", url=rx.url("/discord-limited")))
    gone = render(FAILED, Destination(kind="discord", url=rx.url("/discord-gone")))
    assert limited is not None and gone is not None
    result = await send(client, limited)
    assert (result.status, result.outcome.kind) == (429, OutcomeKind.TRANSIENT)
    assert result.retry_after == 1.25  # the body's float, not the header's 2
    result = await send(client, gone)
    assert (result.status, result.outcome.kind) == (404, OutcomeKind.DISABLE)
