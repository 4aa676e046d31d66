"""A loopback HTTPS server for MTA-STS policies: one body per Host, trustme certificates."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import trustme


@dataclass
class PolicyServer:
    """Serves `policies[host]` at any path with 200 (404 for an unknown host), under the
    certificate `cert` (a trustme leaf for every host, issued by `ca`)."""

    ca: trustme.CA
    cert: trustme.LeafCert
    policies: dict[str, str] = field(default_factory=dict)
    port: int = 0
    requests: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> PolicyServer:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        host = next((v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                     if k.lower() == "host"), "")
        self.requests.append(f"{host} {lines[0]}")
        body = self.policies.get(host)
        status = "200 OK" if body is not None else "404 Not Found"
        data = (body or "").encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: "
                     f"{len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
        writer.close()
