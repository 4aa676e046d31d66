"""/v1/providers: configured providers, their state, history, and probe-now."""

from __future__ import annotations

import bisect
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monitor import store
from monitor.api.auth import Scope
from monitor.api.caching import cached_json
from monitor.api.errors import ApiError
from monitor.api.params import cursor_param, encode_cursor, int_param
from monitor.api.registry import Endpoint, Param
from monitor.api.schemas import (
    ProbeRun,
    ProviderList,
    ProviderState,
    ProviderView,
    ResultPage,
)
from monitor.config import ProviderConfig
from monitor.events import state as provider_state
from monitor.service.context import AppContext
from monitor.service.probing import probe_and_record
from monitor.store.tables import ProviderStateRow, RunRow

LIST_PAGE = 100
MAX_LIST_PAGE = 1000

# One on-demand probe per provider per this many seconds (each replica): a probe
# opens a real SMTP session, and providers rate-limit or block eager clients.
PROBE_NOW_INTERVAL = 10.0


def _settings(provider: ProviderConfig) -> dict[str, Any]:
    return {"name": provider.name, "host": provider.host, "port": provider.port,
            "tls": provider.tls.value, "mode": provider.mode.value,
            "interval_seconds": provider.interval.total_seconds()}


def _view(provider: ProviderConfig, state: ProviderStateRow | None,
          last: RunRow | None) -> dict[str, Any]:
    view = ProviderView(
        **_settings(provider),
        state=ProviderState(
            health=state.state.get("health", "unknown"),
            delivery=state.state.get("delivery", "unknown"),
            consecutive_failures=state.state.get("consecutive_failures", 0),
            consecutive_successes=state.state.get("consecutive_successes", 0),
            degraded=state.state.get("degraded", False),
            last_run_id=state.last_run_id) if state else None,
        last_result=last.result if last else None)
    return view.model_dump(mode="json")


# A provider that never ran (no stored entry): what save_state would store for it.
_NEVER_RAN = json.dumps({**provider_state.brief(provider_state.ProviderState()), "last_run": None})


def _entry(provider: ProviderConfig) -> str:
    """The config half of the provider's list item, as JSON text without its closing
    brace: the stored half (`store.runs.listings`) completes it."""
    return json.dumps(_settings(provider), ensure_ascii=False)[:-1] + ","


def provider_or_404(ctx: AppContext, request: Request) -> ProviderConfig:
    """The configured provider the path's `{name}` names; 404 otherwise."""
    name = request.path_params["name"]
    provider = ctx.config.provider(name)
    if provider is None:
        raise ApiError(404, f"no provider named {name!r}")
    return provider


def provider_endpoints(ctx: AppContext) -> list[Endpoint]:
    last_probe: dict[str, float] = {}

    by_name = sorted(ctx.config.providers, key=lambda p: p.name)
    names = [p.name for p in by_name]
    entries = {p.name: _entry(p) for p in by_name}

    async def list_providers(request: Request) -> Response:
        limit = int_param(request, "limit", LIST_PAGE, low=1, high=MAX_LIST_PAGE)
        after = cursor_param(request)
        start = bisect.bisect_right(names, after) if after else 0
        page = names[start:start + limit]
        async with ctx.sessions() as session:
            stored = await store.runs.listings(session, page)
        # Spliced from JSON texts, not built and dumped: the stored halves were written
        # by save_state and are served as they are (a test checks the whole against
        # ProviderList). A thousand items cost a join, not a thousand parses.
        items = ",".join(entries[name] + stored.get(name, _NEVER_RAN)[1:] for name in page)
        cursor = json.dumps(encode_cursor(page[-1]) if start + limit < len(names) else None)
        body = f'{{"items":[{items}],"next_cursor":{cursor}}}'
        return cached_json(request, body.encode())

    async def get_provider(request: Request) -> Response:
        provider = provider_or_404(ctx, request)
        async with ctx.sessions() as session:
            state = await store.runs.state(session, provider.name)
            last = await store.runs.last_run(session, provider.name)
        return JSONResponse(_view(provider, state, last))

    async def results(request: Request) -> Response:
        provider = provider_or_404(ctx, request)
        limit = int_param(request, "limit", 20, low=1, high=200)
        async with ctx.sessions() as session:
            runs = await store.runs.recent_runs(session, provider.name, limit=limit,
                                             before=cursor_param(request))
        cursor = encode_cursor(runs[-1].id) if len(runs) == limit else None
        return JSONResponse({"items": [r.result for r in runs], "next_cursor": cursor})

    async def probe_now(request: Request) -> Response:
        provider = provider_or_404(ctx, request)
        now = time.monotonic()
        wait = last_probe.get(provider.name, -PROBE_NOW_INTERVAL) + PROBE_NOW_INTERVAL - now
        if wait > 0:
            raise ApiError(429, f"provider {provider.name!r} was probed less than "
                                f"{PROBE_NOW_INTERVAL:g}s ago", details={"retry_after": wait},
                           headers={"Retry-After": str(int(wait) + 1)})
        last_probe[provider.name] = now
        result = await probe_and_record(ctx, provider)
        async with ctx.sessions() as session:
            events = await store.events.list_events(session, provider=provider.name, limit=20)
        raised = [e.type for e in events if e.run_id == result.run_id]
        return JSONResponse(ProbeRun(result=result.model_dump(mode="json"),
                                     events=raised).model_dump(mode="json"))

    paging = (Param("limit", "integer", "Page size", minimum=1, maximum=200),
              Param("cursor", description="From `next_cursor` of the previous page"))
    return [
        Endpoint("GET", "/v1/providers", list_providers,
                 "Providers by name, each with its state and its last run in brief; "
                 "`ETag`/`If-None-Match` answer 304 when nothing changed",
                 query=(Param("limit", "integer", "Page size", minimum=1,
                              maximum=MAX_LIST_PAGE),
                        Param("cursor", description="From `next_cursor` of the previous page")),
                 errors=(400,), response=ProviderList, conditional=True,
                 headers={"ETag": "the page's version, for If-None-Match"}),
        Endpoint("GET", "/v1/providers/{name}", get_provider, "One provider", errors=(404,),
                 response=ProviderView),
        Endpoint("GET", "/v1/providers/{name}/results", results,
                 "Probe history, newest first, every step", query=paging, errors=(400, 404),
                 response=ResultPage),
        Endpoint("POST", "/v1/providers/{name}/probe", probe_now,
                 "Run a probe now and return its result", scope=Scope.ADMIN,
                 errors=(404, 429), response=ProbeRun,
                 headers={"Retry-After": "on 429: seconds until the next probe is allowed"}),
    ]
