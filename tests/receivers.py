"""A real HTTP webhook receiver on loopback, scripted per test.

uvicorn serves a small Starlette app in the test's own event loop. Each
request is recorded (headers and exact body bytes); the reply comes from a
script of responses, the last one repeating: a status, headers, a body, or
`hang` (never answer, to exercise timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.asgi_server import serve_app


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    hang: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    script: list[Reply] = field(default_factory=lambda: [Reply()])
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _served: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(Received(request.url.path, dict(request.headers), body,
                                      time.monotonic()))
        reply = self.script[min(self._served, len(self.script) - 1)]
        self._served += 1
        if reply.hang:
            await asyncio.sleep(3600)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(self.received)} requests, "
                                     f"expected {count} within {within}s")
            await asyncio.sleep(0.02)
        return self.received


@contextlib.asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = Starlette(routes=[Route("/{path:path}", receiver._handle, methods=["POST"])])
    async with serve_app(app) as url:
        receiver.port = int(url.rsplit(":", 1)[1])
        yield receiver
