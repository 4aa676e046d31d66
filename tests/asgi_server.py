"""Serve an ASGI app with uvicorn on a free loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def serve_app(app: Any, *, lifespan: str = "off") -> AsyncIterator[str]:
    import uvicorn

    # IPPROTO_TCP, not 0: only then does asyncio set TCP_NODELAY on accepted sockets;
    # without it small responses wait ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan=lifespan,
                                           timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 15
    while not server.started:
        if task.done():
            task.result()  # surfaces a failed start (e.g. the lifespan raised)
            raise RuntimeError("server stopped during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start within 15 s")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        if not task.done():
            server.force_exit = True
            task.cancel()
        sock.close()
