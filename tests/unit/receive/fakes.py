"""A scripted mailbox backend: the seam the poller is tested at."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.config import Config, MailboxConfig
from monitor.receive import BACKENDS
from monitor.receive.backend import FoundMessage, ReceiveOptions, Scan, Trace, parse_headers
from monitor.receive.result import PendingToken, Placement


@dataclass
class FakeBackend:
    """Finds what `messages` holds; raises `error` at `step`; sleeps `delay` first."""

    messages: dict[str, FoundMessage] = field(default_factory=dict)
    error: BaseException | None = None
    step: str = "connect"
    delay: float = 0.0
    calls: list[frozenset[str]] = field(default_factory=list)

    async def scan(self, mailbox: MailboxConfig, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        self.calls.append(frozenset(tokens))
        trace.step = self.step
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        found = {t: m for t, m in self.messages.items() if t in tokens}
        for token in list(self.messages):
            if token in (tokens if delete is None else delete):
                del self.messages[token]
        return Scan(found=found, folders=("INBOX", "Junk"))


def found(token: str, seen_at: datetime, *, received: datetime | None = None,
          folder: str = "INBOX", placement: Placement = Placement.INBOX,
          extra: str = "") -> FoundMessage:
    lines = [f"X-Delivery-Monitor-Token: {token}"]
    if received is not None:
        lines.insert(0, f"Received: by mx.test; {received.strftime('%a, %d %b %Y %H:%M:%S %z')}")
    raw = ("\r\n".join(lines) + "\r\n" + extra).encode()
    return FoundMessage(token=token, folder=folder, placement=placement,
                        headers=parse_headers(raw), seen_at=seen_at, deleted=True)


def mailbox_config(*names: str, **fields: Any) -> Config:
    boxes = tuple(MailboxConfig.model_validate(
        {"name": name, "address": f"{name}@example.test", "kind": "maildir", "path": "/nonexistent",
         **fields}) for name in names)
    return Config(mailboxes=boxes)


def pending(token: str, mailbox: str, accepted_at: datetime,
            within: timedelta = timedelta(seconds=60)) -> PendingToken:
    return PendingToken(token=token, run_id=f"run-{token}", provider="p", mailbox=mailbox,
                        accepted_at=accepted_at, deadline=accepted_at + within)


def backends(fake: FakeBackend) -> dict[str, FakeBackend]:
    return dict.fromkeys(BACKENDS, fake)
