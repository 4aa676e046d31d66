"""The status page's routes: `/`, `/providers/{name}`, `/incidents`, the sign-in form,
the stylesheet, and the badges under `/badge/{provider}/`.

Pages are Jinja2 templates rendered by Starlette with autoescaping on for every
template: banners, replies, folder names and certificate subjects come from
servers we probe and are attacker-controlled. A strict Content-Security-Policy
(no script at all, styles only from this site) is the second wall behind it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from monitor import store
from monitor.api.auth import Tokens
from monitor.api.caching import conditional
from monitor.api.errors import ApiError
from monitor.api.providers import provider_or_404
from monitor.config import ProviderConfig, StatusPageAccess
from monitor.service.context import AppContext
from monitor.status import access, badges, histogram, rollup, views
from monitor.status.incidents import human_duration
from monitor.status.rollup import WINDOWS

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# An SVG opened on its own is a document that could run script: this one may not.
BADGE_CSP = "default-src 'none'; style-src 'unsafe-inline'"
BADGE_MAX_AGE = 60  # seconds; shields.io caches endpoint badges at least 300 s anyway

Handler = Callable[[Request], Awaitable[Response]]


def _ms(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "\u2013"


def _ago(value: datetime | None, now: datetime) -> str:
    return human_duration(now - value) + " ago" if value else "never"


def environment() -> jinja2.Environment:
    """Templates shipped as package data (a non-editable install finds them too)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("monitor.status", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ms=_ms, when=_when, duration=human_duration)
    env.globals.update(ago=_ago)
    return env


def status_routes(ctx: AppContext, tokens: Tokens) -> list[BaseRoute]:
    """The pages and badges, guarded by `settings.status_page`; none when it is `off`."""
    setting = ctx.config.settings.status_page
    if setting is StatusPageAccess.OFF:
        return []
    templates = Jinja2Templates(env=environment())
    uptime_cache = views.page_uptimes()
    # Behind a token (a cookie, which shared caches do not key on) nothing may be stored.
    headers = {**PAGE_HEADERS, "Cache-Control": "no-cache" if setting is StatusPageAccess.PUBLIC
               else "private, no-store"}

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("signed_in", setting is StatusPageAccess.TOKEN)
        return templates.TemplateResponse(request, name, context, status_code=status,
                                          headers=headers)

    def guarded(handler: Handler, *, html: bool) -> Handler:
        async def guard(request: Request) -> Response:
            if access.allowed(request, setting, tokens):
                return await handler(request)
            if html:
                return page(request, "signin.html", 401, next=request.url.path,
                            error=None, signed_in=False)
            raise ApiError(401, "the status page needs a read token",
                           headers={"WWW-Authenticate": "Bearer"})
        return guard

    async def index(request: Request) -> Response:
        view = await views.overview(ctx, ctx.clock(), uptime_cache)
        return page(request, "index.html", view=view)

    async def provider_view(request: Request) -> Response:
        view = await views.provider_page(ctx, provider_or_404(ctx, request), ctx.clock())
        return page(request, "provider.html", view=view)

    async def incident_list(request: Request) -> Response:
        return page(request, "incidents.html", view=await views.incident_page(ctx, ctx.clock()))

    async def sign_in(request: Request) -> Response:
        target = access.safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return page(request, "signin.html", next=target, error=None, signed_in=False)
        form = await request.form()
        token = str(form.get("token") or "").strip()
        target = access.safe_next(str(form.get("next") or "/"))
        if not token or not access.valid(token, tokens):
            return page(request, "signin.html", 401, next=target,
                        error="That token is not valid.", signed_in=False)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(access.COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https",
                            max_age=int(timedelta(days=30).total_seconds()))
        return response

    async def sign_out(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(access.COOKIE, httponly=True, samesite="strict")
        return response

    def badge_route(build: Callable[[Request, ProviderConfig], Awaitable[badges.Badge]]
                    ) -> Handler:
        async def handler(request: Request) -> Response:
            provider = provider_or_404(ctx, request)
            fmt = request.path_params.get("fmt", "json")
            if fmt not in ("svg", "json"):
                raise ApiError(404, "badges are .svg or .json")
            badge = await build(request, provider)
            if fmt == "svg":
                body, media = badge.svg().encode(), "image/svg+xml"
            else:
                body, media = json.dumps(badge.shields()).encode(), "application/json"
            scope = "public" if setting is StatusPageAccess.PUBLIC else "private"
            return conditional(request, body, media, {
                "Cache-Control": f"{scope}, max-age={BADGE_MAX_AGE}",
                "X-Content-Type-Options": "nosniff", "Content-Security-Policy": BADGE_CSP})
        return handler

    async def status_badge(request: Request, provider: ProviderConfig) -> badges.Badge:
        async with ctx.sessions() as session:
            state = await store.runs.state(session, provider.name)
        return badges.status_badge(provider.name, views.state_of(state))

    async def uptime_badge(request: Request, provider: ProviderConfig) -> badges.Badge:
        window = WINDOWS.get(request.path_params["window"])
        if window is None:
            raise ApiError(404, f"uptime windows are {', '.join(WINDOWS)}")
        now = ctx.clock()
        async with ctx.sessions() as session:
            found = await store.rollups.uptimes(session, {window.name: window}, now,
                                                provider=provider.name)
        uptime = found.get(provider.name, {}).get(
            window.name, rollup.uptime_from_totals(window, 0, 0, 0))
        return badges.uptime_badge(provider.name, uptime)

    async def latency_badge(request: Request, provider: ProviderConfig) -> badges.Badge:
        now = ctx.clock()
        async with ctx.sessions() as session:
            hours = await store.rollups.hours(session, provider.name, WINDOWS["24h"].start(now))
        merged = rollup.merge(hours.values())
        return badges.latency_badge(provider.name, histogram.quantile(merged.probe_ms, 0.95))

    def badge(path: str, build: Callable[[Request, ProviderConfig],
                                         Awaitable[badges.Badge]]) -> Route:
        return Route(path, guarded(badge_route(build), html=False), methods=["GET", "HEAD"])

    return [
        Route("/", guarded(index, html=True)),
        Route("/providers/{name}", guarded(provider_view, html=True)),
        Route("/incidents", guarded(incident_list, html=True)),
        Route("/status/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/status/sign-out", sign_out, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("monitor.status", "static")]), name="static"),
        badge("/badge/{name}/status.{fmt}", status_badge),
        badge("/badge/{name}/shields.json", status_badge),
        badge("/badge/{name}/uptime/{window}.{fmt}", uptime_badge),
        badge("/badge/{name}/latency.{fmt}", latency_badge),
    ]
