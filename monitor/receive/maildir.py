"""Maildir backend: a local path (`kind: maildir`), and the scan the inbound backend reuses.

Reads with the stdlib `mailbox.Maildir`: new/ and cur/ of the root (reported
as "INBOX") and of Maildir++ subfolders (`.Junk` is folder "Junk"). The
configured folders are scanned plus the first subfolder with a junk name;
Maildir has no special-use flags, so the name is all there is. Every message's
header block is read (there is no index to search); of those carrying a token,
the newest `max_messages` per folder (by Received, else Date) are examined, so
the user's own mail never crowds probe messages out. Deletions come last, after
`Trace.commit()` (see `backend.py`).

Inbound messages (HTTP posts, see `inbound.py`) are written by `deliver()` to
`<data_dir>/inbound/<mailbox>/`, each file fsynced in tmp/ and renamed into
new/ (the Maildir protocol), so nothing accepted is lost across a restart and
the inbound backend (`inbound.py`) is this same scan over that directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import mailbox
import os
import secrets
import socket
import time
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator

from monitor.config import MailboxConfig
from monitor.receive.backend import (
    MAX_HEADER_BYTES,
    MAX_MESSAGE_BYTES,
    FoundMessage,
    ReceiveOptions,
    Scan,
    Trace,
    deletion,
    is_junk_name,
    is_stale,
    message_time,
    missing,
    parse_headers,
    placement_of,
    token_of,
)
from monitor.receive.errors import ReceiveError
from monitor.results import FailureClass

_SEQUENCE = itertools.count()


def inbound_dir(data_dir: Path, mailbox_name: str) -> Path:
    return data_dir / "inbound" / mailbox_name


class MaildirMailbox(MailboxConfig):
    kind: Literal["maildir"] = "maildir"
    path: Path
    folders: tuple[str, ...] = ("INBOX",)

    @model_validator(mode="before")
    @classmethod
    def _has_what_it_needs(cls, data: Any) -> Any:
        if missing(data, ("path",)):
            raise ValueError("kind maildir needs `path`")
        return data


class MaildirBackend:
    async def scan(self, mailbox: MaildirMailbox, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        find = frozenset(tokens)
        return await asyncio.to_thread(scan_maildir, mailbox.path, mailbox.folders, find,
                                       options, trace, deletion(find, delete))


def scan_maildir(path: Path, folders: Collection[str], tokens: frozenset[str],
                 options: ReceiveOptions, trace: Trace,
                 delete: frozenset[str] | None = None) -> Scan:
    delete = tokens if delete is None else delete
    trace.step = "open"
    try:
        root = mailbox.Maildir(path, factory=None, create=False)
    except mailbox.NoSuchMailboxError:
        raise ReceiveError(FailureClass.PERMANENT, f"no Maildir at {path}") from None
    trace.step = "list"
    junk = next((name for name in root.list_folders() if is_junk_name(name)), None)
    names = list(dict.fromkeys([*folders, *([junk] if junk else [])]))
    scan = Scan(folders=tuple(names))
    remove: list[tuple[mailbox.Maildir, str]] = []
    for name in names:
        trace.folder = name
        trace.step = "select"
        try:
            box = root if name.upper() == "INBOX" else root.get_folder(name)
        except mailbox.NoSuchMailboxError:
            raise ReceiveError(FailureClass.PERMANENT,
                               f"no folder {name!r} in Maildir {path}") from None
        remove.extend((box, key) for key in
                      _scan_folder(box, name, junk, tokens, delete, options, trace, scan))
    # Deleting is the last step, and only once the poller is sure to use the result.
    trace.step, trace.folder = "delete", None
    trace.commit()
    for box, key in remove:
        box.discard(key)  # already gone (another reader took it) is fine
    scan.found = {t: dataclasses.replace(m, deleted=t in delete) for t, m in scan.found.items()}
    return scan


def _scan_folder(box: mailbox.Maildir, name: str, junk: str | None, tokens: frozenset[str],
                 delete: frozenset[str], options: ReceiveOptions, trace: Trace,
                 scan: Scan) -> list[str]:
    """Record what the folder holds in `scan`; return the keys to delete."""
    now = datetime.now(UTC)
    trace.step = "fetch"
    remove: list[str] = []
    for key, headers, token in _newest_probes(box, options.max_messages, trace):
        if token in tokens or token in delete:
            if token in tokens and token not in scan.found:
                scan.found[token] = FoundMessage(
                    token=token, folder=name, placement=placement_of(name, junk),
                    headers=headers, seen_at=now,
                    raw=_whole(box, key) if options.keep_message else None)
            if token not in delete:
                continue
        elif is_stale(headers, None, options, now):
            scan.swept += 1
        else:
            continue
        remove.append(key)
    return remove


def _newest_probes(box: mailbox.Maildir, limit: int,
                   trace: Trace) -> list[tuple[str, Message, str]]:
    """The `limit` newest messages that carry a token, newest first; other mail
    is read (a Maildir has no index to search) but does not count."""
    probes = ((key, headers, token) for key, headers in _headers(box, trace)
              if (token := token_of(headers)) is not None)
    return heapq.nlargest(limit, probes, key=lambda probe: _timestamp(probe[1]))


def _timestamp(headers: Message) -> float:
    when = message_time(headers)
    return when.timestamp() if when is not None else float("-inf")


def _headers(box: mailbox.Maildir, trace: Trace | None = None) -> Iterator[tuple[str, Message]]:
    for key in list(box.iterkeys()):  # a snapshot: other readers may delete meanwhile
        if trace is not None:
            trace.checkpoint()  # the poller gave up: stop reading
        try:
            with box.get_file(key) as handle:
                raw = _header_block(handle)
        except (KeyError, FileNotFoundError):  # another reader removed it meanwhile
            continue
        yield key, parse_headers(raw)


def _whole(box: mailbox.Maildir, key: str) -> bytes | None:
    """The message file, up to MAX_MESSAGE_BYTES; None if another reader removed it."""
    try:
        with box.get_file(key) as handle:
            return bytes(handle.read(MAX_MESSAGE_BYTES))
    except (KeyError, FileNotFoundError):
        return None


def _header_block(handle: Iterable[bytes]) -> bytes:
    """Read up to the blank line that ends the header section, and no further."""
    lines: list[bytes] = []
    size = 0
    for line in handle:
        if line in (b"\n", b"\r\n") or size > MAX_HEADER_BYTES:
            break
        lines.append(line)
        size += len(line)
    return b"".join(lines)


def deliver(directory: Path, raw: bytes) -> str:
    """Write one message durably into the Maildir at `directory`; return its file name."""
    for sub in ("tmp", "new", "cur"):
        (directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    # Unique per the Maildir spec: time, a per-process sequence and randomness, pid, host.
    name = (f"{time.time_ns()}.M{next(_SEQUENCE)}R{secrets.token_hex(4)}"
            f"P{os.getpid()}.{socket.gethostname().replace('/', '_')}")
    temporary, final = directory / "tmp" / name, directory / "new" / name
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(directory / "new")
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
