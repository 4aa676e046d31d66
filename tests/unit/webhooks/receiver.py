"""A real HTTP receiver on 127.0.0.1 (uvicorn + Starlette), scripted per path.

Each path answers one way (`ROUTES`); every request is recorded with its headers and
exact body. `/hang` never answers until the test ends, to exercise timeouts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.asgi_server import serve_app
from tests.unit.webhooks.shapes import (
    discord_problems,
    pagerduty_problems,
    slack_problems,
    teams_problems,
)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # Scripted answers for /script, popped in order; afterwards 200.
    script: list[int] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


Handler = Callable[[Receiver, Request, bytes], Awaitable[Response]]


async def _ok(rx: Receiver, request: Request, body: bytes) -> Response:
    return PlainTextResponse("ok")


async def _status(code: int, text: str = "", **headers: str) -> Response:
    return PlainTextResponse(text, status_code=code, headers=headers)


async def _json(code: int, document: dict[str, object], **headers: str) -> Response:
    return JSONResponse(document, status_code=code, headers=headers)


async def _hang(rx: Receiver, request: Request, body: bytes) -> Response:
    await rx.release.wait()
    return PlainTextResponse("too late")


async def _echo(rx: Receiver, request: Request, body: bytes) -> Response:
    return JSONResponse({"url": str(request.url), "headers": dict(request.headers),
                         "body": body.decode()})


async def _script(rx: Receiver, request: Request, body: bytes) -> Response:
    code = rx.script.pop(0) if rx.script else 200
    return PlainTextResponse(f"scripted {code}", status_code=code)


async def _slack(rx: Receiver, request: Request, body: bytes) -> Response:
    # Slack answers "ok", or 400 with the error string (incoming-webhook errors).
    problems = slack_problems(json.loads(body))
    return PlainTextResponse("invalid_blocks" if problems else "ok",
                             status_code=400 if problems else 200)


async def _pagerduty(rx: Receiver, request: Request, body: bytes) -> Response:
    event = json.loads(body)
    problems = pagerduty_problems(event)
    if problems:
        return JSONResponse({"status": "invalid event", "message": "Event object is invalid",
                             "errors": problems}, status_code=400)
    return JSONResponse({"status": "success", "message": "Event processed",
                         "dedup_key": event.get("dedup_key")}, status_code=202)


async def _teams(rx: Receiver, request: Request, body: bytes) -> Response:
    # A Workflows trigger: 202 Accepted and no body; a body that is not a card, 400.
    problems = teams_problems(json.loads(body), body)
    if problems:
        return JSONResponse({"error": {"code": "TriggerInputSchemaMismatch",
                                       "message": "; ".join(problems)}}, status_code=400)
    return Response(status_code=202)


async def _teams_connector(rx: Receiver, request: Request, body: bytes) -> Response:
    # A legacy incoming-webhook connector: 200 and "1" when it posted the card.
    problems = teams_problems(json.loads(body), body)
    return PlainTextResponse("; ".join(problems) or "1", status_code=400 if problems else 200)


async def _discord(rx: Receiver, request: Request, body: bytes) -> Response:
    # Execute Webhook: 400 50035 on a bad body; 200 and the message with ?wait=true, else 204.
    problems = discord_problems(json.loads(body))
    if problems:
        return JSONResponse({"code": 50035, "message": "Invalid Form Body",
                             "errors": problems}, status_code=400)
    if request.query_params.get("wait") != "true":
        return Response(status_code=204)
    return JSONResponse({"id": "1234567890", "type": 0, "webhook_id": "42", "content": ""})


ROUTES: dict[str, Handler] = {
    "/ok": _ok,
    "/fail": lambda rx, rq, b: _status(500, "boom"),
    "/limited": lambda rx, rq, b: _status(429, "slow down", **{"Retry-After": "2"}),
    "/gone": lambda rx, rq, b: _status(410, "endpoint deleted"),
    "/disable": lambda rx, rq, b: _status(200, "thanks, but stop", **{
        "webhook-delivery": "disable"}),
    "/moved": lambda rx, rq, b: _status(301, "", location="/ok"),
    "/big": lambda rx, rq, b: _status(200, "x" * 100_000),
    "/slack-gone": lambda rx, rq, b: _status(404, "channel_not_found"),
    "/hang": _hang,
    "/echo": _echo,
    "/script": _script,
    "/slack": _slack,
    "/pagerduty": _pagerduty,
    "/teams": _teams,
    "/teams-connector": _teams_connector,
    "/teams-throttled": lambda rx, rq, b: _status(
        200, "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0"),
    "/teams-gone": lambda rx, rq, b: _status(404, ""),
    "/discord": _discord,
    "/discord-limited": lambda rx, rq, b: _json(
        429, {"message": "You are being rate limited.", "retry_after": 1.25, "global": False},
        **{"Retry-After": "2"}),
    "/discord-gone": lambda rx, rq, b: _json(404, {"message": "Unknown Webhook",
                                                   "code": 10015}),
}


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        rx.requests.append(Received(request.url.path, dict(request.headers), body))
        handler = ROUTES.get(request.url.path)
        if handler is None:
            return PlainTextResponse("no such path", status_code=404)
        return await handler(rx, request, body)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST", "GET"])])
    async with serve_app(app) as url:
        rx.base_url = url
        try:
            yield rx
        finally:
            rx.release.set()  # let hanging handlers finish, so the server can stop
