"""The HTTP API (DESIGN.md "HTTP API"): bearer tokens, JSON errors, cursor pages,
and an OpenAPI document generated from the same endpoint declarations."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from monitor import __version__
from monitor.api.auth import Scope, Tokens
from monitor.api.checks import check_endpoints
from monitor.api.errors import EXCEPTION_HANDLERS
from monitor.api.events import event_endpoints
from monitor.api.providers import provider_endpoints
from monitor.api.registry import Endpoint, openapi, routes
from monitor.api.subscriptions import subscription_endpoints
from monitor.receive import ReceiveOptions
from monitor.service.context import AppContext

__all__ = ["EXCEPTION_HANDLERS", "Tokens", "api_routes", "endpoints"]


def endpoints(ctx: AppContext, options: ReceiveOptions, *,
              metrics_public: bool = True) -> list[Endpoint]:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(ctx.metrics.registry),
                        headers={"content-type": CONTENT_TYPE_LATEST})

    declared = [
        *provider_endpoints(ctx),
        *event_endpoints(ctx),
        *subscription_endpoints(ctx),
        *check_endpoints(ctx, options),
        Endpoint("GET", "/metrics", metrics, "Prometheus metrics",
                 scope=None if metrics_public else Scope.READ),
    ]

    async def document(request: Request) -> Response:
        return JSONResponse(openapi(everything, title="Delivery Monitor", version=__version__))

    everything = [*declared, Endpoint("GET", "/openapi.json", document,
                                      "This OpenAPI document", scope=None)]
    return everything


def api_routes(ctx: AppContext, tokens: Tokens, options: ReceiveOptions) -> list[BaseRoute]:
    public = os.environ.get("MONITOR_METRICS_PUBLIC", "true").lower() not in ("0", "false", "no")
    return list(routes(endpoints(ctx, options, metrics_public=public), tokens))
