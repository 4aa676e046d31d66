"""`send()` against a real HTTP receiver on loopback: every outcome of the tree."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from monitor.events.model import Event, EventType
from monitor.webhooks.channels import Destination, OutgoingRequest, render
from monitor.webhooks.outcome import OutcomeKind
from monitor.webhooks.sender import SNIPPET_BYTES, scrub, send
from monitor.webhooks.signing import generate_secret
from tests.unit.webhooks.receiver import Receiver

SECRET = generate_secret()
EVENT = Event(id="0190aaaabbbbcccc", type=EventType.PROBE_FAILED, provider="relay",
              timestamp=datetime(2026, 1, 1, tzinfo=UTC), run_id="r1",
              data={"step": "rcpt", "code": 550, "enhanced_code": "5.1.1",
                    "message": "no such user", "class": "permanent"})


def generic(rx: Receiver, path: str) -> OutgoingRequest:
    request = render(EVENT, Destination(kind="generic", url=rx.url(path), secrets=(SECRET,)))
    assert request is not None
    return request.signed(EVENT.id, int(time.time()), [SECRET])


async def test_2xx_is_delivered_and_the_receiver_can_verify(rx: Receiver,
                                                            client: httpx.AsyncClient) -> None:
    result = await send(client, generic(rx, "/ok"))
    assert (result.status, result.outcome.kind) == (200, OutcomeKind.DELIVERED)
    assert result.response_snippet == "ok"
    assert result.latency_ms > 0
    [got] = rx.on("/ok")
    assert json.loads(got.body) == EVENT.envelope()
    Webhook(SECRET).verify(got.body, got.headers)  # what arrived is what was signed


async def test_500_is_transient(rx: Receiver, client: httpx.AsyncClient) -> None:
    result = await send(client, generic(rx, "/fail"))
    assert (result.status, result.outcome.kind) == (500, OutcomeKind.TRANSIENT)
    assert result.response_snippet == "boom"
    assert result.retry_after is None


async def test_500_twice_then_200_keeps_the_webhook_id(rx: Receiver,
                                                       client: httpx.AsyncClient) -> None:
    rx.script[:] = [500, 500]
    kinds = [(await send(client, generic(rx, "/script"))).outcome.kind for _ in range(3)]
    assert kinds == [OutcomeKind.TRANSIENT, OutcomeKind.TRANSIENT, OutcomeKind.DELIVERED]
    assert {r.headers["webhook-id"] for r in rx.on("/script")} == {EVENT.id}


async def test_429_retry_after_is_reported(rx: Receiver, client: httpx.AsyncClient) -> None:
    result = await send(client, generic(rx, "/limited"))
    assert (result.status, result.outcome.kind) == (429, OutcomeKind.TRANSIENT)
    assert result.retry_after == 2.0


async def test_hanging_receiver_times_out_within_the_bound(rx: Receiver,
                                                           client: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    result = await send(client, generic(rx, "/hang"), timeout=0.5)
    elapsed = time.perf_counter() - started
    assert result.status is None
    assert result.outcome.kind is OutcomeKind.TRANSIENT
    assert "timed out after 0.5 s" in result.outcome.reason
    assert 0.45 <= elapsed < 1.5
    assert result.record == result.outcome.reason


async def test_410_disables(rx: Receiver, client: httpx.AsyncClient) -> None:
    result = await send(client, generic(rx, "/gone"))
    assert (result.status, result.outcome.kind) == (410, OutcomeKind.DISABLE)


async def test_disable_header_disables(rx: Receiver, client: httpx.AsyncClient) -> None:
    result = await send(client, generic(rx, "/disable"))
    assert (result.status, result.outcome.kind) == (200, OutcomeKind.DISABLE)


async def test_redirect_is_not_followed(rx: Receiver, client: httpx.AsyncClient) -> None:
    result = await send(client, generic(rx, "/moved"))
    assert (result.status, result.outcome.kind) == (301, OutcomeKind.PERMANENT)
    assert "/ok" in result.outcome.reason
    assert rx.on("/ok") == []  # nothing went to the redirect target


async def test_connection_refused_is_transient(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = OutgoingRequest(url=f"http://127.0.0.1:{port}/hook", headers={}, body=b"{}")
    result = await send(client, request, timeout=5)
    assert (result.status, result.outcome.kind) == (None, OutcomeKind.TRANSIENT)
    assert result.outcome.reason.startswith("cannot connect")


async def test_unusable_url_is_permanent(client: httpx.AsyncClient) -> None:
    request = OutgoingRequest(url="ftp://127.0.0.1/hook", headers={}, body=b"{}")
    result = await send(client, request)
    assert result.outcome.kind is OutcomeKind.PERMANENT


async def test_snippet_is_at_most_1kb(rx: Receiver, client: httpx.AsyncClient) -> None:
    result = await send(client, generic(rx, "/big"))
    assert result.outcome.kind is OutcomeKind.DELIVERED
    assert len(result.response_snippet.encode()) == SNIPPET_BYTES


async def test_snippet_never_holds_the_secret(rx: Receiver, client: httpx.AsyncClient) -> None:
    # A receiver that echoes the request back: Slack URL and routing key must not survive.
    slack_url = rx.url("/echo") + "?token=T0KEN-SL4CK-S3CRET"
    request = render(EVENT, Destination(kind="slack", url=slack_url, secrets=(SECRET,)))
    assert request is not None
    key = "R0UT1NG-KEY-0000"
    request = OutgoingRequest(url=request.url, headers={**request.headers, "x-key": key},
                              body=request.body + SECRET.encode() + key.encode(),
                              channel="generic", redact=(*request.redact, key))
    result = await send(client, request)
    assert result.status == 200
    for secret in ("T0KEN-SL4CK-S3CRET", key, SECRET, SECRET.removeprefix("whsec_")):
        assert secret not in result.response_snippet
    assert "[redacted]" in result.response_snippet


async def test_slack_and_pagerduty_stand_ins_accept_our_payloads(
        rx: Receiver, client: httpx.AsyncClient) -> None:
    recovered = EVENT.model_copy(update={"type": EventType.PROBE_RECOVERED, "data": {}})
    slack = Destination(kind="slack", url=rx.url("/slack"))
    pd = Destination(kind="pagerduty", url=rx.url("/pagerduty"), routing_key="k" * 32)
    for ev in (EVENT, recovered):
        for dest in (slack, pd):
            request = render(ev, dest)
            assert request is not None
            result = await send(client, request)
            assert result.outcome.kind is OutcomeKind.DELIVERED, result.response_snippet
    actions = [json.loads(r.body) for r in rx.on("/pagerduty")]
    assert [a["event_action"] for a in actions] == ["trigger", "resolve"]
    assert actions[0]["dedup_key"] == actions[1]["dedup_key"]


async def test_slack_channel_not_found_is_permanent(rx: Receiver,
                                                    client: httpx.AsyncClient) -> None:
    request = render(EVENT, Destination(kind="slack", url=rx.url("/slack-gone")))
    assert request is not None
    result = await send(client, request)
    assert (result.status, result.outcome.kind) == (404, OutcomeKind.PERMANENT)
    assert "channel_not_found" in result.outcome.reason


def test_scrub_ignores_short_needles() -> None:
    assert scrub("status ok", ["ok"]) == "status ok"  # too short to be a secret
    assert scrub("a whsec_AAAABBBBCCCC b", ["whsec_AAAABBBBCCCC"]) == "a [redacted] b"
