"""A check's world in-process: the sandbox SMTP server, a Maildir seed, a DNS server."""

from __future__ import annotations

import mailbox
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field, replace
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, MailboxConfig, ProviderConfig
from monitor.receive import BACKENDS
from monitor.receive.backend import ReceiveOptions, Scan, Trace
from monitor.receive.maildir import MaildirBackend
from monitor.receive.result import Placement
from monitor.sandbox import Sandbox
from tests.unit.checks.dnsserver import DnsServer, domain_records

SENDER = "news@check.test"
DOMAIN = "check.test"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    box = await Sandbox(tmp_path / "sandbox").start()
    # Created up front: the sandbox's first two concurrent deliveries race to create it
    # (mailbox.Maildir(create=True) is not safe against a concurrent mkdir).
    mailbox.Maildir(box.maildir, create=True)
    yield box
    await box.stop()


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    async with DnsServer(domain_records(DOMAIN)) as server:
        yield server


def check_config(box: Sandbox, *seeds: str, deliver_within: str = "20s",
                 **provider: Any) -> Config:
    """The sandbox as provider (mode `connect`: a check must send anyway) and one
    Maildir mailbox per seed, all reading the sandbox's Maildir."""
    assert box.certificates is not None
    fields: dict[str, Any] = {
        "name": "sandbox", "host": box.host, "port": box.port, "mode": "connect",
        "ca_file": box.certificates.ca_file, "helo": "check.localhost",
        "auth": {"username": box.username, "password": box.password},
        "timeout": "10s", "step_timeout": "5s"}
    fields.update(provider)
    mailboxes = tuple(MailboxConfig.model_validate({
        "name": name, "address": f"{name}@seeds.test", "kind": "maildir",
        "path": str(box.maildir), "deliver_within": deliver_within}) for name in seeds)
    return Config(providers=(ProviderConfig.model_validate(fields),), mailboxes=mailboxes)


@dataclass
class SteeredMaildir:
    """The real Maildir scan, with the seeds named in `junk` reported as filed in Junk
    (the sandbox has no filter) and `lost` never found; keeps what it found."""

    junk: Collection[str] = ()
    lost: Collection[str] = ()
    found: dict[str, Message] = field(default_factory=dict)
    inner: MaildirBackend = field(default_factory=MaildirBackend)

    async def scan(self, mailbox: MailboxConfig, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        if mailbox.name in self.lost:
            return Scan(folders=("INBOX", "Junk"))
        # Every seed here reads the same Maildir, concurrently: each scan must skip what
        # another one deletes under it.
        scan = await self.inner.scan(mailbox, tokens, options, trace, delete)
        for token, message in list(scan.found.items()):
            self.found[mailbox.name] = message.headers
            if mailbox.name in self.junk:
                scan.found[token] = replace(message, folder="Junk", placement=Placement.JUNK)
        return scan

    def backends(self) -> dict[str, SteeredMaildir]:
        return dict.fromkeys(BACKENDS, self)
