"""/v1/subscriptions: CRUD, a test event, and each subscriber's delivery log.

Secrets are shown once, in the create (or rotate) response; afterwards only
their last characters. Subscriptions from the config file are read-only here.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monitor import store
from monitor.api.auth import Scope
from monitor.api.errors import ApiError
from monitor.api.params import cursor_param, encode_cursor, int_param, read_body
from monitor.api.registry import Endpoint, Param
from monitor.api.schemas import (
    Accepted,
    AttemptView,
    DeliveryPage,
    DeliveryView,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionUpdate,
    SubscriptionUpdated,
    SubscriptionView,
)
from monitor.events.model import Event, EventType
from monitor.ids import new_id
from monitor.service.context import AppContext
from monitor.store.tables import SubscriptionRow
from monitor.webhooks.egress import vet_destination
from monitor.webhooks.errors import EgressRefused
from monitor.webhooks.signing import generate_secret


def secret_fingerprint(secret: str) -> str:
    """Tells secrets apart (did the rotation happen?) without revealing any of one."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def view(row: SubscriptionRow) -> SubscriptionView:
    url = None
    if row.url:
        parts = urlsplit(row.url)
        url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"
    return SubscriptionView(
        id=row.id, name=row.name, kind=row.kind, url=url, events=row.events,
        providers=row.providers, enabled=row.enabled, disabled_reason=row.disabled_reason,
        source=row.source, created_at=row.created_at,
        secret_hint=secret_fingerprint(row.secrets[0]) if row.secrets else None,
        rotating_until=row.rotated_until)


def delivery_view(log: store.outbox.DeliveryLog) -> DeliveryView:
    row = log.delivery
    return DeliveryView(
        id=row.id, event_id=row.event_id, event_type=log.event_type,
        subscription_id=row.subscription_id, status=row.status, attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_status=row.last_status, last_error=row.last_error,
        created_at=row.created_at, delivered_at=row.delivered_at,
        attempt_log=[AttemptView(attempt=a.attempt, at=a.at, status=a.status,
                                 latency_ms=a.latency_ms, outcome=a.outcome,
                                 response=a.response) for a in log.attempts])


