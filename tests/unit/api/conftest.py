"""A live service (lifespan on) on loopback, with a sandbox provider and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from monitor.api import Tokens
from monitor.config import Config
from monitor.sandbox import Sandbox
from monitor.service.context import AppContext
from monitor.service.serve import service_app
from tests.asgi_server import serve_app
from tests.receivers import Receiver, running
from tests.unit.checks.dnsserver import DnsServer, domain_records

READ = "read-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"


@dataclass
class Live:
    url: str
    ctx: AppContext
    sandbox: Sandbox
    receiver: Receiver
    read: httpx.AsyncClient
    admin: httpx.AsyncClient
    anonymous: httpx.AsyncClient


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    sandbox = await Sandbox(tmp_path / "sandbox").start()
    assert sandbox.certificates is not None
    async with running(Receiver()) as receiver, \
            DnsServer(domain_records("shop.example")) as dns:
        config = Config.model_validate({
            "providers": [{
                "name": "sandbox", "host": sandbox.host, "port": sandbox.port, "mode": "auth",
                "ca_file": str(sandbox.certificates.ca_file), "helo": "api-test.localhost",
                "auth": {"username": sandbox.username, "password": sandbox.password},
                "interval": "1h"}],
            "mailboxes": [{"name": "seed", "address": "seed@sandbox.test", "kind": "maildir",
                           "path": str(sandbox.maildir), "deliver_within": "10s"}],
            "subscriptions": [{"name": "from-config", "kind": "generic",
                               "url": f"{receiver.url}/config", "events": ["probe.*"]}],
            "settings": {"allow_private_destinations": True,
                         "allow_http_destinations": True,
                         "dns_server": f"{dns.address[0]}:{dns.address[1]}"}})
        ctx = AppContext.create(config, f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}")
        tokens = Tokens.parse(f"{READ}:read,{ADMIN}:admin", "test")
        async with serve_app(service_app(ctx, tokens), lifespan="on") as url:
            clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=30) for headers in
                       ({"Authorization": f"Bearer {READ}"},
                        {"Authorization": f"Bearer {ADMIN}"}, {})]
            try:
                yield Live(url, ctx, sandbox, receiver, *clients)
            finally:
                for client in clients:
                    await client.aclose()
    await sandbox.stop()
