"""Every channel kind through the API: a schema in /openapi.json, POST that creates it, 422s
that name the field, and a test event that arrives in that kind's documented shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.webhooks.channels import CHANNELS, KINDS
from tests.unit.api.conftest import Live
from tests.unit.api.test_api import error_of, eventually
from tests.unit.webhooks.shapes import discord_problems, teams_problems


async def test_openapi_has_a_request_schema_per_channel_kind(live: Live) -> None:
    document = (await live.anonymous.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    body = document["paths"]["/v1/subscriptions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SubscriptionCreate"}
    union = schemas["SubscriptionCreate"]
    mapping = union["discriminator"]["mapping"]
    assert union["discriminator"]["propertyName"] == "kind" and set(mapping) == set(KINDS)
    for kind in KINDS:
        name = CHANNELS[kind].create.__name__
        assert mapping[kind] == f"#/components/schemas/{name}"
        assert {"$ref": mapping[kind]} in union["oneOf"]
        assert schemas[name]["properties"]["kind"]["const"] == kind
        assert schemas[name]["additionalProperties"] is False
    for kind, required in (("teams", "url"), ("discord", "url"),
                           ("pagerduty", "routing_key")):
        assert required in schemas[CHANNELS[kind].create.__name__]["required"]
    for view in ("SubscriptionView", "SubscriptionCreated"):
        assert schemas[view]["properties"]["kind"]["enum"] == list(KINDS)


@pytest.mark.parametrize("kind", ["teams", "discord"])
async def test_create_a_chat_subscription_and_its_test_event_arrives(live: Live,
                                                                     kind: str) -> None:
    created = await live.admin.post("/v1/subscriptions", json={
        "name": f"{kind}-chat", "kind": kind, "url": f"{live.receiver.url}/{kind}",
        "events": ["webhook.test", "probe.*"]})
    assert created.status_code == 201, created.text
    sub = created.json()
    assert (sub["kind"], sub["url"]) == (kind, f"{live.receiver.url}/…")
    listed = (await live.read.get("/v1/subscriptions")).json()["items"]
    assert {s["kind"] for s in listed if s["name"] == f"{kind}-chat"} == {kind}

    assert (await live.admin.post(f"/v1/subscriptions/{sub['id']}/test")).status_code == 202

    async def arrived() -> Any:
        got = [r for r in live.receiver.received if r.path == f"/{kind}"]
        return got or None

    [received] = await eventually(arrived)
    message = json.loads(received.body)
    problems = teams_problems(message, received.body) if kind == "teams" else \
        discord_problems(message)
    assert problems == []
    if kind == "discord":
        assert message["embeds"][0]["title"].startswith("Delivery Monitor test event")
    else:
        card = message["attachments"][0]["content"]
        assert card["body"][0]["text"].startswith("Delivery Monitor test event")


async def test_validation_errors_are_422_with_the_field_path(live: Live) -> None:
    cases = [
        ({"name": "x", "kind": "teams"}, "url", "Field required"),
        ({"name": "x", "kind": "discord"}, "url", "Field required"),
        ({"name": "x", "kind": "discord", "url": "ftp://a.example/"}, "url",
         "String should match pattern"),
        ({"name": "x", "kind": "teams", "url": "https://a.example/", "routing_key": "k"},
         "routing_key", "Extra inputs are not permitted"),
        ({"name": "x", "kind": "pagerduty"}, "routing_key", "Field required"),
        ({"name": "x", "kind": "carrier-pigeon", "url": "https://a.example/"}, "kind",
         "Input should be 'generic', 'slack', 'pagerduty', 'teams' or 'discord'"),
        ({"name": "x", "url": "https://a.example/"}, "kind", "Field required"),
        ({"name": "x", "kind": "discord", "url": "https://a.example/", "events": ["no way"]},
         "events", "not event types or patterns: no way"),
    ]
    for body, field, problem in cases:
        response = await live.admin.post("/v1/subscriptions", json=body)
        assert response.status_code == 422, (body, response.text)
        details = error_of(response)["details"]
        assert [d["field"] for d in details] == [field], (body, details)
        assert details[0]["problem"].startswith(problem), (body, details)
