"""The inbound kind: ESPs post the probe message to us instead of us polling.

The POST itself (`/inbound/{mailbox}`: what it accepts, how it authenticates,
what it answers) is `monitor.receive.intake`; this module holds the kind's
config model and its backend, which scans what was posted.

Where accepted messages go is an `InboundStore` (below), the seam between the
route, the `inbound` backend's scan (`InboundBackend`) and storage. The service
injects one that keeps them in the database (`monitor.service.inbound`), so the
replica that answers the POST and the one whose receive job looks for the token
need not be the same; the route gets it as `store`, the backend as
`ReceiveOptions.inbound_store`. Without one (the CLI, tests) they go into a
Maildir under `<data_dir>/inbound/<mailbox>/` (`maildir.deliver`), where the
backend finds them like any Maildir — also after a restart, but only on that disk.

Message headers are parsed in a worker thread: a 10 MB message takes long
enough in pure Python to stall every other request and timer on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message
from typing import Any, Literal, Protocol

from pydantic import SecretStr, model_validator

from monitor.config import MailboxConfig
from monitor.receive.backend import (
    FoundMessage,
    ReceiveOptions,
    Scan,
    Trace,
    deletion,
    missing,
    parse_headers,
)
from monitor.receive.maildir import inbound_dir, scan_maildir
from monitor.receive.result import Placement

log = logging.getLogger("monitor.inbound")



class InboundMailbox(MailboxConfig):
    kind: Literal["inbound"] = "inbound"
    token: SecretStr  # authenticates the posting service

    @model_validator(mode="before")
    @classmethod
    def _has_what_it_needs(cls, data: Any) -> Any:
        if missing(data, ("token",)):
            raise ValueError("kind inbound needs `token`")
        return data


@dataclass(frozen=True)
class StoredMessage:
    """A posted message as an `InboundStore` hands it back to a scan."""

    id: str
    token: str | None
    received_at: datetime
    raw: bytes  # the message, or at least its first MAX_HEADER_BYTES (the header block)


class InboundStore(Protocol):
    """Where posted messages wait for the scan that finds them. A store that cannot
    be reached raises `ReceiveError` (the route answers 503, a scan reports an error)."""

    async def put(self, mailbox: str, token: str | None, raw: bytes,
                  received_at: datetime) -> None:
        """Keep one message, durably, before the route answers 200."""
        ...

    async def find(self, mailbox: str, tokens: Collection[str],
                   limit: int) -> Sequence[StoredMessage]:
        """The `limit` newest messages of `mailbox` carrying one of `tokens`, newest first."""
        ...

    async def delete(self, ids: Collection[str]) -> None:
        """Remove these messages; one already gone is fine."""
        ...

    async def sweep(self, mailbox: str, before: datetime, keep: Collection[str]) -> int:
        """Remove the mailbox's messages received before `before` whose token is not in
        `keep`; return how many went."""
        ...


class InboundBackend:
    """What `POST /inbound/{mailbox}` stored: in `options.inbound_store` when there is
    one, else in the Maildir under `options.data_dir`, scanned like any other."""

    async def scan(self, mailbox: InboundMailbox, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        find = frozenset(tokens)
        if options.inbound_store is not None:
            return await scan_store(options.inbound_store, mailbox.name, find, options, trace,
                                    deletion(find, delete))
        path = inbound_dir(options.data_dir, mailbox.name)
        if not path.exists():  # nothing was ever posted: an empty mailbox, not an error
            return Scan(folders=("INBOX",))
        return await asyncio.to_thread(scan_maildir, path, ("INBOX",), find, options, trace,
                                       deletion(find, delete))


async def scan_store(store: InboundStore, mailbox: str, tokens: frozenset[str],
                     options: ReceiveOptions, trace: Trace, delete: frozenset[str]) -> Scan:
    """The scan of `backend.py` over a store: find `tokens`, delete the messages of
    `delete` and sweep stale probes, only after `trace.commit()`. Posted mail has one
    folder, the inbox. A token posted twice (an ESP's retry) is found once, newest."""
    trace.step = "fetch"
    messages = await store.find(mailbox, tokens | delete, options.max_messages)
    trace.checkpoint()
    headers = await asyncio.to_thread(_parse_all, messages)  # off the loop: up to 256 KB each
    trace.checkpoint()
    now = datetime.now(UTC)
    scan = Scan(folders=("INBOX",))
    remove: list[str] = []
    for message, parsed in zip(messages, headers, strict=True):
        token = message.token
        if token is None:
            continue
        if token in tokens and token not in scan.found:
            scan.found[token] = FoundMessage(token=token, folder="INBOX",
                                             placement=Placement.INBOX, headers=parsed,
                                             seen_at=now)
        if token in delete:
            remove.append(message.id)
    # Deleting is the last step, and only once the poller is sure to use the result.
    trace.step = "delete"
    trace.commit()
    if remove:
        await store.delete(remove)
    scan.swept = await store.sweep(mailbox, now - options.sweep_after, tokens | delete)
    scan.found = {t: replace(m, deleted=t in delete) for t, m in scan.found.items()}
    return scan


def _parse_all(messages: Sequence[StoredMessage]) -> list[Message]:
    return [parse_headers(message.raw) for message in messages]
