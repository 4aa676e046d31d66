"""The POP3 scan against a scripted maildrop: newest first, other mail never counts."""

from __future__ import annotations

import poplib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from monitor.config import Config, MailboxConfig
from monitor.receive import BACKENDS, ReceiveOptions, ReceiveStatus, poll_pending
from monitor.receive import pop3 as pop3_module
from monitor.receive.pop3 import Pop3Backend
from monitor.receive.result import PendingToken
from tests.unit.receive.fakes import pending

NOW = datetime.now(UTC)


def headers(token: str | None) -> list[bytes]:
    lines = [f"Received: from a by b; {format_datetime(NOW)}".encode(), b"Subject: hi"]
    if token:
        lines.append(f"X-Delivery-Monitor-Token: {token}".encode())
    return lines


@dataclass
class Maildrop:
    """What poplib would talk to: messages in arrival order, deletions at QUIT."""

    messages: list[tuple[str, str | None]]  # (UIDL, token)
    uidl: bool = True
    tops: list[int] = field(default_factory=list)
    _deleted: set[int] = field(default_factory=set)

    def stat(self) -> tuple[int, int]:
        return len(self.messages), 0

    def uidl_lines(self) -> tuple[bytes, list[bytes], int]:
        if not self.uidl:
            raise poplib.error_proto(b"-ERR unknown command")
        return b"+OK", [f"{n} {uid}".encode() for n, (uid, _) in
                        enumerate(self.messages, 1)], 0

    def top(self, number: int, lines: int) -> tuple[bytes, list[bytes], int]:
        self.tops.append(number)
        return b"+OK", headers(self.messages[number - 1][1]), 0

    def dele(self, number: int) -> bytes:
        self._deleted.add(number)
        return b"+OK"

    def quit(self) -> bytes:
        self.messages = [m for n, m in enumerate(self.messages, 1) if n not in self._deleted]
        self._deleted.clear()
        return b"+OK"

    def close(self) -> None:
        self._deleted.clear()  # no QUIT: the server keeps everything


class Session:
    """One POP3 session on the maildrop (poplib names UIDL `uidl`)."""

    def __init__(self, drop: Maildrop) -> None:
        self.drop = drop
        self.stat, self.top, self.dele = drop.stat, drop.top, drop.dele
        self.quit, self.close, self.uidl = drop.quit, drop.close, drop.uidl_lines


def pop3_config() -> Config:
    return Config(mailboxes=(MailboxConfig.model_validate(
        {"name": "pop", "address": "seed@example.test", "kind": "pop3", "host": "127.0.0.1",
         "username": "seed", "password": "pw"}),))


@pytest.fixture
def drop(monkeypatch: pytest.MonkeyPatch) -> Maildrop:
    maildrop = Maildrop(messages=[])
    monkeypatch.setattr(pop3_module, "_connect", lambda *_: Session(maildrop))
    return maildrop


async def check(tokens: list[PendingToken], backend: Pop3Backend,
                options: ReceiveOptions | None = None) -> list[ReceiveStatus]:
    results = await poll_pending(pop3_config(), tokens, NOW, options=options,
                                  backends=dict.fromkeys(BACKENDS, backend))
    return [r.status for r in results]


async def test_newer_other_mail_does_not_crowd_probe_messages_out(drop: Maildrop) -> None:
    drop.messages = [("p1", "dm-1"), ("p2", "dm-2"),
                     *((f"u{n}", None) for n in range(50))]  # the user's mail, newer
    backend = Pop3Backend()
    tokens = [pending("dm-1", "pop", NOW), pending("dm-2", "pop", NOW)]
    statuses = await check(tokens, backend, ReceiveOptions(max_messages=5))
    assert statuses == [ReceiveStatus.ARRIVED] * 2
    assert len(drop.messages) == 50 and all(token is None for _, token in drop.messages)


async def test_mail_known_to_carry_no_token_is_not_read_again(drop: Maildrop) -> None:
    drop.messages = [(f"u{n}", None) for n in range(20)]
    backend = Pop3Backend()
    assert await check([pending("dm-1", "pop", NOW)], backend) == [ReceiveStatus.PENDING]
    assert len(drop.tops) == 20
    drop.tops.clear()
    drop.messages.append(("p1", "dm-1"))
    assert await check([pending("dm-1", "pop", NOW)], backend) == [ReceiveStatus.ARRIVED]
    assert drop.tops == [21]  # only the new message's header was read


async def test_without_uidl_every_header_is_read(drop: Maildrop) -> None:
    drop.uidl = False
    drop.messages = [("p1", "dm-1"), *((f"u{n}", None) for n in range(20))]
    backend = Pop3Backend()
    for _ in range(2):
        drop.tops.clear()
        assert await check([pending("dm-0", "pop", NOW)], backend) == [
            ReceiveStatus.PENDING]
        assert drop.tops == list(range(21, 0, -1))  # newest first, all of them, each time
