"""The HTTP API through the real app (lifespan on): auth, every route, errors, pagination."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session
from standardwebhooks import Webhook

from monitor import store
from monitor.events.model import Event, EventType
from tests.unit.api.conftest import ADMIN, Live
from tests.unit.test_detect import run


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


async def eventually(check: Any, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_auth(live: Live) -> None:
    response = await live.anonymous.get("/v1/providers")
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    bad = await live.anonymous.get("/v1/providers",
                                   headers={"Authorization": "Bearer wrong-token-xxxxxxxxxx"})
    assert bad.status_code == 401
    assert (await live.read.get("/v1/providers")).status_code == 200
    forbidden = await live.read.post("/v1/providers/sandbox/probe")
    assert forbidden.status_code == 403 and error_of(forbidden)["code"] == "forbidden"
    assert (await live.admin.get("/v1/providers")).status_code == 200  # admin reads too


async def test_open_routes(live: Live) -> None:
    assert (await live.anonymous.get("/healthz")).json() == {"status": "ok"}
    ready = await live.anonymous.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    metrics = await live.anonymous.get("/metrics")
    assert metrics.status_code == 200 and "monitor_outbox_depth" in metrics.text
    assert (await live.anonymous.get("/openapi.json")).status_code == 200


async def test_probe_now_then_provider_state_and_rate_limit(live: Live) -> None:
    response = await live.admin.post("/v1/providers/sandbox/probe")
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["ok"] and [s["step"] for s in result["steps"]][-2:] == ["auth", "quit"]
    again = await live.admin.post("/v1/providers/sandbox/probe")
    assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1
    provider = (await live.read.get("/v1/providers/sandbox")).json()
    assert provider["state"]["health"] == "up"
    assert provider["last_result"]["run_id"] == result["run_id"]
    listed = (await live.read.get("/v1/providers")).json()["items"]
    assert [p["name"] for p in listed] == ["sandbox"]
    metrics = (await live.anonymous.get("/metrics")).text
    assert 'monitor_probes_total{failure_class="",outcome="ok",provider="sandbox"} 1.0' in metrics


async def test_unknown_provider_404(live: Live) -> None:
    for path in ("/v1/providers/nope", "/v1/providers/nope/results"):
        response = await live.read.get(path)
        assert response.status_code == 404 and "nope" in error_of(response)["message"]
    assert (await live.admin.post("/v1/providers/nope/probe")).status_code == 404


async def test_results_pagination(live: Live) -> None:
    def add(session: Session) -> None:
        for i in range(5):
            store.runs.add_run(session, run().model_copy(update={
                "run_id": f"{i:025d}", "provider": "sandbox"}))

    await live.ctx.writer.run(add)
    page1 = (await live.read.get("/v1/providers/sandbox/results?limit=2")).json()
    assert [r["run_id"] for r in page1["items"]] == [f"{4:025d}", f"{3:025d}"]
    page2 = (await live.read.get(
        f"/v1/providers/sandbox/results?limit=2&cursor={page1['next_cursor']}")).json()
    assert [r["run_id"] for r in page2["items"]] == [f"{2:025d}", f"{1:025d}"]
    page3 = (await live.read.get(
        f"/v1/providers/sandbox/results?limit=2&cursor={page2['next_cursor']}")).json()
    assert [r["run_id"] for r in page3["items"]] == [f"{0:025d}"]
    assert page3["next_cursor"] is None
    for query in ("limit=0", "limit=abc", "limit=999", "cursor=%%%", "cursor=AAAA____"):
        response = await live.read.get(f"/v1/providers/sandbox/results?{query}")
        assert response.status_code == 400, query


async def test_events_filters_and_pages(live: Live) -> None:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    events = [Event(id=f"{i:025d}", type=kind, timestamp=base + timedelta(hours=i), provider=p)
              for i, (kind, p) in enumerate([
                  (EventType.PROBE_FAILED, "a"), (EventType.PROBE_RECOVERED, "a"),
                  (EventType.PROBE_FAILED, "b"), (EventType.DELIVERY_FAILED, "a")])]
    await live.ctx.writer.run(lambda s: store.events.add_events(s, events, base))
    got = (await live.read.get("/v1/events?provider=a&type=probe.failed&type=delivery.failed"
                               )).json()["items"]
    assert [(e["type"], e["provider"]) for e in got] == [("delivery.failed", "a"),
                                                         ("probe.failed", "a")]
    since = (await live.read.get("/v1/events", params={
        "since": "2026-11-01T01:30:00Z", "until": "2026-11-01T03:00:00Z"})).json()["items"]
    assert [e["id"] for e in since] == [f"{2:025d}"]
    page = (await live.read.get("/v1/events?limit=3")).json()
    rest = (await live.read.get(f"/v1/events?limit=3&cursor={page['next_cursor']}")).json()
    assert len(page["items"]) == 3 and len(rest["items"]) == 1
    assert (await live.read.get("/v1/events?type=probe.nope")).status_code == 400
    assert (await live.read.get("/v1/events?since=yesterday")).status_code == 400
    assert (await live.read.get("/v1/events?since=2026-11-01T00:00:00")).status_code == 400


async def test_subscription_crud_and_secret_shown_once(live: Live) -> None:
    created = await live.admin.post("/v1/subscriptions", json={
        "name": "ops", "kind": "generic", "url": f"{live.receiver.url}/ops",
        "events": ["probe.*", "webhook.test"]})
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["secret"].startswith("whsec_")
    assert created.headers["location"] == f"/v1/subscriptions/{sub['id']}"
    fetched = (await live.read.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert "secret" not in fetched and fetched["secret_hint"].startswith("sha256:")
    assert sub["secret"][-4:] not in fetched["secret_hint"]
    assert fetched["url"].endswith("/…") and "/ops" not in fetched["url"]
    listing = (await live.read.get("/v1/subscriptions")).json()["items"]
    assert {s["name"] for s in listing} == {"from-config", "ops"}
    assert sub["secret"] not in (await live.read.get("/v1/subscriptions")).text

    rotated = await live.admin.patch(f"/v1/subscriptions/{sub['id']}",
                                     json={"rotate_secret": True, "events": ["*"]})
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != sub["secret"] and rotated.json()["rotating_until"]
    assert rotated.json()["events"] == ["*"]

    duplicate = await live.admin.post("/v1/subscriptions", json={
        "name": "ops", "kind": "generic", "url": f"{live.receiver.url}/x"})
    assert duplicate.status_code == 409
    config_sub = next(s for s in listing if s["name"] == "from-config")
    assert (await live.admin.patch(f"/v1/subscriptions/{config_sub['id']}",
                                   json={"enabled": False})).status_code == 409
    assert (await live.admin.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 204
    assert (await live.read.get(f"/v1/subscriptions/{sub['id']}")).status_code == 404


async def test_subscription_validation(live: Live) -> None:
    cases = [
        ({"name": "x", "kind": "generic"}, "url"),
        ({"name": "x", "kind": "pagerduty"}, "routing_key"),
        ({"name": "x", "kind": "carrier-pigeon", "url": "https://a.example/"}, "kind"),
        ({"name": "x", "kind": "generic", "url": "ftp://a.example/"}, "url"),
        ({"name": "x", "kind": "generic", "url": "https://a.example/", "events": ["no way"]},
         "events"),
        ({"name": "x", "kind": "generic", "url": "https://a.example/", "colour": "red"},
         "colour"),
        ({"name": "x", "kind": "generic", "url": "https://a.example/", "secret": "hunter2"},
         "secret"),
    ]
    for body, field in cases:
        response = await live.admin.post("/v1/subscriptions", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in str(error_of(response)["details"]), (field, response.text)
        assert "hunter2" not in response.text
    assert (await live.admin.post("/v1/subscriptions", content=b"{not json",
                                  headers={"content-type": "application/json"})
            ).status_code == 400
    assert (await live.admin.post("/v1/subscriptions", content=b"name=x",
                                  headers={"content-type": "text/plain"})).status_code == 415


async def test_test_event_delivery_log_and_retry(live: Live) -> None:
    sub = (await live.admin.post("/v1/subscriptions", json={
        "name": "ops", "kind": "generic", "url": f"{live.receiver.url}/ops",
        "events": ["webhook.test"]})).json()
    accepted = await live.admin.post(f"/v1/subscriptions/{sub['id']}/test")
    assert accepted.status_code == 202
    delivery_id = accepted.json()["id"]
    [first] = await live.receiver.wait_for(1)
    payload = Webhook(sub["secret"]).verify(first.body, first.headers)
    assert payload["type"] == "webhook.test"

    async def delivered() -> Any:
        items = (await live.read.get(f"/v1/subscriptions/{sub['id']}/deliveries")
                 ).json()["items"]
        return items if items and items[0]["status"] == "delivered" else None

    items = await eventually(delivered)
    assert items[0]["id"] == delivery_id and items[0]["attempt_log"][0]["status"] == 200

    retried = await live.admin.post(f"/v1/deliveries/{delivery_id}/retry")
    assert retried.status_code == 202
    second = (await live.receiver.wait_for(2))[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert (await live.admin.post("/v1/deliveries/nope/retry")).status_code == 404
    assert (await live.read.post(f"/v1/deliveries/{delivery_id}/retry")).status_code == 403


async def test_unknown_route_and_method_are_json(live: Live) -> None:
    missing = await live.read.get("/v1/nothing-here")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = await live.read.put("/v1/providers")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"


async def test_openapi_document_matches_routes(live: Live) -> None:
    document = (await live.anonymous.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item}
    expected = {
        ("GET", "/v1/providers"), ("GET", "/v1/providers/{name}"),
        ("GET", "/v1/providers/{name}/results"), ("POST", "/v1/providers/{name}/probe"),
        ("GET", "/v1/events"), ("GET", "/v1/subscriptions"), ("POST", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions/{id}"), ("PATCH", "/v1/subscriptions/{id}"),
        ("DELETE", "/v1/subscriptions/{id}"), ("POST", "/v1/subscriptions/{id}/test"),
        ("GET", "/v1/subscriptions/{id}/deliveries"), ("POST", "/v1/deliveries/{id}/retry"),
        ("GET", "/metrics"), ("GET", "/openapi.json"), ("POST", "/v1/checks"),
        ("GET", "/v1/checks/{id}"),
    }
    assert expected <= operations
    for item in document["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    if ref:
                        assert ref.split("/")[-1] in document["components"]["schemas"], ref
    from openapi_spec_validator import validate

    validate(document)


async def test_pre_campaign_check_end_to_end(live: Live) -> None:
    started = await live.admin.post("/v1/checks", json={
        "provider": "sandbox", "from": "news@shop.example", "seeds": ["seed"],
        "subject": "Winter sale", "text": "Hello", "html": "<p>Hello</p>"})
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    assert location == started.json()["location"] == f"/v1/checks/{started.json()['id']}"

    async def done() -> Any:
        report = (await live.read.get(location)).json()
        return report if report["status"] in ("done", "error") else None

    report = await eventually(done, within=30)
    assert report["status"] == "done" and report["verdict"] == "passed", report["reasons"]
    [seed] = report["seeds"]
    assert seed["accepted"] and seed["arrived"] and seed["placement"] == "inbox"
    assert report["dns"]["dmarc"]["policy"] == "reject" and report["dns"]["mx"]["present"]
    events = (await live.read.get("/v1/events?type=check.completed")).json()["items"]
    assert events and events[0]["data"]["check_id"] == report["id"]
    assert events[0]["data"]["verdict"] == "passed"


async def test_check_request_errors(live: Live) -> None:
    base = {"provider": "sandbox", "from": "news@shop.example", "seeds": ["seed"]}
    injected = await live.admin.post("/v1/checks", json={**base, "subject": "Hi\r\nBcc: x@y"})
    assert injected.status_code == 422 and "injection" in injected.text
    bad_from = await live.admin.post("/v1/checks", json={**base, "from": "a@b\nBcc: c@d"})
    assert bad_from.status_code == 422
    unknown = await live.admin.post("/v1/checks", json={**base, "seeds": ["nobody"]})
    assert unknown.status_code == 422 and "nobody" in unknown.text
    assert (await live.admin.post("/v1/checks", json={**base, "provider": "x"})
            ).status_code == 422
    assert (await live.read.post("/v1/checks", json=base)).status_code == 403
    assert (await live.read.get("/v1/checks/nope")).status_code == 404


async def test_hostile_inputs_are_4xx_not_5xx(live: Live) -> None:
    for query in ("since=0001-01-01T00:00:00%2B01:00", "until=9999-12-31T23:00:00-05:00"):
        response = await live.read.get(f"/v1/events?{query}")
        assert response.status_code == 400, (query, response.text)
    deep = b"[" * 100_000 + b"]" * 100_000
    response = await live.admin.post("/v1/subscriptions", content=deep,
                                     headers={"content-type": "application/json"})
    assert response.status_code in (400, 413), response.text
    huge = b'{"name": "' + b"x" * 2_000_000 + b'"}'
    response = await live.admin.post("/v1/subscriptions", content=huge,
                                     headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_a_number_over_the_digit_limit_is_400(live: Live) -> None:
    # int() refuses over 4300 digits (CVE-2020-10735); json.loads raises ValueError then.
    digits = b"1" * 5000
    for path, body in (("/v1/subscriptions", b'{"name": "x", "kind": "generic", "url": '
                        b'"https://a.example/", "max_attempts": ' + digits + b"}"),
                       ("/v1/checks", b'{"provider": "sandbox", "seeds": [' + digits + b"]}"),
                       ("/v1/subscriptions", digits)):
        response = await live.admin.post(path, content=body,
                                         headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, response.text)
        error = error_of(response)
        assert error["code"] == "bad_request" and "digits" in error["message"]
        assert "1111" not in response.text


@pytest.mark.parametrize("path", ["/v1/subscriptions", "/v1/checks"])
async def test_client_leaving_mid_body_is_not_an_error(live: Live, path: str,
                                                       caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.api")
    host, port = live.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                 '{"name": "half'.encode())
    await writer.drain()
    writer.close()  # 1000 bytes promised, 14 sent
    await writer.wait_closed()

    async def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "monitor.api"]

    [record] = await eventually(logged)
    assert record.levelno == logging.DEBUG and record.exc_info is None, record.getMessage()
    assert getattr(record, "action", None) == "client_disconnected"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
