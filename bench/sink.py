"""A webhook receiver in a process of its own, for throughput measurements.

`python -m bench.sink` binds 127.0.0.1 on a free port, prints
`{"port": N}` and answers every POST with 200 "ok" until its stdin closes. A separate
process keeps the receiver's CPU out of the sender's event loop (two cores: one each).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

import uvicorn


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the body, as a real receiver would before answering
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def main() -> None:
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only then,
    # and without it every response's body waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)  # clients may connect now: the backlog holds them until uvicorn accepts
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