def subscription_endpoints(ctx: AppContext) -> list[Endpoint]:
    settings = ctx.config.settings

    async def checked_url(url: str | None) -> None:
        if url is None:
            return
        try:
            await vet_destination(url, allow_private=settings.allow_private_destinations,
                                    allow_http=settings.allow_http_destinations)
        except EgressRefused as exc:
            raise ApiError(422, f"url refused: {exc}", details=[{"field": "url",
                                                                 "problem": str(exc)}]) from None

    async def row_or_404(request: Request) -> SubscriptionRow:
        async with ctx.sessions() as session:
            row = await store.subscriptions.get(session, request.path_params["id"])
        if row is None:
            raise ApiError(404, "no such subscription")
        return row

    async def list_subscriptions(request: Request) -> Response:
        async with ctx.sessions() as session:
            rows = await store.subscriptions.listed(session)
        return JSONResponse({"items": [view(r).model_dump(mode="json") for r in rows]})

    async def create(request: Request) -> Response:
        # Validated as its kind's own schema (the channel's `create` model): a missing url
        # or routing_key is a 422 naming that field.
        body = await read_body(request, SubscriptionCreate)
        await checked_url(body.url)
        secret = body.secret or generate_secret()
        row = SubscriptionRow(id=new_id(), name=body.name, kind=body.kind, url=body.url,
                              routing_key=body.routing_key, secrets=[secret],
                              events=body.events, providers=body.providers, source="api",
                              created_at=ctx.clock())
        async with ctx.sessions() as session:
            if not await store.subscriptions.create(session, row):
                raise ApiError(409, f"a subscription named {body.name!r} exists")
        created = SubscriptionCreated(**view(row).model_dump(), secret=secret)
        return JSONResponse(created.model_dump(mode="json"), status_code=201,
                            headers={"Location": f"/v1/subscriptions/{row.id}"})

    async def get(request: Request) -> Response:
        return JSONResponse(view(await row_or_404(request)).model_dump(mode="json"))

    async def update(request: Request) -> Response:
        row = await row_or_404(request)
        body = await read_body(request, SubscriptionUpdate)
        if row.source == "config":
            raise ApiError(409, "this subscription comes from the config file; edit it there")
        await checked_url(body.url)
        new_secret = None
        async with ctx.sessions() as session:
            current = await store.subscriptions.get(session, row.id)
            if current is None:
                raise ApiError(404, "no such subscription")
            for field in ("url", "routing_key", "events", "providers"):
                value = getattr(body, field)
                if value is not None:
                    setattr(current, field, value)
            if body.enabled is not None:
                current.enabled = body.enabled
                current.disabled_reason = None if body.enabled else "disabled through the API"
            if body.rotate_secret:
                new_secret = generate_secret()
                current.secrets = [new_secret, *current.secrets[:1]]
                current.rotated_until = ctx.clock() + timedelta(hours=body.grace_hours)
            store.subscriptions.put(session, current)
            await session.commit()
            out = view(current).model_dump(mode="json")
        # Without a rotation there is no `secret` key; every other field is always there.
        return JSONResponse(SubscriptionUpdated(**out, secret=new_secret).model_dump(
            mode="json", exclude={"secret"} if new_secret is None else None))

    async def delete(request: Request) -> Response:
        row = await row_or_404(request)
        if row.source == "config":
            raise ApiError(409, "this subscription comes from the config file; remove it there")
        async with ctx.sessions() as session:
            await store.subscriptions.delete(session, row.id)
        return Response(status_code=204)

    async def send_test(request: Request) -> Response:
        row = await row_or_404(request)
        if not row.enabled:
            raise ApiError(409, f"subscription is disabled: {row.disabled_reason}")
        now = ctx.clock()
        event = Event(id=new_id(), type=EventType.WEBHOOK_TEST, timestamp=now,
                      provider=None, data={"message": "Test event from Delivery Monitor",
                                           "subscription": row.name})
        delivery_id = new_id()
        async with ctx.sessions() as session, session.begin():
            await store.outbox.enqueue_test(session, event, row.id, delivery_id, now)
        return JSONResponse(Accepted(id=delivery_id, status="pending").model_dump(),
                            status_code=202)

    async def deliveries(request: Request) -> Response:
        row = await row_or_404(request)
        limit = int_param(request, "limit", 50, low=1, high=200)
        async with ctx.sessions() as session:
            logs = await store.outbox.delivery_log(session, row.id, limit=limit,
                                                   before=cursor_param(request))
        items = [delivery_view(log).model_dump(mode="json") for log in logs]
        cursor = encode_cursor(logs[-1].delivery.id) if len(logs) == limit else None
        return JSONResponse({"items": items, "next_cursor": cursor})

    async def retry(request: Request) -> Response:
        async with ctx.sessions() as session:
            if not await store.outbox.replay_delivery(session, request.path_params["id"],
                                                 ctx.clock()):
                raise ApiError(404, "no such delivery")
        return JSONResponse(Accepted(id=request.path_params["id"],
                                     status="pending").model_dump(), status_code=202)

    one = "/v1/subscriptions/{id}"
    return [
        Endpoint("GET", "/v1/subscriptions", list_subscriptions, "Subscriptions",
                 response=SubscriptionList),
        Endpoint("POST", "/v1/subscriptions", create, "Create a subscription (secret shown once)",
                 scope=Scope.ADMIN, body=SubscriptionCreate, response=SubscriptionCreated,
                 status=201, errors=(409, 415, 413)),
        Endpoint("GET", one, get, "One subscription", errors=(404,), response=SubscriptionView),
        Endpoint("PATCH", one, update, "Change a subscription, or rotate its secret",
                 scope=Scope.ADMIN, body=SubscriptionUpdate, response=SubscriptionUpdated,
                 errors=(404, 409, 415, 413)),
        Endpoint("DELETE", one, delete, "Delete a subscription and its delivery log",
                 scope=Scope.ADMIN, status=204, errors=(404, 409)),
        Endpoint("POST", f"{one}/test", send_test, "Send a webhook.test event",
                 scope=Scope.ADMIN, status=202, response=Accepted, errors=(404, 409)),
        Endpoint("GET", f"{one}/deliveries", deliveries, "The subscription's deliveries",
                 query=(Param("limit", "integer", minimum=1, maximum=200), Param("cursor")),
                 response=DeliveryPage, errors=(400, 404)),
        Endpoint("POST", "/v1/deliveries/{id}/retry", retry,
                 "Replay one delivery (same webhook-id)", scope=Scope.ADMIN, status=202,
                 response=Accepted, errors=(404,)),
    ]
